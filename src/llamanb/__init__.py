"""llamanb: Python bindings for llama.cpp built with nanobind.

``llamanb.core`` mirrors llama.h; the names below are the friendly layer on top.
"""

from . import core
from .core import ClosedError, ContextFullError, DecodeError, LlamaError, ModelLoadError
from .llama import Completion, FinishReason, Llama
from .models import cache_dir, default_model
from .sampling import SamplingParams

__version__ = "0.1.0"

__all__ = [
    "ClosedError",
    "Completion",
    "ContextFullError",
    "DecodeError",
    "FinishReason",
    "Llama",
    "LlamaError",
    "ModelLoadError",
    "SamplingParams",
    "cache_dir",
    "core",
    "default_model",
]
