"""``llama_cpp.llama_cpp``: llama.h's names where they map onto llamanb's core: the
enum constants, default parameter structs and backend queries. llama-cpp-python's
ctypes function table (pointers, buffers) has no counterpart: use ``llamanb.core``,
whose objects mirror llama.h one to one (``llama_model_n_embd(m)`` → ``m.n_embd``)."""

from __future__ import annotations

from .. import core

LLAMA_DEFAULT_SEED = core.DEFAULT_SEED

LLAMA_SPLIT_MODE_NONE = core.SplitMode.NONE
LLAMA_SPLIT_MODE_LAYER = core.SplitMode.LAYER
LLAMA_SPLIT_MODE_ROW = core.SplitMode.ROW

LLAMA_LOAD_MODE_NONE = core.LoadMode.NONE
LLAMA_LOAD_MODE_MMAP = core.LoadMode.MMAP
LLAMA_LOAD_MODE_MLOCK = core.LoadMode.MLOCK
LLAMA_LOAD_MODE_MMAP_MLOCK = core.LoadMode.MMAP_MLOCK

LLAMA_POOLING_TYPE_UNSPECIFIED = core.PoolingType.UNSPECIFIED
LLAMA_POOLING_TYPE_NONE = core.PoolingType.NONE
LLAMA_POOLING_TYPE_MEAN = core.PoolingType.MEAN
LLAMA_POOLING_TYPE_CLS = core.PoolingType.CLS
LLAMA_POOLING_TYPE_LAST = core.PoolingType.LAST
LLAMA_POOLING_TYPE_RANK = core.PoolingType.RANK

LLAMA_ATTENTION_TYPE_UNSPECIFIED = core.AttentionType.UNSPECIFIED
LLAMA_ATTENTION_TYPE_CAUSAL = core.AttentionType.CAUSAL
LLAMA_ATTENTION_TYPE_NON_CAUSAL = core.AttentionType.NON_CAUSAL

LLAMA_FLASH_ATTN_TYPE_AUTO = core.FlashAttnType.AUTO
LLAMA_FLASH_ATTN_TYPE_DISABLED = core.FlashAttnType.DISABLED
LLAMA_FLASH_ATTN_TYPE_ENABLED = core.FlashAttnType.ENABLED

LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED = core.RopeScalingType.UNSPECIFIED
LLAMA_ROPE_SCALING_TYPE_NONE = core.RopeScalingType.NONE
LLAMA_ROPE_SCALING_TYPE_LINEAR = core.RopeScalingType.LINEAR
LLAMA_ROPE_SCALING_TYPE_YARN = core.RopeScalingType.YARN


def llama_model_default_params() -> core.ModelParams:
    return core.ModelParams()


def llama_context_default_params() -> core.ContextParams:
    return core.ContextParams()


def llama_supports_mmap() -> bool:
    return core.supports_mmap()


def llama_supports_mlock() -> bool:
    return core.supports_mlock()


def llama_supports_gpu_offload() -> bool:
    return core.supports_gpu_offload()


def llama_supports_rpc() -> bool:
    return core.supports_rpc()


def llama_max_devices() -> int:
    return core.max_devices()


def llama_max_parallel_sequences() -> int:
    return core.max_parallel_sequences()


def llama_print_system_info() -> bytes:
    return core.system_info().encode()


def llama_time_us() -> int:
    return core.time_us()
