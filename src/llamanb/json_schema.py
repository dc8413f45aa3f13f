"""JSON Schema → GBNF grammar: llama.cpp's converter (common/json-schema-to-grammar),
behind a check that refuses what it would not enforce.

llama.cpp's converter skips keywords it cannot turn into a grammar (``multipleOf``,
``uniqueItems``, number bounds, a ``pattern`` it cannot translate, ...) and a few
combinations it reads wrongly (siblings of ``anyOf``, ``required`` names without a
property, ``allOf`` of non-objects, ``items`` next to ``prefixItems``); its grammar then
accepts JSON the schema rejects. ``check_enforceable`` refuses those schemas with a
ValueError naming the keyword and where it is, so that output constrained by a schema
always validates against it. Bounds that admit nothing or do not fit 64 bits are the
converter's own errors (patch 0050).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from . import core

# Validation keywords a grammar from llama.cpp's converter does not enforce. ``pattern``
# is among them: the converter translates some regexes and lets any string through for
# the rest (printing a warning), and which is which cannot be told from here.
_UNENFORCED = frozenset(
    {
        "pattern",
        "patternProperties",
        "multipleOf",
        "uniqueItems",
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# Keywords that only describe: next to anyOf/oneOf/$ref/allOf they change nothing.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)


def json_schema_to_grammar(schema: Mapping[str, Any] | bool) -> str:
    """GBNF text (root rule ``root``) from llama.cpp's converter, accepting only JSON
    that ``schema`` allows; ValueError for a schema it cannot enforce or convert."""
    if schema is True:
        schema = {}  # any value (llama.cpp's converter reads only objects)
    elif schema is False:
        raise ValueError("json_schema is false: no value is valid")
    elif not isinstance(schema, Mapping):
        raise TypeError(f"a JSON schema must be a dict or a bool, got {type(schema).__name__}")
    check_enforceable(schema)
    try:
        text = json.dumps(schema)
    except RecursionError:
        raise ValueError("json_schema nests too deep") from None
    except TypeError as error:  # a value JSON has no form for, e.g. a set
        raise ValueError(f"json_schema is not JSON: {error}") from None
    return core.common.json_schema_to_grammar(text)


def check_enforceable(schema: Mapping[str, Any]) -> None:
    """Raise ValueError if llama.cpp's grammar for ``schema`` would accept JSON that
    ``schema`` rejects (what is left to llama.cpp's converter to refuse, it refuses)."""
    for path, node in _subschemas(schema):
        _check_node(schema, node, path)


def _subschemas(root: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema object in ``root`` with its JSON pointer, without recursion (a
    schema may nest deeper than Python's stack) and each object once."""
    stack: list[tuple[str, Any]] = [("#", root)]
    seen: set[int] = set()
    while stack:
        path, node = stack.pop()
        if not isinstance(node, Mapping) or id(node) in seen:
            continue  # booleans and malformed values are llama.cpp's converter's to judge
        seen.add(id(node))
        yield path, node
        for key in ("properties", "$defs", "definitions"):
            children = node.get(key)
            if isinstance(children, Mapping):
                stack += [(f"{path}/{key}/{name}", child) for name, child in children.items()]
        for key in ("anyOf", "oneOf", "allOf", "prefixItems", "items"):
            children = node.get(key)
            if isinstance(children, list):
                stack += [(f"{path}/{key}/{i}", child) for i, child in enumerate(children)]
        for key in ("items", "additionalProperties"):
            stack.append((f"{path}/{key}", node.get(key)))


def _check_node(root: Mapping[str, Any], node: Mapping[str, Any], path: str) -> None:
    unenforced = sorted(_UNENFORCED & node.keys())
    if unenforced:
        raise ValueError(f"json_schema keyword(s) not supported: {', '.join(unenforced)} (at {path})")
    for key in ("$ref", "anyOf", "oneOf", "allOf"):
        if key in node:  # llama.cpp's converter reads this one keyword and skips the rest
            allowed = {key} | (
                {"required"} | ({"type"} if node.get("type") == "object" else set()) if key == "allOf" else set()
            )
            ignored = sorted(set(node) - _ANNOTATIONS - allowed)
            if ignored:
                raise ValueError(f"json_schema {key} next to {ignored} is not supported (at {path})")
    if "allOf" in node:
        _check_all_of(root, node["allOf"], path)
    types = _types(node)
    if any(k in node for k in _BOUNDS) and ("integer" not in types or "number" in types):
        raise ValueError(f"json_schema minimum/maximum are supported on integers only (at {path})")
    _check_tuple(node, path)
    _check_required(node, path)


def _types(node: Mapping[str, Any]) -> list[Any]:
    kind = node.get("type")
    return kind if isinstance(kind, list) else [kind]


def _check_all_of(root: Mapping[str, Any], parts: Any, path: str) -> None:
    """llama.cpp merges ``allOf`` parts as objects (every property required) and turns
    anything else into an empty object: only object parts are enforced."""
    if not isinstance(parts, list):
        return  # the converter refuses it
    for i, part in enumerate(parts):
        hops = 0
        while isinstance(part, Mapping) and isinstance(part.get("$ref"), str) and hops < 64:
            part, hops = _resolve(root, part["$ref"]), hops + 1
        if not isinstance(part, Mapping):
            raise ValueError(f"json_schema allOf parts must be object schemas (at {path}/allOf/{i})")
        extra = set(part) - _ANNOTATIONS - {"type", "properties", "required", "additionalProperties"}
        if part.get("type", "object") != "object" or extra or part.get("additionalProperties", True) is False:
            raise ValueError(f"json_schema allOf is supported for open object schemas only (at {path}/allOf/{i})")


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    target: Any = root
    for part in [p for p in ref.removeprefix("#").split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or part not in target:
            return None  # the converter says why
        target = target[part]
    return target


def _check_tuple(node: Mapping[str, Any], path: str) -> None:
    """llama.cpp writes a tuple (``prefixItems``, or ``items`` as a list) as exactly its
    items; ``items`` next to ``prefixItems`` replaces the tuple."""
    if "prefixItems" in node and "items" in node:
        raise ValueError(f"json_schema prefixItems next to items is not supported (at {path})")
    tuple_items = node.get("prefixItems", node.get("items"))
    if isinstance(tuple_items, list):
        lo, hi = node.get("minItems", 0), node.get("maxItems")
        if (isinstance(lo, int) and lo > len(tuple_items)) or (isinstance(hi, int) and hi < len(tuple_items)):
            raise ValueError(f"json_schema minItems/maxItems with a tuple is supported as its length only (at {path})")


def _check_required(node: Mapping[str, Any], path: str) -> None:
    """llama.cpp makes required only the names that have a property schema."""
    required = node.get("required")
    if required is None:
        return
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise ValueError(f"json_schema required must be a list of property names (at {path})")
    if "allOf" in node:
        return  # the parts' properties: llama.cpp requires them all
    properties = node.get("properties")
    missing = [name for name in required if not isinstance(properties, Mapping) or name not in properties]
    if missing:
        raise ValueError(f"json_schema required properties {missing} are not in properties (at {path})")
