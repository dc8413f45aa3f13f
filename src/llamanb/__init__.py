"""llamanb: Python bindings for llama.cpp built with nanobind.

``llamanb.core`` mirrors llama.h; the names below are the friendly layer on top.
They are imported on first use (PEP 562), so that ``import llamanb`` costs only the
core module: numpy and the rest of the facade load when ``Llama`` & co. are touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import core
from .core import ClosedError, ContextFullError, DecodeError, LlamaError, ModelLoadError, RpcConnectionError

__version__ = "0.1.0"

# name -> the submodule that defines it
_LAZY = {
    "embed": "api",
    "generate": "api",
    "SavedState": "sequence_cache",
    "ChatOptions": "chat",
    "ChatTemplate": "chat",
    "Message": "chat",
    "Reasoning": "chat",
    "ToolChoice": "chat",
    "AssistantMessage": "chat_reply",
    "ChatCompletion": "chat_reply",
    "ChatDelta": "chat_reply",
    "ToolCall": "chat_reply",
    "ToolCallDelta": "chat_reply",
    "Completion": "generation",
    "CompletionKwargs": "generation",
    "FinishReason": "generation",
    "GenerateKwargs": "generation",
    "GenerateOptions": "generation",
    "Prompt": "generation",
    "Run": "generation",
    "Step": "generation",
    "json_schema_to_grammar": "json_schema",
    "Llama": "llama",
    "MediaError": "media",
    "MediaPolicy": "media",
    "ProjectorParams": "media",
    "TokenLogprob": "logprobs",
    "TopLogprob": "logprobs",
    "cache_dir": "models",
    "default_model": "models",
    "SamplingKwargs": "sampling",
    "SamplingParams": "sampling",
    "SpeculativeOptions": "speculative",
    "SpeculativeType": "speculative",
}

if TYPE_CHECKING:  # what type checkers and IDEs see: plain imports
    from .api import embed, generate
    from .chat import ChatOptions, ChatTemplate, Message, Reasoning, ToolChoice
    from .chat_reply import AssistantMessage, ChatCompletion, ChatDelta, ToolCall, ToolCallDelta
    from .generation import (
        Completion,
        CompletionKwargs,
        FinishReason,
        GenerateKwargs,
        GenerateOptions,
        Prompt,
        Run,
        Step,
    )
    from .json_schema import json_schema_to_grammar
    from .llama import Llama
    from .logprobs import TokenLogprob, TopLogprob
    from .media import MediaError, MediaPolicy, ProjectorParams
    from .models import cache_dir, default_model
    from .sampling import SamplingKwargs, SamplingParams
    from .sequence_cache import SavedState
    from .speculative import SpeculativeOptions, SpeculativeType
else:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'llamanb' has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AssistantMessage",
    "ChatCompletion",
    "ChatDelta",
    "ChatOptions",
    "ChatTemplate",
    "ClosedError",
    "Completion",
    "CompletionKwargs",
    "ContextFullError",
    "DecodeError",
    "FinishReason",
    "GenerateKwargs",
    "GenerateOptions",
    "Llama",
    "LlamaError",
    "MediaError",
    "MediaPolicy",
    "Message",
    "ModelLoadError",
    "ProjectorParams",
    "Prompt",
    "Reasoning",
    "RpcConnectionError",
    "Run",
    "SamplingKwargs",
    "SamplingParams",
    "SavedState",
    "SpeculativeOptions",
    "SpeculativeType",
    "Step",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "TopLogprob",
    "cache_dir",
    "core",
    "default_model",
    "embed",
    "generate",
    "json_schema_to_grammar",
]
