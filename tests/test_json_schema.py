"""JSON Schema → GBNF: llama.cpp's converter is the only one. llamanb's
``json_schema_to_grammar`` gives its grammar, which llama.cpp's grammar parser takes and
whose output validates against the schema; schemas it would not enforce are refused."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

import llamanb
from llamanb import core, json_schema_to_grammar

SCHEMAS: list[Any] = [
    {},
    {"type": "string"},
    {"type": "string", "minLength": 2, "maxLength": 5},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": "integer", "exclusiveMinimum": 0, "maximum": 100},
    {"type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807},
    {"type": "number"},
    {"type": ["integer", "null"]},
    {"enum": ["a", 1, None, {"x": [True]}]},
    {"const": 'tab\there "quoted" \\ back'},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 4},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
    {"type": "object"},
    {"type": "object", "additionalProperties": {"type": "number"}},
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {}}, "required": ["b"]},
    {"type": "object", "properties": {"x y": {"type": "string"}, "ünï": {"type": "null"}}},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string"}}},
        ]
    },
    {
        "oneOf": [{"type": "string"}, {"type": "object", "properties": {"k": {"$ref": "#/definitions/K"}}}],
        "definitions": {"K": {"type": "integer"}},
    },
    {
        "$defs": {"T": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/T"}}}}},
        "$ref": "#/$defs/T",
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[json.dumps(s)[:40] for s in SCHEMAS])
def test_grammar_is_llama_cpps_and_parses(model: core.Model, schema: Any) -> None:
    grammar = json_schema_to_grammar(schema)
    assert grammar == core.common.json_schema_to_grammar(json.dumps(schema))  # one converter
    assert re.search(r"^root ::= ", grammar, re.M)
    core.Sampler.grammar(model.vocab, grammar).close()  # raises ValueError if llama.cpp rejects it


def test_true_is_any_value() -> None:
    assert json_schema_to_grammar(True) == core.common.json_schema_to_grammar("{}")


# Output sampled through each grammar validates: the promise the refusals below keep.
SAMPLED: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 7},
            "tag": {"enum": ["x", "y"]},
        },
        "required": ["n", "tag"],
    },
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3}, "minItems": 2, "maxItems": 3},
    {"type": "array", "prefixItems": [{"type": "boolean"}, {"type": "null"}, {"const": 5}]},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 2}}},
            {"type": "object", "properties": {"b": {"type": "boolean"}}},
        ]
    },
    {"type": "object", "properties": {"when": {"type": "string", "format": "date"}}, "required": ["when"]},
]


@pytest.mark.parametrize("schema", SAMPLED, ids=[json.dumps(s)[:40] for s in SAMPLED])
def test_sampled_output_validates(llm: llamanb.Llama, schema: dict[str, Any]) -> None:
    for seed in (1, 2):
        out = llm.generate("JSON: ", max_tokens=48, temperature=1.0, top_k=20, seed=seed, json_schema=schema)
        assert out.finish_reason == "stop", out.text
        jsonschema.validate(json.loads(out.text), schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        # Keywords llama.cpp's converter would skip (its grammar would let invalid JSON through).
        ({"type": "string", "pattern": "^x$"}, "pattern"),
        (
            {"type": "object", "properties": {"p": {"type": "string", "pattern": "^(?=a)"}}},
            r"pattern \(at #/properties/p\)",
        ),
        ({"type": "number", "minimum": 0}, "integers only"),
        ({"type": ["number", "null"], "maximum": 3}, "integers only"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf"),
        ({"type": "object", "minProperties": 1}, "minProperties"),
        ({"not": {"type": "string"}}, "not"),
        ({"$defs": {"a": {"if": {}}}, "$ref": "#/$defs/a"}, r"if \(at #/\$defs/a\)"),
        # Combinations it reads wrongly.
        ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "not in properties"),
        ({"type": "object", "additionalProperties": False, "required": ["a"]}, "not in properties"),
        ({"anyOf": [{"type": "string"}], "type": "string"}, "next to"),
        ({"$ref": "#/$defs/a", "minLength": 2, "$defs": {"a": {"type": "string"}}}, "next to"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "open object schemas"),
        ({"type": "object", "properties": {"a": {}}, "allOf": [{"properties": {"b": {}}}]}, "next to"),
        ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, "next to items"),
        ({"type": "array", "prefixItems": [{"type": "string"}], "minItems": 2}, "tuple"),
        # Bounds llama.cpp's converter read wrongly: its errors since patch 0050.
        ({"type": "string", "minLength": 3, "maxLength": 1}, "minLength/maxLength admits no value"),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems/maxItems admits no value"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "integer range admits no value"),
        ({"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 5}, "integer range admits no value"),
        ({"type": "integer", "minimum": 1e300}, "outside 64-bit integers"),
        ({"type": "integer", "maximum": 2**64 - 1}, "outside 64-bit integers"),
        ({"type": "integer", "exclusiveMinimum": 2**63 - 1}, "admits no 64-bit integer"),
        ({"type": "string", "minLength": 2**32 + 1}, "minLength 4294967297 is too large"),
        # What llama.cpp's converter refuses itself.
        ({"$ref": "https://example.com/schema.json"}, "only references into the same document"),
        ({"$ref": "#/$defs/missing"}, "cannot resolve"),
        ({"type": "banana"}, "unrecognized type"),
        ({"enum": []}, "non-empty"),
        ({"type": "object", "properties": {"a": False}}, "must be an object"),
        (False, "no value is valid"),
    ],
)
def test_schemas_it_would_not_enforce_raise(schema: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        json_schema_to_grammar(schema)


def test_inclusive_and_exclusive_bounds_both_count() -> None:
    # Patch 0050: minimum hid exclusiveMinimum (and maximum exclusiveMaximum).
    assert json_schema_to_grammar(
        {"type": "integer", "minimum": 1, "exclusiveMinimum": 3, "maximum": 4.5, "exclusiveMaximum": 9}
    ) == json_schema_to_grammar({"type": "integer", "minimum": 4, "maximum": 4})


def test_a_schema_nested_past_the_stack_is_a_value_error() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(100_000):
        deep = {"type": "array", "items": deep}
    with pytest.raises(ValueError, match="nests"):
        json_schema_to_grammar(deep)


def test_not_a_schema() -> None:
    with pytest.raises(TypeError):
        json_schema_to_grammar("{}")  # type: ignore[arg-type]
