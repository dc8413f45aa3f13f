"""
Low-level bindings mirroring llama.h (model, vocab, context, batch, sampler).

What is not llama.h lives in submodules: common (llama.cpp's common/ library),
mtmd (libmtmd), server (llama-server), fast (llamanb's loops in C++), ggml, gguf.
"""

from collections.abc import Callable, Sequence
import enum
import os
from typing import Annotated, overload

import numpy
import numpy.typing
from numpy.typing import NDArray

from llamanb.core import (
    common as common,
    fast as fast,
    ggml as ggml,
    gguf as gguf,
    mtmd as mtmd,
    server as server
)


class LlamaError(RuntimeError):
    """Base class of llama.cpp failures."""

class ClosedError(LlamaError, ValueError):
    """An operation on a closed object (like I/O on a closed file)."""

class ModelLoadError(LlamaError):
    """
    A model or adapter file could not be loaded (not GGUF, corrupt, unsupported).
    """

class DecodeError(LlamaError):
    """llama_decode/llama_encode failed."""

class ContextFullError(DecodeError):
    """No KV-cache slot for the batch: the context is full."""

class AbortedError(DecodeError):
    """A decode was aborted by Context.cancel() or the abort callback."""

class RpcConnectionError(LlamaError, ConnectionError):
    """
    A ggml RPC worker could not be reached, or the connection to it was lost.
    """

class LogLevel(enum.IntEnum):
    """ggml log levels."""

    NONE = 0

    DEBUG = 1

    INFO = 2

    WARN = 3

    ERROR = 4

    CONT = 5

def log_to_stderr(min_level: int = 1) -> None:
    """Send llama.cpp/ggml log messages at or above `min_level` to stderr."""

def log_to_logging(min_level: int = 1) -> None:
    """
    Send log messages to the Python logger 'llamanb' (the default; it has a NullHandler,
    so nothing shows unless the application configures logging).
    """

def log_to_callback(callback: Callable[[int, str], None], min_level: int = 1) -> None:
    """
    Send log messages to `callback(level, text)`; it runs with the GIL held, on
    whichever thread logged. Exceptions it raises are reported as unraisable.
    """

def log_disable() -> None:
    """
    Drop all llama.cpp/ggml log messages. Error messages are still attached to exceptions.
    """

class SplitMode(enum.IntEnum):
    """How to split a model across GPUs."""

    NONE = 0

    LAYER = 1

    ROW = 2

    TENSOR = 3

class LoadMode(enum.IntEnum):
    """How model weights are read."""

    AUTO = -1

    NONE = 0

    MMAP = 1

    MLOCK = 2

    MMAP_MLOCK = 3

    DIRECT_IO = 4

class RopeType(enum.IntEnum):
    """RoPE variant of a model."""

    NONE = -1

    NORM = 0

    NEOX = 2

    MROPE = 8

    IMROPE = 40

    VISION = 24

class ModelMetaKey(enum.IntEnum):
    """Well-known metadata keys (sampling defaults)."""

    SAMPLING_SEQUENCE = 0

    SAMPLING_TOP_K = 1

    SAMPLING_TOP_P = 2

    SAMPLING_MIN_P = 3

    SAMPLING_XTC_PROBABILITY = 4

    SAMPLING_XTC_THRESHOLD = 5

    SAMPLING_TEMP = 6

    SAMPLING_PENALTY_LAST_N = 7

    SAMPLING_PENALTY_REPEAT = 8

    SAMPLING_MIROSTAT = 9

    SAMPLING_MIROSTAT_TAU = 10

    SAMPLING_MIROSTAT_ETA = 11

def model_meta_key_str(key: ModelMetaKey) -> str:
    """The GGUF key string of a ModelMetaKey."""

class QuantizeParams:
    """llama_model_quantize_params, with llama.cpp's defaults."""

    def __init__(self) -> None: ...

    @property
    def nthread(self) -> int:
        """Threads (<= 0: all cores)."""

    @nthread.setter
    def nthread(self, arg: int, /) -> None: ...

    @property
    def ftype(self) -> int:
        """Target llama_ftype (see ftype_name)."""

    @ftype.setter
    def ftype(self, arg: int, /) -> None: ...

    @property
    def output_tensor_type(self) -> int:
        """ggml_type of output.weight."""

    @output_tensor_type.setter
    def output_tensor_type(self, arg: int, /) -> None: ...

    @property
    def token_embedding_type(self) -> int:
        """ggml_type of the token embeddings."""

    @token_embedding_type.setter
    def token_embedding_type(self, arg: int, /) -> None: ...

    @property
    def allow_requantize(self) -> bool:
        """Allow quantizing already-quantized tensors."""

    @allow_requantize.setter
    def allow_requantize(self, arg: bool, /) -> None: ...

    @property
    def quantize_output_tensor(self) -> bool:
        """Quantize output.weight."""

    @quantize_output_tensor.setter
    def quantize_output_tensor(self, arg: bool, /) -> None: ...

    @property
    def only_copy(self) -> bool:
        """Only copy tensors."""

    @only_copy.setter
    def only_copy(self, arg: bool, /) -> None: ...

    @property
    def pure(self) -> bool:
        """Quantize all tensors to the default type."""

    @pure.setter
    def pure(self, arg: bool, /) -> None: ...

    @property
    def keep_split(self) -> bool:
        """Keep the number of shards."""

    @keep_split.setter
    def keep_split(self, arg: bool, /) -> None: ...

    @property
    def dry_run(self) -> bool:
        """Only compute the resulting size."""

    @dry_run.setter
    def dry_run(self, arg: bool, /) -> None: ...

def model_quantize(input: str | os.PathLike[str], output: str | os.PathLike[str], params: QuantizeParams | None = None) -> None:
    """Quantize a GGUF model file into another (GIL released)."""

