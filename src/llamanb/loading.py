"""Opening a model, the one way ``Llama``, the server and the CLI all use: which file a
reference names, the load parameters, the default thread count, the context
parameters (:func:`context_params`), and :class:`Runtime`: a model with its adapters,
projector and draft model, which makes contexts."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import core, hub
from .lora import LoraSpec, apply_adapters, close_adapters, load_adapters
from .models import default_model
from .progress import LoadProgress

if TYPE_CHECKING:
    from .media import Projector, ProjectorParams

ModelRef = str | os.PathLike[str] | None


def default_threads() -> int:
    """The CPU threads a context uses unless told otherwise: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def amx_available() -> bool:
    """The CPU has AMX int8 and this build's ggml uses it: quantized weights then go to the
    AMX buffer type unless ``repack=False``."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_int8" in flags and core.ggml.cpu_features().get("AMX_INT8") == "1"


def resolve_model(ref: ModelRef) -> Path:
    """The GGUF file of ``ref``: the default model for None, ``hf://org/repo/file.gguf``
    through huggingface_hub's cache, else a local path."""
    if ref is None:
        return default_model()
    if hub.is_hub_uri(ref):
        return hub.resolve_uri(ref)
    return Path(ref)


@dataclass(frozen=True)
class ModelOptions:
    """How a model is loaded.

    ``n_gpu_layers``: layers offloaded to GPUs or RPC workers (-1: all); None means
    none, or all of them with ``rpc_servers``. ``repack``: let llama.cpp put weights
    in the CPU's extra buffer types (AMX on Intel Xeons that have it, CPU_REPACK for
    some quantizations), repacked for faster kernels; results differ from the plain
    path by rounding only. ``progress`` draws a tqdm bar while loading.
    """

    n_gpu_layers: int | None = None
    rpc_servers: Sequence[str] = ()
    repack: bool = True
    progress: bool = False
    load_mode: core.LoadMode | None = None
    split_mode: core.SplitMode | None = None
    main_gpu: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rpc_servers, str):
            raise TypeError("rpc_servers takes a list of 'host:port' strings")

    def params(self) -> core.ModelParams:
        params = core.ModelParams()
        params.rpc_servers = list(self.rpc_servers)
        if self.n_gpu_layers is not None:
            params.n_gpu_layers = self.n_gpu_layers
        else:  # all layers go to the RPC workers; none to local GPUs by default
            params.n_gpu_layers = -1 if self.rpc_servers else 0
        params.use_extra_bufts = self.repack
        if self.load_mode is not None:
            params.load_mode = self.load_mode
        if self.split_mode is not None:
            params.split_mode = self.split_mode
        if self.main_gpu is not None:
            params.main_gpu = self.main_gpu
        return params


@dataclass(frozen=True)
class ContextOptions:
    """Context parameters beyond ``n_ctx``/``n_batch``/``n_threads``, as llama.cpp names
    them (``core.ContextParams``); None keeps llama.cpp's default."""

    n_ubatch: int | None = None
    n_threads_batch: int | None = None
    flash_attn: core.FlashAttnType | None = None
    attention_type: core.AttentionType | None = None
    type_k: int | None = None
    type_v: int | None = None
    rope_scaling_type: core.RopeScalingType | None = None
    rope_freq_base: float | None = None
    rope_freq_scale: float | None = None
    yarn_ext_factor: float | None = None
    yarn_attn_factor: float | None = None
    yarn_beta_fast: float | None = None
    yarn_beta_slow: float | None = None
    yarn_orig_ctx: int | None = None
    offload_kqv: bool | None = None
    op_offload: bool | None = None
    no_perf: bool | None = None

    def apply(self, params: core.ContextParams) -> None:
        """Set the fields that are not None on ``params``."""
        for name, value in vars(self).items():
            if value is None:
                continue
            setattr(params, "flash_attn_type" if name == "flash_attn" else name, value)


def open_model(ref: ModelRef, options: ModelOptions | None = None) -> core.Model:
    """Load the model ``ref`` names (see :func:`resolve_model`) with ``options``."""
    options = options or ModelOptions()
    path = resolve_model(ref)
    params = options.params()
    bar = LoadProgress(f"loading {path.name}") if options.progress else None
    if bar is not None:
        params.progress_callback = bar.callback
    try:
        return core.Model(path, params)
    finally:
        if bar is not None:
            bar.close()


def context_params(
    n_ctx: int,
    n_batch: int,
    n_threads: int,
    *,
    n_seq: int = 1,
    n_ubatch: int | None = None,
    options: ContextOptions | None = None,
    pooling: core.PoolingType | None = None,
    perf: bool = False,
) -> core.ContextParams:
    """The parameters of every context llamanb makes: ``n_seq`` sequences share one
    KV pool (each takes what it needs); ``pooling`` makes an embedding context;
    ``perf`` keeps ``ctx.perf()`` counters; ``options`` (the user's) win."""
    params = core.ContextParams()
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = min(n_batch, params.n_ubatch) if n_ubatch is None else n_ubatch
    params.n_seq_max = n_seq
    params.kv_unified = n_seq > 1
    params.n_threads = params.n_threads_batch = n_threads
    if pooling is not None:
        params.embeddings = True
        params.pooling_type = pooling
    params.no_perf = not perf
    if options is not None:
        options.apply(params)
    return params


class Runtime:
    """A loaded model with what loads beside it: LoRA ``adapters`` (applied to every
    context it makes), a multimodal ``projector`` and a ``draft_model`` (a path it
    opens and owns, or another runtime's model it borrows). One ExitStack closes them,
    in reverse order; close the contexts first."""

    def __init__(
        self,
        ref: ModelRef,
        options: ModelOptions,
        *,
        n_threads: int | None = None,
        lora: Sequence[LoraSpec] = (),
        draft: ModelRef | core.Model = None,
        mmproj: str | os.PathLike[str] | None = None,
        mmproj_params: ProjectorParams | None = None,
    ) -> None:
        self.n_threads = n_threads or default_threads()
        self._stack = ExitStack()
        with self._stack as stack:  # a failure closes what was opened; success keeps it open
            self.model = open_model(ref, options)
            stack.callback(self.model.close)
            self.adapters = load_adapters(self.model, lora)
            stack.callback(close_adapters, self.adapters)
            self.draft_model = (
                draft
                if isinstance(draft, core.Model) or draft is None
                else open_model(draft, ModelOptions(n_gpu_layers=options.n_gpu_layers, repack=options.repack))
            )
            if self.draft_model is not None and self.draft_model is not draft:
                stack.callback(self.draft_model.close)
            self.projector: Projector | None = None
            if mmproj is not None:
                from .media import Projector, ProjectorParams  # libmtmd's side loads only when asked

                self.projector = Projector(mmproj, self.model, mmproj_params or ProjectorParams(), self.n_threads)
                stack.callback(self.projector.close)
            self._stack = stack.pop_all()

    def context(self, params: core.ContextParams) -> core.Context:
        """A new context of the model with the adapters applied (the caller closes it)."""
        ctx = core.Context(self.model, params)
        try:
            apply_adapters(ctx, self.adapters)
        except BaseException:
            ctx.close()
            raise
        return ctx

    def close(self) -> None:
        """Close the projector, the draft model (if owned), the adapters and the model."""
        self._stack.close()


def add_repack_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-repack`` (as llama.cpp's tools spell it): sets ``args.repack``."""
    parser.add_argument(
        "--no-repack",
        dest="repack",
        action="store_false",
        help="keep weights in the file's layout: no AMX / CPU_REPACK buffers (slower on CPUs that have them)",
    )
