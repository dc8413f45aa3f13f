"""Tiny GGUF models with random weights, written with llama.cpp's gguf-py, for tests that
need an architecture the default model is not (llama-cpp-python's own tests ask for
these): recurrent (Mamba), hybrid (Jamba: one Mamba layer, one attention layer) and a
pooled embedding model (BERT, bge-small's layout and vocabulary, CLS pooling).

Their tokenizers are llama.cpp's real vocabularies (``ggml-vocab-gpt-neox.gguf``, Mamba's
own; ``ggml-vocab-bert-bge.gguf``, bge-small's), copied field by field; the weights are
seeded random numbers, so the models' text is noise but deterministic: what the tests
check is that state (SSM + convolution state, the hybrid's attention cache) is saved,
restored and reset exactly, and that pooled embeddings batch as they run alone, which
random weights exercise as well as trained ones."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

MODELS = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models"
VOCAB = MODELS / "ggml-vocab-gpt-neox.gguf"
BERT_VOCAB = MODELS / "ggml-vocab-bert-bge.gguf"

N_EMBD = 64
D_INNER = 2 * N_EMBD  # llama.cpp supports Mamba's expansion factor 2 only
D_STATE = 16
D_CONV = 4
DT_RANK = 4
N_HEAD = 4
N_FF = 128


def _copy_tokenizer(writer: gguf.GGUFWriter, vocab: Path = VOCAB) -> int:
    """The vocabulary's ``tokenizer.*`` fields into ``writer``; returns the vocab size."""
    reader = gguf.GGUFReader(vocab)
    n_vocab = 0
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        writer.add_key_value(
            field.name, field.contents(), kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        )
        if field.name == "tokenizer.ggml.tokens":
            n_vocab = len(field.data)
    assert n_vocab > 0
    return n_vocab


class _Weights:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape: int, scale: float = 0.1) -> npt.NDArray[np.float32]:
        return (scale * self.rng.standard_normal(shape)).astype(np.float32)

    @staticmethod
    def ones(*shape: int) -> npt.NDArray[np.float32]:
        return np.ones(shape, dtype=np.float32)


def _mamba_layer(writer: gguf.GGUFWriter, w: _Weights, i: int, *, jamba: bool) -> None:
    """One Mamba block's tensors (numpy shapes are llama.cpp's ne reversed)."""
    p = f"blk.{i}"
    writer.add_tensor(f"{p}.ssm_in.weight", w.normal(2 * D_INNER, N_EMBD))
    writer.add_tensor(f"{p}.ssm_conv1d.weight", w.normal(D_INNER, D_CONV))
    writer.add_tensor(f"{p}.ssm_conv1d.bias", w.normal(D_INNER))
    writer.add_tensor(f"{p}.ssm_x.weight", w.normal(DT_RANK + 2 * D_STATE, D_INNER))
    writer.add_tensor(f"{p}.ssm_dt.weight", w.normal(D_INNER, DT_RANK))
    writer.add_tensor(f"{p}.ssm_dt.bias", w.normal(D_INNER))
    # A = -exp(A_log) as the converter stores it: negative, so the state decays
    a = -np.tile(np.arange(1, D_STATE + 1, dtype=np.float32), (D_INNER, 1))
    writer.add_tensor(f"{p}.ssm_a", a)
    writer.add_tensor(f"{p}.ssm_d", w.ones(D_INNER))
    writer.add_tensor(f"{p}.ssm_out.weight", w.normal(N_EMBD, D_INNER))
    if jamba:
        writer.add_tensor(f"{p}.ssm_dt_norm.weight", w.ones(DT_RANK))
        writer.add_tensor(f"{p}.ssm_b_norm.weight", w.ones(D_STATE))
        writer.add_tensor(f"{p}.ssm_c_norm.weight", w.ones(D_STATE))


def _ssm_keys(writer: gguf.GGUFWriter, arch: str) -> None:
    writer.add_uint32(f"{arch}.ssm.conv_kernel", D_CONV)
    writer.add_uint32(f"{arch}.ssm.inner_size", D_INNER)
    writer.add_uint32(f"{arch}.ssm.state_size", D_STATE)
    writer.add_uint32(f"{arch}.ssm.time_step_rank", DT_RANK)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)