class ModelParams:
    """llama_model_params, with llama.cpp's defaults."""

    def __init__(self) -> None: ...

    @property
    def n_gpu_layers(self) -> int:
        """Layers to offload to the GPU; negative offloads all."""

    @n_gpu_layers.setter
    def n_gpu_layers(self, arg: int, /) -> None: ...

    @property
    def split_mode(self) -> SplitMode:
        """How to split the model across GPUs."""

    @split_mode.setter
    def split_mode(self, arg: SplitMode, /) -> None: ...

    @property
    def main_gpu(self) -> int:
        """GPU used for the whole model when split_mode is NONE."""

    @main_gpu.setter
    def main_gpu(self, arg: int, /) -> None: ...

    @property
    def load_mode(self) -> LoadMode:
        """How weights are read (mmap, mlock, direct I/O)."""

    @load_mode.setter
    def load_mode(self, arg: LoadMode, /) -> None: ...

    @property
    def vocab_only(self) -> bool:
        """Load only the vocabulary, no weights."""

    @vocab_only.setter
    def vocab_only(self, arg: bool, /) -> None: ...

    @property
    def check_tensors(self) -> bool:
        """Validate tensor data while loading."""

    @check_tensors.setter
    def check_tensors(self, arg: bool, /) -> None: ...

    @property
    def use_extra_bufts(self) -> bool:
        """Allow extra buffer types (weight repacking)."""

    @use_extra_bufts.setter
    def use_extra_bufts(self, arg: bool, /) -> None: ...

    @property
    def no_host(self) -> bool:
        """Bypass the host buffer."""

    @no_host.setter
    def no_host(self, arg: bool, /) -> None: ...

    @property
    def no_alloc(self) -> bool:
        """
        Only load metadata and simulate allocations (no weights: such a model
        cannot run contexts, and its weights cannot be read or saved).
        """

    @no_alloc.setter
    def no_alloc(self, arg: bool, /) -> None: ...

    @property
    def rpc_servers(self) -> list[str]:
        """
        ggml RPC workers ('host:port', see rpc_serve) that hold the offloaded layers
        (n_gpu_layers of them, split by the workers' free memory) instead of local GPUs.
        Loading raises RpcConnectionError when one does not answer.
        """

    @rpc_servers.setter
    def rpc_servers(self, arg: Sequence[str], /) -> None: ...

    @property
    def progress_callback(self, /) -> Callable[[float], bool | None] | None:
        """
        Called with progress in [0, 1] while loading; returning False cancels the load.
        An exception it raises cancels the load and is re-raised by Model().
        """

    @progress_callback.setter
    def progress_callback(self, value: Callable[[float], bool | None] | None, /) -> None: ...

class Model:
    """A loaded GGUF model (llama_model)."""

    def __init__(self, path: str | os.PathLike[str], params: ModelParams | None = None) -> None:
        """
        Load a GGUF model file. The GIL is released while loading.

        Raises FileNotFoundError, ModelLoadError (not a GGUF / unsupported), or
        whatever the progress callback raised.
        """

    def close(self) -> None:
        """
        Free the model. Idempotent; contexts built on it keep it alive until they close.
        """

    @property
    def closed(self) -> bool:
        """True after close()."""

    def __enter__(self) -> Model: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

    @property
    def path(self) -> str:
        """The file the model was loaded from."""

    @property
    def vocab(self) -> Vocab:
        """The model's vocabulary (keeps the model alive)."""

    @property
    def n_ctx_train(self) -> int:
        """Training context length."""

    @property
    def n_embd(self) -> int:
        """Embedding size."""

    @property
    def n_embd_inp(self) -> int:
        """Input embedding size."""

    @property
    def n_embd_out(self) -> int:
        """Output embedding size."""

    @property
    def n_layer(self) -> int:
        """Number of layers."""

    @property
    def n_layer_nextn(self) -> int:
        """Number of next-token-prediction layers."""

    @property
    def n_head(self) -> int:
        """Attention heads."""

    @property
    def n_head_kv(self) -> int:
        """KV heads."""

    @property
    def n_swa(self) -> int:
        """Sliding-window size (0: none)."""

    @property
    def rope_type(self) -> RopeType:
        """RoPE variant."""

    @property
    def rope_freq_scale_train(self) -> float:
        """RoPE frequency scale used in training."""

    @property
    def n_cls_out(self) -> int:
        """Classifier outputs (rerankers)."""

    def cls_label(self, i: int) -> str | None:
        """Label of classifier output `i`, or None."""

    @property
    def desc(self) -> str:
        """Short description, e.g. 'llama ?B Q4_1'."""

    @property
    def size(self) -> int:
        """Total size of all tensors in bytes."""

    @property
    def n_params(self) -> int:
        """Number of parameters."""

    @property
    def ftype(self) -> int:
        """llama_ftype of the weights."""

    @property
    def has_encoder(self) -> bool:
        """True for encoder(-decoder) models."""

    @property
    def has_decoder(self) -> bool:
        """True if the model has a decoder."""

    @property
    def decoder_start_token(self) -> int:
        """Decoder start token of encoder-decoder models, or -1."""

    @property
    def is_recurrent(self) -> bool:
        """True for recurrent models (Mamba, RWKV)."""

    @property
    def is_hybrid(self) -> bool:
        """True for hybrid attention/recurrent models."""

    @property
    def is_diffusion(self) -> bool:
        """True for diffusion models."""

    def chat_template(self, name: str | None = None) -> str | None:
        """
        The chat template stored in the model (named, or the default), or None.
        """

    def meta_val_str(self, key: str) -> str | None:
        """A metadata value as a string, or None if the key is absent."""

    @property
    def meta(self) -> dict[str, str]:
        """
        All metadata as {key: value-as-string} (arrays are elided by llama.cpp).
        """

    @staticmethod
    def from_splits(paths: Sequence[str], params: ModelParams | None = None) -> Model:
        """
        Load a model split over several GGUF files, given in order (any naming scheme).
        """

    def save(self, path: str | os.PathLike[str]) -> None:
        """
        Write the model (weights and metadata) to a GGUF file (GIL released). Weights
        repacked in memory (AMX, CPU_REPACK) are written as the source file has them.
        """

    @property
    def buffer_types(self) -> dict[str, int]:
        """
        {buffer type: bytes of weights}, e.g. {'CPU': ..., 'AMX': ...}: where the weights live.
        AMX and CPU_REPACK hold weights repacked for faster kernels (ModelParams.use_extra_bufts).
        """

    def __repr__(self) -> str: ...

    def tensors(self) -> dict[str, ggml.ModelTensor]:
        """The model's weight tensors by name."""

