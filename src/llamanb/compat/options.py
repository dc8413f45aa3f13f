"""llama-cpp-python's constructor options → llamanb's load and context options. Each is
either carried out or refused with NotImplementedError naming what to use instead:
an accepted option always does what it says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .. import core
from ..loading import ContextOptions, ModelOptions


@dataclass(frozen=True)
class LoadOptions:
    """The llama-cpp-python options that tune loading and the context."""

    split_mode: int = 1
    main_gpu: int = 0
    use_mmap: bool = True
    use_mlock: bool = False
    n_ubatch: int = 512
    n_threads_batch: int | None = None
    rope_scaling_type: int | None = -1
    rope_freq_base: float = 0.0
    rope_freq_scale: float = 0.0
    yarn_ext_factor: float = -1.0
    yarn_attn_factor: float = 1.0
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    yarn_orig_ctx: int = 0
    offload_kqv: bool = True
    flash_attn: bool | None = None
    attention_type: int = -1
    op_offload: bool | None = None
    type_k: int | None = None
    type_v: int | None = None

    def model_options(self) -> ModelOptions:
        mode = {
            (True, True): core.LoadMode.MMAP_MLOCK,
            (True, False): core.LoadMode.MMAP,
            (False, True): core.LoadMode.MLOCK,
            (False, False): core.LoadMode.NONE,
        }
        return ModelOptions(
            load_mode=mode[self.use_mmap, self.use_mlock],
            split_mode=core.SplitMode(self.split_mode),
            main_gpu=self.main_gpu,
        )

    def context_options(self, n_batch: int) -> ContextOptions:
        return ContextOptions(
            n_ubatch=min(self.n_ubatch, n_batch),
            n_threads_batch=self.n_threads_batch,
            # None: llama.cpp decides (auto); llama-cpp-python's default False disables it.
            flash_attn=None
            if self.flash_attn is None
            else core.FlashAttnType.ENABLED
            if self.flash_attn
            else core.FlashAttnType.DISABLED,
            attention_type=core.AttentionType(self.attention_type),
            type_k=self.type_k,
            type_v=self.type_v,
            rope_scaling_type=None if self.rope_scaling_type is None else core.RopeScalingType(self.rope_scaling_type),
            rope_freq_base=self.rope_freq_base,
            rope_freq_scale=self.rope_freq_scale,
            yarn_ext_factor=self.yarn_ext_factor,
            yarn_attn_factor=self.yarn_attn_factor,
            yarn_beta_fast=self.yarn_beta_fast,
            yarn_beta_slow=self.yarn_beta_slow,
            yarn_orig_ctx=self.yarn_orig_ctx,
            offload_kqv=self.offload_kqv,
            op_offload=self.op_offload,
        )


def refuse_unsupported(
    tensor_split: Sequence[float] | None,
    kv_overrides: Mapping[str, object] | None,
    swa_full: bool | None,
    numa: bool | int,
    tokenizer: object,
    lora_base: str | None,
) -> None:
    """NotImplementedError for the options llamanb cannot carry out, naming the way it can
    (``numa``, process-wide, is carried out here)."""
    if tensor_split is not None:
        raise NotImplementedError(
            "tensor_split is not supported: llamanb splits layers across devices by their free "
            "memory; use split_mode= and main_gpu="
        )
    if kv_overrides:
        raise NotImplementedError(
            "kv_overrides is not supported: write the metadata into the GGUF (gguf-py's "
            "gguf_set_metadata / gguf_new_metadata scripts)"
        )
    if swa_full:
        raise NotImplementedError("swa_full is not supported: llamanb keeps llama.cpp's default sliding-window cache")
    if numa:  # process-wide in llama.cpp too: True is its "distribute" strategy
        core.numa_init(core.NumaStrategy(1 if numa is True else int(numa)))
    if tokenizer is not None:
        raise NotImplementedError(
            "tokenizer= is not supported: llamanb always uses the model's own llama.cpp "
            "tokenizer; tokenize with a Hugging Face tokenizer yourself and pass token ids"
        )
    if lora_base is not None:
        raise NotImplementedError(
            "lora_base is not supported: llama.cpp applies LoRA adapters to the loaded model; "
            "load an f16 model to apply the adapter to it"
        )