def _finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_mamba(path: Path, n_layer: int = 2, seed: int = 0) -> Path:
    """A recurrent model: ``n_layer`` Mamba blocks (llama.cpp arch ``mamba``)."""
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_string("general.name", "llamanb test mamba")
    n_vocab = _copy_tokenizer(writer)
    writer.add_uint32("mamba.context_length", 1024)
    writer.add_uint32("mamba.embedding_length", N_EMBD)
    writer.add_uint32("mamba.block_count", n_layer)
    writer.add_uint32("mamba.feed_forward_length", 0)
    writer.add_uint32("mamba.attention.head_count", 0)
    _ssm_keys(writer, "mamba")
    w = _Weights(seed)
    writer.add_tensor("token_embd.weight", w.normal(n_vocab, N_EMBD, scale=1.0))
    writer.add_tensor("output_norm.weight", w.ones(N_EMBD))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", w.ones(N_EMBD))
        _mamba_layer(writer, w, i, jamba=False)
    _finish(writer)
    return path


def write_jamba(path: Path, seed: int = 0) -> Path:
    """A hybrid model (llama.cpp arch ``jamba``): layer 0 Mamba, layer 1 attention
    (``head_count_kv`` 0 marks a recurrent layer), each followed by a dense FFN."""
    kv_heads = [0, N_HEAD]
    writer = gguf.GGUFWriter(str(path), "jamba")
    writer.add_string("general.name", "llamanb test jamba")
    n_vocab = _copy_tokenizer(writer)
    writer.add_uint32("jamba.context_length", 1024)
    writer.add_uint32("jamba.embedding_length", N_EMBD)
    writer.add_uint32("jamba.block_count", len(kv_heads))
    writer.add_uint32("jamba.feed_forward_length", N_FF)
    writer.add_uint32("jamba.attention.head_count", N_HEAD)
    writer.add_array("jamba.attention.head_count_kv", kv_heads)
    _ssm_keys(writer, "jamba")
    w = _Weights(seed)
    writer.add_tensor("token_embd.weight", w.normal(n_vocab, N_EMBD, scale=1.0))
    writer.add_tensor("output_norm.weight", w.ones(N_EMBD))
    for i, n_kv in enumerate(kv_heads):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", w.ones(N_EMBD))
        if n_kv == 0:
            _mamba_layer(writer, w, i, jamba=True)
        else:
            for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
                writer.add_tensor(f"blk.{i}.{name}.weight", w.normal(N_EMBD, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", w.ones(N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w.normal(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w.normal(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w.normal(N_EMBD, N_FF))
    _finish(writer)
    return path


def write_bert(path: Path, n_layer: int = 2, seed: int = 0) -> Path:
    """A pooled embedding model (llama.cpp arch ``bert``, CLS pooling as bge-small) with
    bge-small's WordPiece vocabulary: biases and layer norms as BERT has them."""
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_string("general.name", "llamanb test bert")
    n_vocab = _copy_tokenizer(writer, BERT_VOCAB)
    n_ctx = 512
    writer.add_uint32("bert.context_length", n_ctx)
    writer.add_uint32("bert.embedding_length", N_EMBD)
    writer.add_uint32("bert.block_count", n_layer)
    writer.add_uint32("bert.feed_forward_length", N_FF)
    writer.add_uint32("bert.attention.head_count", N_HEAD)
    writer.add_float32("bert.attention.layer_norm_epsilon", 1e-12)
    writer.add_bool("bert.attention.causal", False)
    writer.add_uint32("bert.pooling_type", 2)  # LLAMA_POOLING_TYPE_CLS
    w = _Weights(seed)
    writer.add_tensor("token_embd.weight", w.normal(n_vocab, N_EMBD, scale=1.0))
    writer.add_tensor("token_types.weight", w.normal(2, N_EMBD))
    writer.add_tensor("position_embd.weight", w.normal(n_ctx, N_EMBD))
    writer.add_tensor("token_embd_norm.weight", w.ones(N_EMBD))
    writer.add_tensor("token_embd_norm.bias", w.normal(N_EMBD))
    for i in range(n_layer):
        p = f"blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{p}.{name}.weight", w.normal(N_EMBD, N_EMBD))
            writer.add_tensor(f"{p}.{name}.bias", w.normal(N_EMBD))
        writer.add_tensor(f"{p}.attn_output_norm.weight", w.ones(N_EMBD))
        writer.add_tensor(f"{p}.attn_output_norm.bias", w.normal(N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.weight", w.normal(N_FF, N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.bias", w.normal(N_FF))
        writer.add_tensor(f"{p}.ffn_down.weight", w.normal(N_EMBD, N_FF))
        writer.add_tensor(f"{p}.ffn_down.bias", w.normal(N_EMBD))
        writer.add_tensor(f"{p}.layer_output_norm.weight", w.ones(N_EMBD))
        writer.add_tensor(f"{p}.layer_output_norm.bias", w.normal(N_EMBD))
    _finish(writer)
    return path