class VocabType(enum.IntEnum):
    """Tokenizer family."""

    NONE = 0

    SPM = 1

    BPE = 2

    WPM = 3

    UGM = 4

    RWKV = 5

    PLAMO2 = 6

    TEST = 7

    PLAMO3 = 8

class TokenAttr(enum.IntEnum):
    """Token attribute bits; Vocab.get_attr returns their OR as an int."""

    UNDEFINED = 0

    UNKNOWN = 1

    UNUSED = 2

    NORMAL = 4

    CONTROL = 8

    USER_DEFINED = 16

    BYTE = 32

    NORMALIZED = 64

    LSTRIP = 128

    RSTRIP = 256

    SINGLE_WORD = 512

class Vocab:
    """A model's vocabulary (llama_vocab). Keeps its Model alive."""

    @property
    def model(self) -> Model:
        """The model this vocabulary belongs to."""

    @property
    def type(self) -> VocabType:
        """Tokenizer family."""

    @property
    def n_tokens(self) -> int:
        """Number of tokens."""

    def __len__(self) -> int: ...

    @property
    def bos(self) -> int:
        """Beginning-of-sentence token, or -1."""

    @property
    def eos(self) -> int:
        """End-of-sentence token, or -1."""

    @property
    def eot(self) -> int:
        """End-of-turn token, or -1."""

    @property
    def sep(self) -> int:
        """Sentence separator token, or -1."""

    @property
    def nl(self) -> int:
        """Newline token, or -1."""

    @property
    def pad(self) -> int:
        """Padding token, or -1."""

    @property
    def mask(self) -> int:
        """Mask token, or -1."""

    @property
    def fim_pre(self) -> int:
        """Fill-in-the-middle prefix token, or -1."""

    @property
    def fim_suf(self) -> int:
        """Fill-in-the-middle suffix token, or -1."""

    @property
    def fim_mid(self) -> int:
        """Fill-in-the-middle middle token, or -1."""

    @property
    def fim_pad(self) -> int:
        """Fill-in-the-middle pad token, or -1."""

    @property
    def fim_rep(self) -> int:
        """Fill-in-the-middle repo token, or -1."""

    @property
    def fim_sep(self) -> int:
        """Fill-in-the-middle separator token, or -1."""

    @property
    def add_bos(self) -> bool:
        """Whether tokenize(add_special=True) prepends BOS."""

    @property
    def add_eos(self) -> bool:
        """Whether tokenize(add_special=True) appends EOS."""

    @property
    def add_sep(self) -> bool:
        """Whether tokenize(add_special=True) appends SEP."""

    @property
    def suppress_tokens(self) -> list[int]:
        """Tokens the model asks never to be generated."""

    def get_text(self, token: int) -> bytes:
        """The token's raw vocabulary text (bytes; not detokenized)."""

    def get_score(self, token: int) -> float:
        """The token's score."""

    def get_attr(self, token: int) -> int:
        """The token's attribute bits (see TokenAttr)."""

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""

    def is_control(self, token: int) -> bool:
        """True for control tokens."""

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> Annotated[NDArray[numpy.int32], dict(shape=(None,))]:
        """
        UTF-8 text to token ids (int32 array). The GIL is released.

        add_special adds BOS/EOS as the model is configured; parse_special turns
        special-token text like '<|im_start|>' into its token instead of plain text.
        """

    def token_to_piece(self, token: int, lstrip: int = 0, special: bool = False) -> bytes:
        """
        The bytes of one token (may be a partial UTF-8 sequence).
        lstrip skips up to that many leading spaces; special renders special tokens.
        """

    @overload
    def detokenize(self, tokens: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], remove_special: bool = False, unparse_special: bool = False) -> bytes: ...

    @overload
    def detokenize(self, tokens: Sequence[int], remove_special: bool = False, unparse_special: bool = False) -> bytes:
        """Token ids to UTF-8 bytes (inverse of tokenize). The GIL is released."""

def kv_cache_host_bytes(model: Model, params: ContextParams | None = None) -> int:
    """
    Bytes of KV cache a Context(model, params) allocates in host memory, from the cache
    types and head sizes; 0 when it cannot be told before creating it (layers on a device,
    sliding-window or recurrent models). Context() refuses caches larger than the RAM.
    """

STATE_SEQ_FLAGS_NONE: int = 0

STATE_SEQ_FLAGS_PARTIAL_ONLY: int = 1

STATE_SEQ_FLAGS_ON_DEVICE: int = 2

class PoolingType(enum.IntEnum):
    """How embeddings are pooled per sequence."""

    UNSPECIFIED = -1

    NONE = 0

    MEAN = 1

    CLS = 2

    LAST = 3

    RANK = 4

class AttentionType(enum.IntEnum):
    """Causal or non-causal attention."""

    UNSPECIFIED = -1

    CAUSAL = 0

    NON_CAUSAL = 1

class FlashAttnType(enum.IntEnum):
    """When to use flash attention."""

    AUTO = -1

    DISABLED = 0

    ENABLED = 1

class RopeScalingType(enum.IntEnum):
    """RoPE scaling method."""

    UNSPECIFIED = -1

    NONE = 0

    LINEAR = 1

    YARN = 2

    LONGROPE = 3

