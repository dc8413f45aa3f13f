"""``llamanb.compat``: llama-cpp-python's API (0.3.36) over llamanb.

Programs written for llama-cpp-python run by changing the import::

    from llamanb.compat import Llama          # was: from llama_cpp import Llama

or, for code that imports ``llama_cpp`` itself (LangChain, LlamaIndex, ...), unchanged
after one opt-in call::

    import llamanb.compat
    llamanb.compat.install_as_llama_cpp()
    import llama_cpp                           # now llamanb.compat

One module per job: ``llama`` (the ``Llama`` class, on ``model_info``, ``embeddings`` and
``evaluation``: the parts of ``Llama`` of those names), ``completion``, ``chat_format``,
``types`` (``llama_types``), ``grammar``, ``speculative``, ``cache``, ``tokenizer``,
``processors``, ``low_level`` (``llama_cpp.llama_cpp``), ``internals``, ``alias``.
"""

from __future__ import annotations

from .. import __version__ as llamanb_version
from ..logits_processor import LogitsProcessor
from . import types as llama_types
from .alias import install_as_llama_cpp
from .cache import BaseLlamaCache, LlamaCache, LlamaDiskCache, LlamaRAMCache
from .chat_format import ChatFormatterResponse, Jinja2ChatFormatter
from .grammar import LlamaGrammar
from .llama import LLAMA_DEFAULT_SEED, Llama
from .low_level import *  # noqa: F403  (llama_cpp re-exports llama.h's names at the top)
from .processors import LogitsProcessorList, MinTokensLogitsProcessor, StoppingCriteria, StoppingCriteriaList
from .speculative import LlamaDraftModel, LlamaPromptLookupDecoding
from .state import LlamaState
from .tokenizer import LlamaTokenizer
from .types import *  # noqa: F403  (llama_cpp re-exports llama_types' names at the top)

__version__ = "0.3.36"
"""The llama-cpp-python version whose API this mirrors (llamanb's own: ``llamanb_version``)."""


__all__ = [
    "BaseLlamaCache",
    "ChatFormatterResponse",
    "Jinja2ChatFormatter",
    "LLAMA_DEFAULT_SEED",
    "Llama",
    "LlamaCache",
    "LlamaDiskCache",
    "LlamaDraftModel",
    "LlamaGrammar",
    "LlamaPromptLookupDecoding",
    "LlamaRAMCache",
    "LlamaState",
    "LlamaTokenizer",
    "LogitsProcessor",
    "LogitsProcessorList",
    "MinTokensLogitsProcessor",
    "StoppingCriteria",
    "StoppingCriteriaList",
    "__version__",
    "install_as_llama_cpp",
    "llama_types",
    "llamanb_version",
]
__all__ += llama_types.__all__
