"""``install_as_llama_cpp()``: let ``import llama_cpp`` load llamanb.compat, as PyMySQL's
``install_as_MySQLdb()`` does for MySQLdb. Opt-in: nothing is registered until called."""

from __future__ import annotations

import importlib
import sys
import types

# llama_cpp's submodules → the llamanb.compat modules that provide them.
SUBMODULES = {
    "llama": "llamanb.compat.llama",
    "llama_chat_format": "llamanb.compat.chat_format",
    "llama_types": "llamanb.compat.types",
    "llama_grammar": "llamanb.compat.grammar",
    "llama_speculative": "llamanb.compat.speculative",
    "llama_cache": "llamanb.compat.cache",
    "llama_tokenizer": "llamanb.compat.tokenizer",
    "llama_cpp": "llamanb.compat.low_level",
    "_internals": "llamanb.compat.internals",
}


def install_as_llama_cpp() -> types.ModuleType:
    """Register ``llama_cpp`` and its submodules in ``sys.modules`` (returns the
    package). Code that imports ``llama_cpp`` afterwards runs on llamanb."""
    package = importlib.import_module("llamanb.compat")
    sys.modules["llama_cpp"] = package
    for name, target in SUBMODULES.items():
        module = importlib.import_module(target)
        sys.modules[f"llama_cpp.{name}"] = module
        setattr(package, name, module)
    return package