class ContextParams:
    """llama_context_params, with llama.cpp's defaults."""

    def __init__(self) -> None: ...

    @property
    def n_ctx(self) -> int:
        """Context length in tokens; 0 takes the model's training length."""

    @n_ctx.setter
    def n_ctx(self, arg: int, /) -> None: ...

    @property
    def n_batch(self) -> int:
        """Most tokens one decode() call may submit."""

    @n_batch.setter
    def n_batch(self, arg: int, /) -> None: ...

    @property
    def n_ubatch(self) -> int:
        """Physical batch size."""

    @n_ubatch.setter
    def n_ubatch(self, arg: int, /) -> None: ...

    @property
    def n_seq_max(self) -> int:
        """Number of distinct sequences."""

    @n_seq_max.setter
    def n_seq_max(self, arg: int, /) -> None: ...

    @property
    def n_rs_seq(self) -> int:
        """Recurrent-state snapshots per sequence."""

    @n_rs_seq.setter
    def n_rs_seq(self, arg: int, /) -> None: ...

    @property
    def n_outputs_max(self) -> int:
        """Most outputs in a ubatch (0: n_batch)."""

    @n_outputs_max.setter
    def n_outputs_max(self, arg: int, /) -> None: ...

    @property
    def n_outputs_max_per_seq(self) -> int:
        """Most outputs per sequence (0: n_outputs_max)."""

    @n_outputs_max_per_seq.setter
    def n_outputs_max_per_seq(self, arg: int, /) -> None: ...

    @property
    def n_threads(self) -> int:
        """Threads for generation."""

    @n_threads.setter
    def n_threads(self, arg: int, /) -> None: ...

    @property
    def n_threads_batch(self) -> int:
        """Threads for batch (prompt) processing."""

    @n_threads_batch.setter
    def n_threads_batch(self, arg: int, /) -> None: ...

    @property
    def rope_scaling_type(self) -> RopeScalingType:
        """RoPE scaling method."""

    @rope_scaling_type.setter
    def rope_scaling_type(self, arg: RopeScalingType, /) -> None: ...

    @property
    def pooling_type(self) -> PoolingType:
        """Embedding pooling."""

    @pooling_type.setter
    def pooling_type(self, arg: PoolingType, /) -> None: ...

    @property
    def attention_type(self) -> AttentionType:
        """Attention type for embeddings."""

    @attention_type.setter
    def attention_type(self, arg: AttentionType, /) -> None: ...

    @property
    def flash_attn_type(self) -> FlashAttnType:
        """When to use flash attention."""

    @flash_attn_type.setter
    def flash_attn_type(self, arg: FlashAttnType, /) -> None: ...

    @property
    def rope_freq_base(self) -> float:
        """RoPE base frequency; 0 from the model."""

    @rope_freq_base.setter
    def rope_freq_base(self, arg: float, /) -> None: ...

    @property
    def rope_freq_scale(self) -> float:
        """RoPE frequency scale; 0 from the model."""

    @rope_freq_scale.setter
    def rope_freq_scale(self, arg: float, /) -> None: ...

    @property
    def yarn_ext_factor(self) -> float:
        """YaRN extrapolation mix factor; negative from the model."""

    @yarn_ext_factor.setter
    def yarn_ext_factor(self, arg: float, /) -> None: ...

    @property
    def yarn_attn_factor(self) -> float:
        """YaRN magnitude scaling factor."""

    @yarn_attn_factor.setter
    def yarn_attn_factor(self, arg: float, /) -> None: ...

    @property
    def yarn_beta_fast(self) -> float:
        """YaRN low correction dim."""

    @yarn_beta_fast.setter
    def yarn_beta_fast(self, arg: float, /) -> None: ...

    @property
    def yarn_beta_slow(self) -> float:
        """YaRN high correction dim."""

    @yarn_beta_slow.setter
    def yarn_beta_slow(self, arg: float, /) -> None: ...

    @property
    def yarn_orig_ctx(self) -> int:
        """YaRN original context size."""

    @yarn_orig_ctx.setter
    def yarn_orig_ctx(self, arg: int, /) -> None: ...

    @property
    def type_k(self) -> int:
        """
        ggml_type of the K cache: F32, F16, BF16, Q8_0, Q4_0, Q4_1, IQ4_NL, Q5_0 or Q5_1.
        """

    @type_k.setter
    def type_k(self, arg: int, /) -> None: ...

    @property
    def type_v(self) -> int:
        """
        ggml_type of the V cache (the types of type_k; quantized V needs flash attention).
        """

    @type_v.setter
    def type_v(self, arg: int, /) -> None: ...

    @property
    def moe_cache_size(self) -> int:
        """
        Bytes of device cache for the MoE experts kept in host memory, split among the devices like the layers; 0 disables it. [EXPERIMENTAL]
        """

    @moe_cache_size.setter
    def moe_cache_size(self, arg: int, /) -> None: ...

    @property
    def embeddings(self) -> bool:
        """Extract embeddings (with logits)."""

    @embeddings.setter
    def embeddings(self, arg: bool, /) -> None: ...

    @property
    def offload_kqv(self) -> bool:
        """Offload KQV ops and the KV cache to the GPU."""

    @offload_kqv.setter
    def offload_kqv(self, arg: bool, /) -> None: ...

    @property
    def no_perf(self) -> bool:
        """Do not measure performance timings."""

    @no_perf.setter
    def no_perf(self, arg: bool, /) -> None: ...

    @property
    def op_offload(self) -> bool:
        """Offload host tensor operations to the device."""

    @op_offload.setter
    def op_offload(self, arg: bool, /) -> None: ...

    @property
    def swa_full(self) -> bool:
        """Use a full-size SWA cache."""

    @swa_full.setter
    def swa_full(self, arg: bool, /) -> None: ...

    @property
    def kv_unified(self) -> bool:
        """Use one KV buffer across sequences."""

    @kv_unified.setter
    def kv_unified(self, arg: bool, /) -> None: ...

