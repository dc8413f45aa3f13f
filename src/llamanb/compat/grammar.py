"""``llama_cpp.llama_grammar``: a GBNF grammar, as ``llama_cpp.LlamaGrammar`` builds it
(checked by llama.cpp's own parser when a sampler is made from it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..json_schema import json_schema_to_grammar

LLAMA_GRAMMAR_DEFAULT_ROOT = "root"


class LlamaGrammar:
    def __init__(self, *args: object, _grammar: str, **kwargs: object) -> None:
        self._grammar = _grammar
        self._root = LLAMA_GRAMMAR_DEFAULT_ROOT

    @property
    def grammar(self) -> str:
        """The GBNF source."""
        return self._grammar

    @classmethod
    def from_string(cls, grammar: str, verbose: bool = True) -> LlamaGrammar:
        return cls(_grammar=grammar)

    @classmethod
    def from_file(cls, file: str | os.PathLike[str], verbose: bool = True) -> LlamaGrammar:
        return cls(_grammar=Path(file).read_text())

    @classmethod
    def from_json_schema(cls, json_schema: str, verbose: bool = True) -> LlamaGrammar:
        return cls(_grammar=json_schema_to_grammar(json.loads(json_schema)))


def json_schema_to_gbnf(schema: str, prop_order: list[str] | None = None) -> str:
    """llama-cpp-python's helper: the GBNF of a JSON Schema given as text."""
    return json_schema_to_grammar(json.loads(schema))
