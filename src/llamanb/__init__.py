"""llamanb: Python bindings for llama.cpp built with nanobind.

``llamanb.core`` mirrors llama.h; the names below are the friendly layer on top.
"""

from . import core
from .api import embed, generate
from .cache import SavedState
from .chat import ChatTemplate, Message
from .core import ClosedError, ContextFullError, DecodeError, LlamaError, ModelLoadError
from .generation import Completion, FinishReason, GenerateOptions, Prompt, Run, Step
from .json_schema import json_schema_to_grammar
from .llama import Llama
from .logprobs import TokenLogprob, TopLogprob
from .models import cache_dir, default_model
from .sampling import SamplingKwargs, SamplingParams

__version__ = "0.1.0"

__all__ = [
    "ChatTemplate",
    "ClosedError",
    "Completion",
    "ContextFullError",
    "DecodeError",
    "FinishReason",
    "GenerateOptions",
    "Llama",
    "LlamaError",
    "Message",
    "ModelLoadError",
    "Prompt",
    "Run",
    "SamplingKwargs",
    "SamplingParams",
    "SavedState",
    "Step",
    "TokenLogprob",
    "TopLogprob",
    "cache_dir",
    "core",
    "default_model",
    "embed",
    "generate",
    "json_schema_to_grammar",
]