class Context:
    """
    An inference context (llama_context) on a Model, which it keeps alive.

    Calls from several threads are serialized; long calls release the GIL.
    """

    def __init__(self, model: Model, params: ContextParams | None = None) -> None:
        """
        Create a context. Raises LlamaError if llama.cpp cannot (e.g. out of memory).
        """

    def close(self) -> None:
        """
        Free the context. Idempotent; live output views defer the free until they go.
        """

    @property
    def closed(self) -> bool:
        """True after close()."""

    def __enter__(self) -> Context: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

    @property
    def model(self) -> Model:
        """The model this context runs."""

    @property
    def n_ctx(self) -> int:
        """Context length in tokens."""

    @property
    def n_ctx_seq(self) -> int:
        """Context length per sequence."""

    @property
    def n_batch(self) -> int:
        """Most tokens per decode() call."""

    @property
    def n_ubatch(self) -> int:
        """Physical batch size."""

    @property
    def n_seq_max(self) -> int:
        """Number of sequences."""

    @property
    def n_rs_seq(self) -> int:
        """Recurrent-state snapshots per sequence."""

    @property
    def n_threads(self) -> int:
        """Threads for generation."""

    @property
    def n_threads_batch(self) -> int:
        """Threads for batch processing."""

    @property
    def pooling_type(self) -> PoolingType:
        """Embedding pooling in use."""

    @property
    def causal_attn(self) -> bool:
        """Whether attention is causal."""

    def set_n_threads(self, n_threads: int, n_threads_batch: int) -> None:
        """Set the thread counts for generation and batches."""

    def set_embeddings(self, embeddings: bool) -> None:
        """Turn embedding extraction on or off."""

    def set_causal_attn(self, causal_attn: bool) -> None:
        """Use causal (True) or full (False) attention."""

    def synchronize(self) -> None:
        """Wait for all pending backend work."""

    def decode(self, batch: Batch) -> None:
        """
        Run the decoder on a batch (GIL released).

        Raises ContextFullError when the KV cache has no room, AbortedError after
        cancel()/the abort callback, KeyboardInterrupt on Ctrl-C, IndexError for token
        or sequence ids out of range, ValueError for a batch larger than n_batch.
        """

    def encode(self, batch: Batch) -> None:
        """
        Run the encoder on a batch (encoder or embedding models). GIL released.
        """

    @overload
    def decode_tokens(self, tokens: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> None: ...

    @overload
    def decode_tokens(self, tokens: Sequence[int]) -> None:
        """
        Decode tokens as one sequence continuing the last position (llama_batch_get_one);
        only the last token's logits are kept.
        """

    def get_logits_ith(self, i: int = -1, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        Logits of output i (negative counts from the end) as a read-only float32 view.

        Zero-copy: the view shows llama.cpp's buffer, which the next decode overwrites.
        Pass copy=True to keep values. A decode that would reallocate the buffer while
        views are alive raises instead, so a view can never reach freed memory.
        """

    def get_embeddings_ith(self, i: int = -1, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        Embedding of output i (pooling NONE) as a read-only float32 view; see get_logits_ith.
        """

    def get_embeddings_seq(self, seq_id: int = 0, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        Pooled embedding of a sequence (pooling != NONE) as a read-only float32 view
        (rank pooling: the n_cls_out scores); see get_logits_ith.
        """

    def cancel(self) -> None:
        """
        Ask the running (or next) decode/encode to stop; it raises AbortedError. Thread-safe.
        """

    def set_abort_callback(self, callback: Callable[[], bool] | None) -> None:
        """
        Poll `callback()` (every ~20 ms) during decode; True aborts it with AbortedError.
        Ctrl-C is always honoured the same way and re-raised as KeyboardInterrupt.
        """

    def memory_clear(self, data: bool = True) -> None:
        """Clear all sequences; data=True also zeroes the buffers."""

    def memory_seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """
        Remove positions [p0, p1) of a sequence (-1: all sequences / open ends). False if
        a partial removal is impossible (recurrent models).
        """

    def memory_seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Copy positions [p0, p1) of sequence src to dst."""

    def memory_seq_keep(self, seq_id: int) -> None:
        """Remove every sequence but this one."""

    def memory_seq_add(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        """Shift positions [p0, p1) of a sequence by delta."""

    def memory_seq_div(self, seq_id: int, p0: int, p1: int, d: int) -> None:
        """Integer-divide positions [p0, p1) of a sequence by d."""

    def memory_seq_pos_min(self, seq_id: int) -> int:
        """Smallest position of a sequence in memory, or -1 if empty."""

    def memory_seq_pos_max(self, seq_id: int) -> int:
        """Largest position of a sequence in memory, or -1 if empty."""

    @property
    def memory_can_shift(self) -> bool:
        """Whether positions can be shifted (seq_add/seq_div)."""

    def state_get_data(self) -> bytes:
        """The whole context state (KV cache, outputs, RNG) as bytes."""

    def state_set_data(self, data: bytes) -> int:
        """Restore a state from state_get_data(); returns bytes read."""

    def state_seq_get_data(self, seq_id: int) -> bytes:
        """One sequence's state as bytes."""

    def state_seq_set_data(self, data: bytes, seq_id: int) -> int:
        """Restore one sequence from state_seq_get_data(); returns bytes read."""

    def state_save_file(self, path: str | os.PathLike[str], tokens: Sequence[int]) -> None:
        """Save the state and the tokens it came from to a file."""

    def state_load_file(self, path: str | os.PathLike[str], n_token_capacity: int = 1048576) -> list[int]:
        """Load a state file; returns its tokens."""

    def state_get_size(self) -> int:
        """Size in bytes of state_get_data()."""

    def state_seq_get_size(self, seq_id: int, flags: int = 0) -> int:
        """Size in bytes of one sequence's state (flags: STATE_SEQ_FLAGS_*)."""

    def state_seq_get_data_ext(self, seq_id: int, flags: int) -> bytes:
        """One sequence's state with flags (STATE_SEQ_FLAGS_PARTIAL_ONLY, ...)."""

    def state_seq_set_data_ext(self, data: bytes, seq_id: int, flags: int) -> int:
        """Restore one sequence with flags; returns bytes read."""

    def state_seq_save_file(self, path: str | os.PathLike[str], seq_id: int, tokens: Sequence[int]) -> int:
        """
        Save one sequence's state and its tokens to a file; returns bytes written.
        """

    def state_seq_load_file(self, path: str | os.PathLike[str], seq_id: int, n_token_capacity: int = 1048576) -> list[int]:
        """Load a sequence state file into seq_id; returns its tokens."""

    def get_logits(self, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        All output rows of the last decode, shape (n_outputs, n_vocab), as a read-only view
        (same rules as get_logits_ith).
        """

    def get_embeddings(self, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        All output embeddings of the last decode (pooling NONE), shape (n_outputs, n_embd).
        """

    def get_sampled_token_ith(self, i: int) -> int | None:
        """Token a backend sampler chose for output i, or None."""

    def get_sampled_probs_ith(self, i: int) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))] | None:
        """
        Probabilities a backend sampler computed for output i (a copy), or None.
        """

    def get_sampled_logits_ith(self, i: int) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))] | None:
        """Logits a backend sampler left for output i (a copy), or None."""

    def get_sampled_candidates_ith(self, i: int) -> Annotated[NDArray[numpy.int32], dict(shape=(None,))]:
        """
        Candidate token ids matching get_sampled_probs_ith/get_sampled_logits_ith (a copy).
        """

    def set_adapters_lora(self, adapters: Sequence[tuple[LoraAdapter, float]]) -> None:
        """
        Use these (adapter, scale) pairs from now on (an empty list removes all).
        """

    def set_adapter_cvec(self, data: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, n_embd: int, il_start: int, il_end: int) -> None:
        """
        Apply a control vector (n_layer rows of n_embd floats, starting at layer 1) to layers
        [il_start, il_end], or clear it with data=None.
        """

    def perf(self) -> dict[str, float]:
        """Timings (llama_perf_context) as a dict."""

    def perf_reset(self) -> None:
        """Reset the timings."""

    def perf_print(self) -> None:
        """Log the timings through llama.cpp's log."""

    def __repr__(self) -> str: ...

    def process(self, type: ProcessType, batch: BatchExt) -> None:
        """
        [EXPERIMENTAL] Encode or decode a BatchExt (GIL released); errors as in decode().
        Read outputs with get_logits_ith()/get_embeddings_ith().
        """

    def set_sampler(self, seq_id: int, chain: Sampler) -> None:
        """
        [EXPERIMENTAL] Run a sampler chain inside the decode graph for a sequence; the
        context takes the chain over. Results: get_sampled_token_ith() and friends.
        """

    def attach_threadpool(self, threadpool: Threadpool, threadpool_batch: Threadpool | None = None) -> None:
        """
        Run this context's decodes on these pools (the batch pool defaults to the first).
        """

    def detach_threadpool(self) -> None:
        """
        Go back to the context's own pool (attached pools stay alive until the context closes).
        """

