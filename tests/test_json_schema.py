"""The JSON Schema → GBNF converter: llama.cpp parses every grammar it writes, integer
ranges are exact, and what it cannot enforce is refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llamanb import core, json_schema_to_grammar
from llamanb.json_schema import _int_range, literal

SCHEMAS: list[Any] = [
    True,
    {},
    {"type": "string"},
    {"type": "string", "minLength": 2, "maxLength": 5},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": "integer", "exclusiveMinimum": 0, "maximum": 100},
    {"type": "number"},
    {"type": ["integer", "null"]},
    {"enum": ["a", 1, None, {"x": [True]}]},
    {"const": "tab\there \"quoted\" \\ back"},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 4},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {"type": "object"},
    {"type": "object", "additionalProperties": {"type": "number"}},
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {}}, "required": ["b"]},
    {"type": "object", "properties": {"x y": {"type": "string"}, "ünï": {"type": "null"}}},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
               {"properties": {"b": {"type": "string"}}}]},
    {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"k": {"$ref": "#/definitions/K"}}}],
     "definitions": {"K": {"type": "integer"}}},
    {"$defs": {"T": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/T"}}}}},
     "$ref": "#/$defs/T"},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[json.dumps(s)[:40] for s in SCHEMAS])
def test_grammar_parses_in_llama_cpp(model: core.Model, schema: Any) -> None:
    grammar = json_schema_to_grammar(schema)
    assert re.search(r"^root ::= ", grammar, re.M)
    core.Sampler.grammar(model.vocab, grammar).close()  # raises ValueError if llama.cpp rejects it


def _alternatives_regex(alternatives: list[str]) -> re.Pattern[str]:
    """Translate the converter's digit alternatives (literals, classes, {n}) to a regex."""
    parts = []
    for alt in alternatives:
        tokens = alt.strip()[1:-1].split(" ")
        parts.append("".join(re.escape(t.strip('"')) if t.startswith('"') else t for t in tokens))
    return re.compile("^(" + "|".join(parts) + ")$")


@pytest.mark.parametrize(("lo", "hi"), [
    (0, 120), (-15, 1233), (5, None), (None, 7), (None, -3), (-10, -3), (0, 0), (100, 999), (37, 4021), (1, 1),
])
def test_integer_ranges_are_exact(lo: int | None, hi: int | None) -> None:
    pattern = _alternatives_regex(_int_range(lo, hi))
    for value in range(-2500, 5000):
        inside = (lo is None or value >= lo) and (hi is None or value <= hi)
        assert bool(pattern.match(str(value))) == inside, value
    assert not pattern.match("-0") and not pattern.match("007")


def test_literal_escapes() -> None:
    assert literal('a"b\\c\n\x01') == '"a\\"b\\\\c\\n\\x01"'


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "string", "pattern": "^x$"}, "pattern"),
    ({"type": "number", "minimum": 0}, "number bounds"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"not": {"type": "string"}}, "not"),
    ({"$ref": "https://example.com/schema.json"}, "local"),
    ({"$ref": "#/$defs/missing"}, "does not resolve"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "not in properties"),
    ({"type": "banana"}, "not a JSON type"),
    ({"enum": []}, "non-empty"),
    ({"type": "string", "minLength": 3, "maxLength": 1}, "maxLength"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "empty"),
    ({"anyOf": [{"type": "string"}], "type": "string"}, "next to"),
    (False, "no value is valid"),
])
def test_unsupported_or_invalid_schemas_raise(schema: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        json_schema_to_grammar(schema)


def test_not_a_schema() -> None:
    with pytest.raises(TypeError):
        json_schema_to_grammar("{}")  # type: ignore[arg-type]