class Batch:
    """
    A llama_batch: rows of (token, position, sequence ids, output flag).
    Token and sequence ids are validated when the batch is decoded.
    """

    def __init__(self, n_tokens: int, embd: int = 0, n_seq_max: int = 1) -> None:
        """
        Allocate room for n_tokens rows (embd > 0: rows of embd floats instead of tokens).
        """

    @property
    def n_tokens(self) -> int:
        """Rows in use."""

    @property
    def capacity(self) -> int:
        """Most rows."""

    def __len__(self) -> int: ...

    def clear(self) -> None:
        """Remove all rows (keeps the allocation)."""

    def add(self, token: int, pos: int, seq_ids: Sequence[int] = [0], logits: bool = False) -> None:
        """
        Append a token at position pos in the given sequences; logits=True requests its output.
        """

    def add_sequence(self, tokens: Sequence[int], pos0: int, seq_id: int = 0, logits_last: bool = True) -> None:
        """
        Append tokens at positions pos0, pos0+1, ... of one sequence; outputs only the last if logits_last.
        """

    def set_logits(self, i: int, logits: bool) -> None:
        """Request (or not) the output of row i."""

    @property
    def tokens(self) -> list[int]:
        """Token ids of the rows in use (a copy)."""

    @property
    def positions(self) -> list[int]:
        """Positions of the rows in use (a copy)."""

class ProcessType(enum.IntEnum):
    """Encode or decode, for Context.process."""

    ENCODE = 0

    DECODE = 1

class BatchExt:
    """
    [EXPERIMENTAL] llama_batch_ext: tokens or embeddings with explicit positions, for
    Context.process(). Every entry needs set_pos() before processing.
    """

    def __init__(self, ctx: Context) -> None: ...

    def close(self) -> None:
        """Free the batch. Idempotent."""

    def clear(self) -> None:
        """Remove all entries."""

    def __len__(self) -> int: ...

    def add(self, seq_id: int) -> int:
        """Add an entry with no token or embedding yet; returns its index."""

    def add_token(self, seq_id: int, token: int) -> int:
        """Add a token; returns its index."""

    def add_embd(self, seq_id: int, embd: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)]) -> int:
        """
        Add an input embedding (float32, n_embd or rows x n_embd); returns its index.
        """

    def add_seq(self, idx: int, seq_id: int) -> None:
        """Put entry idx in another sequence too (same position)."""

    def set_embd_token(self, idx: int, embd: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)]) -> None:
        """Give entry idx an input embedding (in addition to a token id)."""

    def set_embd_state(self, idx: int, embd: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)]) -> None:
        """
        Set a hidden-state embedding carried from another stage (not yet supported upstream).
        """

    def set_output_embd(self, idx: int, value: bool) -> None:
        """Request the embedding output of entry idx."""

    def set_output_logits(self, idx: int, value: bool) -> None:
        """Request the logits of entry idx."""

    def set_pos(self, idx: int, pos: Sequence[int]) -> None:
        """Position(s) of entry idx (M-RoPE embeddings take several)."""

DEFAULT_SEED: int = 4294967295

class TokenDataArray:
    """Sampling candidates (llama_token_data_array) as owned numpy arrays."""

    def __init__(self, ids: Annotated[NDArray[numpy.int32], dict(shape=(None,))], logits: Annotated[NDArray[numpy.float32], dict(shape=(None,))], p: Annotated[NDArray[numpy.float32], dict(shape=(None,))] | None = None) -> None:
        """Candidates from token ids and their logits (copied)."""

    @property
    def ids(self) -> Annotated[NDArray[numpy.int32], dict(shape=(None,))]:
        """Token ids (int32)."""

    @ids.setter
    def ids(self, arg: Annotated[NDArray[numpy.int32], dict(shape=(None,))], /) -> None: ...

    @property
    def logits(self) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))]:
        """Logits (float32)."""

    @logits.setter
    def logits(self, arg: Annotated[NDArray[numpy.float32], dict(shape=(None,))], /) -> None: ...

    @property
    def p(self) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))]:
        """Probabilities (float32; 0 until a sampler computes them)."""

    @p.setter
    def p(self, arg: Annotated[NDArray[numpy.float32], dict(shape=(None,))], /) -> None: ...

    @property
    def selected(self) -> int:
        """Index (not token id) of the selected candidate, or -1."""

    @selected.setter
    def selected(self, arg: int, /) -> None: ...

    @property
    def sorted(self) -> bool:
        """Whether the candidates are sorted by logit, descending."""

    @sorted.setter
    def sorted(self, arg: bool, /) -> None: ...

    def __len__(self) -> int: ...

class Sampler:
    """
    A llama_sampler. Build with the static constructors; combine with chain().add().
    """

    @staticmethod
    def chain(no_perf: bool = True) -> Sampler:
        """An empty sampler chain."""

    @staticmethod
    def greedy() -> Sampler:
        """Pick the most likely token."""

    @staticmethod
    def dist(seed: int = 4294967295) -> Sampler:
        """Sample from the distribution (DEFAULT_SEED: a random seed)."""

    @staticmethod
    def top_k(k: int) -> Sampler:
        """Keep the k most likely tokens (k <= 0: no-op)."""

    @staticmethod
    def top_p(p: float, min_keep: int = 1) -> Sampler:
        """Nucleus sampling."""

    @staticmethod
    def min_p(p: float, min_keep: int = 1) -> Sampler:
        """Drop tokens below p times the top probability."""

    @staticmethod
    def typical(p: float, min_keep: int = 1) -> Sampler:
        """Locally typical sampling."""

    @staticmethod
    def temp(t: float) -> Sampler:
        """Divide logits by t (t <= 0: keep only the top token)."""

    @staticmethod
    def temp_ext(t: float, delta: float, exponent: float) -> Sampler:
        """Dynamic temperature."""

    @staticmethod
    def xtc(p: float, t: float, min_keep: int = 1, seed: int = 4294967295) -> Sampler:
        """Exclude-top-choices sampling."""

    @staticmethod
    def top_n_sigma(n: float) -> Sampler:
        """Keep tokens within n standard deviations of the top logit."""

    @staticmethod
    def mirostat(vocab: Vocab, seed: int, tau: float, eta: float, m: int = 100) -> Sampler:
        """Mirostat 1.0."""

    @staticmethod
    def mirostat_v2(seed: int, tau: float, eta: float) -> Sampler:
        """Mirostat 2.0."""

    @staticmethod
    def grammar(vocab: Vocab, grammar: str, root: str = 'root') -> Sampler:
        """
        Constrain output to a GBNF grammar. Raises ValueError if it does not parse.
        """

    @staticmethod
    def grammar_lazy_patterns(vocab: Vocab, grammar: str, root: str, trigger_patterns: Sequence[str], trigger_tokens: Sequence[int]) -> Sampler:
        """A grammar that applies only after a trigger pattern or token appears."""

    @staticmethod
    def penalties(penalty_last_n: int = 64, penalty_repeat: float = 1.0, penalty_freq: float = 0.0, penalty_present: float = 0.0) -> Sampler:
        """Repetition, frequency and presence penalties over the last n tokens."""

    @staticmethod
    def dry(vocab: Vocab, multiplier: float = 0.0, base: float = 1.75, allowed_length: int = 2, penalty_last_n: int = -1, seq_breakers: Sequence[str] = ['\n', ':', '"', '*']) -> Sampler:
        """DRY (don't repeat yourself) penalty."""

    @staticmethod
    def adaptive_p(target: float, decay: float, seed: int = 4294967295) -> Sampler:
        """Select tokens near a target probability over time."""

    @staticmethod
    def logit_bias(vocab: Vocab, bias: Sequence[tuple[int, float]]) -> Sampler:
        """Add a bias to the logits of some tokens."""

    @staticmethod
    def infill(vocab: Vocab) -> Sampler:
        """Fill-in-the-middle post-processing."""

    @staticmethod
    def from_python(sampler: object, name: str | None = None) -> Sampler:
        """
        Wrap a Python object as a llama_sampler (llama_sampler_i). It must have
        apply(candidates: TokenDataArray) -> None, which may rewrite candidates.logits/p,
        shrink or reorder the arrays, and set candidates.selected; accept(token) and
        reset() are optional. Exceptions it raises propagate from sample()/apply().
        """

    def add(self, sampler: Sampler) -> None:
        """Append a sampler to this chain; the chain takes ownership of it."""

    def get(self, i: int) -> Sampler:
        """
        A borrowed handle to element i; it raises ClosedError once the chain changes or closes.
        """

    def remove(self, i: int) -> Sampler:
        """Take element i out of the chain; the caller now owns it."""

    @property
    def n(self) -> int:
        """Number of samplers in this chain."""

    @property
    def is_chain(self) -> bool:
        """True for a sampler chain."""

    @property
    def name(self) -> str:
        """The sampler's name."""

    @property
    def seed(self) -> int:
        """Seed in use (DEFAULT_SEED if none)."""

    def accept(self, token: int) -> None:
        """
        Update the sampler's state with a token (e.g. prompt tokens for penalties).
        """

    def apply(self, candidates: TokenDataArray) -> None:
        """Apply the sampler to candidates in place (llama_sampler_apply)."""

    def reset(self) -> None:
        """Reset the sampler's state (RNG, history, grammar)."""

    def clone(self) -> Sampler:
        """An independent copy with the same state."""

    def copy(self, dst: Sampler) -> None:
        """Copy this sampler's state into dst (same type and structure)."""

    def sample(self, ctx: Context, idx: int = -1) -> int:
        """
        Sample (and accept) a token from output idx of the last decode. GIL released.
        Raises ValueError if no sampler in the chain selects a token. The token and the
        sampler's state are llama_sampler_sample's; two shortcuts get there without its
        candidate array of the whole vocabulary: a chain that is only greedy takes the
        argmax, and a chain that starts with top-k (k <= 128) gets only the candidates
        top-k can keep (ties and their order included).
        """

    def sample_logits(self, logits: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> int:
        """
        Sample (and accept) a token from a row of logits (token i has logits[i]), as sample()
        does from a context's output: the token llama_sampler_sample picks from the
        candidate array of all of them. GIL released. Raises ValueError if no sampler in
        the chain selects a token.
        """

    def close(self) -> None:
        """Free the sampler. Idempotent."""

    @property
    def closed(self) -> bool:
        """True after close()."""

    def perf(self) -> tuple[float, int]:
        """(t_sample_ms, n_sample) of a chain."""

    def perf_reset(self) -> None:
        """Reset a chain's perf counters."""

    def perf_print(self) -> None:
        """Log a chain's perf counters through llama.cpp's log."""

    def __repr__(self) -> str: ...

def chat_apply_template(template: str, messages: Sequence[tuple[str, str]], add_assistant: bool = True) -> str:
    """
    Format (role, content) messages with a built-in template, given by name (see
    chat_builtin_templates()) or by a known Jinja source. No Jinja engine: raises
    ValueError for templates llama.cpp does not recognise.
    """

def chat_builtin_templates() -> list[str]:
    """Names of llama.cpp's built-in chat templates."""

class LoraAdapter:
    """A LoRA adapter (llama_adapter_lora) for a Model, which it keeps alive."""

    def __init__(self, model: Model, path: str | os.PathLike[str]) -> None:
        """
        Load a LoRA adapter GGUF for `model`. Raises FileNotFoundError or ModelLoadError.
        """

    def close(self) -> None:
        """Free the adapter. Idempotent; deferred while a context uses it."""

    @property
    def closed(self) -> bool:
        """True after close()."""

    def __enter__(self) -> LoraAdapter: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

    def meta_val_str(self, key: str) -> str | None:
        """A metadata value as a string, or None."""

    @property
    def meta_count(self) -> int:
        """Number of metadata entries."""

    def meta_key_by_index(self, i: int) -> str | None:
        """Metadata key at index i, or None."""

    def meta_val_str_by_index(self, i: int) -> str | None:
        """Metadata value at index i as a string, or None."""

    @property
    def meta(self) -> dict[str, str]:
        """All metadata as {key: value-as-string}."""

    @property
    def alora_invocation_tokens(self) -> list[int]:
        """Invocation tokens of an activated LoRA (empty for a plain LoRA)."""

class NumaStrategy(enum.IntEnum):
    """NUMA placement strategies."""

    DISABLED = 0

    DISTRIBUTE = 1

    ISOLATE = 2

    NUMACTL = 3

    MIRROR = 4

def numa_init(strategy: NumaStrategy) -> None:
    """Enable NUMA optimizations (call once, before loading models)."""

class Threadpool:
    """
    A ggml CPU thread pool for one context at a time (each context has a pool of its
    own already; one attached replaces it until detach_threadpool()).
    """

    def __init__(self, n_threads: int) -> None: ...

    @property
    def n_threads(self) -> int:
        """Threads in the pool."""

def ftype_name(ftype: int) -> str:
    """Name of a llama_ftype, e.g. 'Q4_1'."""

def flash_attn_type_name(type: FlashAttnType) -> str:
    """Name of a FlashAttnType."""

def load_mode_name(mode: LoadMode) -> str:
    """Name of a LoadMode."""

def load_mode_from_str(name: str) -> LoadMode:
    """LoadMode from its name."""

def max_tensor_buft_overrides() -> int:
    """Most tensor buffer-type overrides."""

def split_path(path_prefix: str, split_no: int, split_count: int) -> str:
    """
    Path of one split: split_path('/m/x', 1, 4) == '/m/x-00002-of-00004.gguf'.
    """

def split_prefix(split_path: str, split_no: int, split_count: int) -> str | None:
    """The prefix of a split path if its numbers match, else None."""

LLAMA_CPP_COMMIT: str = 'unknown'

LLAMA_CPP_BUILD: str = 'b11549'

def system_info() -> str:
    """llama.cpp's build and CPU feature summary."""

def supports_mmap() -> bool:
    """Whether mmap is available."""

def supports_mlock() -> bool:
    """Whether mlock is available."""

def supports_gpu_offload() -> bool:
    """Whether a GPU backend is compiled in."""

def supports_rpc() -> bool:
    """Whether the RPC backend is compiled in."""

def max_devices() -> int:
    """Most devices a model can use."""

def max_parallel_sequences() -> int:
    """Most sequences a context can hold."""

def time_us() -> int:
    """llama.cpp's clock in microseconds."""

def version() -> str:
    """llama.cpp's version string."""
