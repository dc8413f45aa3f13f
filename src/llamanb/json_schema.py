"""JSON Schema → GBNF grammar, so that sampled output is JSON valid for the schema.

Supported: ``type`` (one or a list), ``properties``/``required`` (schema order kept,
optional properties may be left out), ``additionalProperties`` on objects without
``properties``, ``items``/``prefixItems``/``minItems``/``maxItems``, ``enum``,
``const``, ``anyOf``/``oneOf``, ``allOf`` of objects, local ``$ref`` (recursion
allowed), string ``minLength``/``maxLength`` and ``format`` date/time/date-time/uuid,
integer ``minimum``/``maximum`` (and the exclusive forms). Keywords that constrain
values in ways a grammar here cannot (``pattern``, ``multipleOf``, ``uniqueItems``,
number bounds, ...) raise ``ValueError`` rather than produce output the schema
rejects. Output is compact JSON with at most one space after ``,`` and ``:``, which
keeps small models from wandering off into whitespace.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Validation keywords this converter cannot enforce: refusing them keeps the promise
# that generated output validates.
_UNSUPPORTED = frozenset({
    "pattern", "patternProperties", "multipleOf", "uniqueItems", "not", "if", "then", "else",
    "dependentRequired", "dependentSchemas", "dependencies", "contains", "minContains", "maxContains",
    "minProperties", "maxProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
})
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

_PRIMITIVES = {
    "ws": '| " "',
    "char": r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\""',
    "integer": '"-"? ("0" | [1-9] [0-9]{0,15})',
    "number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}"',
    "array": '"[" ws (value ("," ws value)*)? "]"',
    "date": '[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])',
    "time": '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
    "uuid": '[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}',
}
_DEPENDS = {"string": ["char"], "value": ["object", "array", "string", "number", "boolean", "null"],
            "object": ["ws", "string", "value"], "array": ["ws", "value"]}
_FORMATS = {"date": "date", "time": "time", "date-time": 'date "T" time', "uuid": "uuid"}
_MAX_DIGITS = 16  # matches the integer rule: longer numbers are not generated
# llama.cpp's GBNF parser refuses a repetition count above 2000 (MAX_REPETITION_THRESHOLD;
# before patch 0013 it made a larger maximum unbounded)
_MAX_REPEAT = 2000


def json_schema_to_grammar(schema: Mapping[str, Any] | bool) -> str:
    """GBNF text (root rule ``root``) accepting exactly the compact JSON ``schema`` allows."""
    if not isinstance(schema, (Mapping, bool)):
        raise TypeError(f"a JSON schema must be a dict or a bool, got {type(schema).__name__}")
    converter = _Converter(schema)
    try:
        root = converter.visit(schema, "root")
    except RecursionError:  # a $ref chain (flat JSON) nests as deep as it likes
        raise ValueError("json_schema nests too deep (counting $ref hops)") from None
    if root != "root":
        converter.rules["root"] = root
    return "\n".join(f"{name} ::= {body}" for name, body in converter.rules.items()) + "\n"


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class _Converter:
    def __init__(self, root: Mapping[str, Any] | bool) -> None:
        self.root = root
        self.rules: dict[str, str] = {}
        self.refs: dict[str, str] = {}

    # -- rules ----------------------------------------------------------------

    def primitive(self, name: str) -> str:
        if name not in self.rules:
            self.rules[name] = _PRIMITIVES[name]
            for dep in _DEPENDS.get(name, []):
                self.primitive(dep)
        return name

    def rule(self, hint: str, body: str) -> str:
        name = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-") or "r"
        unique, i = name, 1
        while unique in self.rules or unique in _PRIMITIVES:
            i += 1
            unique = f"{name}-{i}"
        self.rules[unique] = body
        return unique

    # -- schemas --------------------------------------------------------------

    def visit(self, schema: Any, hint: str) -> str:
        """A GBNF expression for values matching ``schema`` (a rule name or a group)."""
        if schema is True or (isinstance(schema, Mapping) and not _constraining(schema)):
            return self.primitive("value")
        if schema is False:
            raise ValueError(f"json_schema at {hint!r} is false: no value is valid")
        if not isinstance(schema, Mapping):
            raise ValueError(f"json_schema at {hint!r} must be a dict or bool, got {schema!r}")
        bad = sorted(_UNSUPPORTED & schema.keys())
        if bad:
            raise ValueError(f"json_schema keyword(s) not supported: {', '.join(bad)} (at {hint!r})")
        if "$ref" in schema:
            return self.ref(schema["$ref"])
        if "const" in schema:
            return literal(_dump(schema["const"]))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, Sequence) or isinstance(values, str) or not values:
                raise ValueError(f"json_schema enum at {hint!r} must be a non-empty list")
            return "(" + " | ".join(literal(_dump(v)) for v in values) + ")"
        for key in ("anyOf", "oneOf"):  # oneOf's exclusivity is not enforced (rarely matters)
            if key in schema:
                return self.alternatives(schema[key], schema, key, hint)
        if "allOf" in schema:
            return self.visit(self.merge_all_of(schema, hint), hint)
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [self.visit({**schema, "type": t}, f"{hint}-{t}") for t in kind]
            return "(" + " | ".join(options) + ")"
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema or "prefixItems" in schema else None
        if kind is None:
            return self.primitive("value")
        if kind == "object":
            return self.object(schema, hint)
        if kind == "array":
            return self.array(schema, hint)
        if kind == "string":
            return self.string(schema, hint)
        if kind == "integer":
            return self.integer(schema, hint)
        if kind == "number":
            if any(k in schema for k in _BOUNDS):
                raise ValueError(f"json_schema number bounds are not supported (at {hint!r}); use an integer or none")
            return self.primitive("number")
        if kind in ("boolean", "null"):
            return self.primitive(kind)
        raise ValueError(f"json_schema type {kind!r} is not a JSON type (at {hint!r})")

    def ref(self, ref: Any) -> str:
        if ref not in self.refs:
            target = self.resolve(ref)
            # Reserve the name before visiting so that recursive schemas terminate.
            name = self.rule(ref.split("/")[-1] or "ref", "")
            self.refs[ref] = name
            self.rules[name] = self.visit(target, name)
        return self.refs[ref]

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError(f"only local $ref ('#/...') is supported, got {ref!r}")
        target: Any = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise ValueError(f"json_schema $ref {ref!r} does not resolve")
            target = target[part]
        return target

    def alternatives(self, options: Any, schema: Mapping[str, Any], key: str, hint: str) -> str:
        if not isinstance(options, list) or not options:
            raise ValueError(f"json_schema {key} at {hint!r} must be a non-empty list")
        siblings = {k for k in schema if _constraining({k: schema[k]})} - {key}
        if siblings:
            raise ValueError(f"json_schema {key} next to {sorted(siblings)} is not supported (at {hint!r})")
        return "(" + " | ".join(self.visit(s, f"{hint}-{i}") for i, s in enumerate(options)) + ")"

    def merge_all_of(self, schema: Mapping[str, Any], hint: str) -> dict[str, Any]:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        parts = [dict(schema)] + list(schema["allOf"])
        merged_parts = 0
        for part in parts:
            while isinstance(part, Mapping) and "$ref" in part:
                part = self.resolve(part["$ref"])
            if not isinstance(part, Mapping):
                raise ValueError(f"json_schema allOf at {hint!r} must list objects")
            part = {k: v for k, v in part.items() if k != "allOf"}
            if not _constraining(part):
                continue
            if part.get("type", "object") != "object" or not set(part) <= {"type", "properties", "required", "title",
                                                                            "description", "additionalProperties"}:
                raise ValueError(f"json_schema allOf is supported for object schemas only (at {hint!r})")
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += [r for r in part.get("required", []) if r not in merged["required"]]
            merged_parts += 1
        if merged_parts == 0:
            return {}
        return merged

    def object(self, schema: Mapping[str, Any], hint: str) -> str:
        props = schema.get("properties") or {}
        required = list(schema.get("required", []))
        missing = [r for r in required if r not in props]
        if not props:
            extra = schema.get("additionalProperties", True)
            if extra is False:
                if required:
                    raise ValueError(f"json_schema at {hint!r} requires {required} but allows no properties")
                return '"{" ws "}"'
            if missing:
                raise ValueError(f"json_schema required properties {missing} have no schema (at {hint!r})")
            if extra is True or extra == {}:
                return self.primitive("object")
            value = self.visit(extra, f"{hint}-value")
            self.primitive("ws")
            pair = f'{self.primitive("string")} ":" ws {value}'
            return self.rule(hint, f'"{{" ws ({pair} ("," ws {pair})*)? "}}"')
        if missing:
            raise ValueError(f"json_schema required properties {missing} are not in properties (at {hint!r})")
        self.primitive("ws")
        items = [(f'{literal(_dump(str(k)))} ":" ws {self.visit(v, f"{hint}-{k}")}', k in required)
                 for k, v in props.items()]
        return self.rule(hint, f'"{{" ws {self.members(items, hint)} "}}"')

    def members(self, items: list[tuple[str, bool]], hint: str) -> str:
        """Members in schema order; optional ones may be skipped, commas only between."""
        if all(req for _, req in items):
            return ' "," ws '.join(expr for expr, _ in items)
        memo: dict[tuple[int, bool], str] = {}

        def tail(i: int, first: bool) -> str:
            # Grammar for members i.. ; `first`: nothing emitted yet (no leading comma).
            if i == len(items):
                return ""
            key = (i, first)
            if key not in memo:
                expr, req = items[i]
                here = expr if first else f'"," ws {expr}'
                rest = tail(i + 1, False)
                take = f"{here} {rest}".strip()
                skip = "" if req else tail(i + 1, first)
                body = take if req else f"{take} | {skip}" if skip else f"({take})?"
                memo[key] = self.rule(f"{hint}-m{i}{'f' if first else 'c'}", body)
            return memo[key]

        return tail(0, True)

    def array(self, schema: Mapping[str, Any], hint: str) -> str:
        lo = _count(schema, "minItems", hint) or 0
        hi = _count(schema, "maxItems", hint)
        if hi is not None and hi < lo:
            raise ValueError(f"json_schema maxItems < minItems (at {hint!r})")
        self.primitive("ws")
        prefix = schema.get("prefixItems")
        if prefix is not None:
            if not isinstance(prefix, list):
                raise ValueError(f"json_schema prefixItems must be a list (at {hint!r})")
            if schema.get("items", False) is not False or lo not in (0, len(prefix)) or hi not in (None, len(prefix)):
                raise ValueError(f"json_schema prefixItems is supported as a fixed tuple only (at {hint!r})")
            parts = [self.visit(s, f"{hint}-{i}") for i, s in enumerate(prefix)]
            return self.rule(hint, '"[" ws ' + ' "," ws '.join(parts) + ' "]"' if parts else '"[" ws "]"')
        item = self.visit(schema.get("items", True), f"{hint}-item")
        if hi == 0:
            return '"[" ws "]"'
        more = _repeat(f'("," ws {item})', max(lo - 1, 0), None if hi is None else hi - 1)
        body = f"{item} {more}".strip()
        return self.rule(hint, f'"[" ws {body} "]"' if lo >= 1 else f'"[" ws ({body})? "]"')

    def string(self, schema: Mapping[str, Any], hint: str) -> str:
        fmt = schema.get("format")
        if fmt in _FORMATS:
            for name in ("date", "time", "uuid"):
                if name in _FORMATS[fmt]:
                    self.primitive(name)
            return self.rule(hint, f'"\\"" {_FORMATS[fmt]} "\\""')
        lo = _count(schema, "minLength", hint) or 0
        hi = _count(schema, "maxLength", hint)
        if lo == 0 and hi is None:
            return self.primitive("string")
        if hi is not None and hi < lo:
            raise ValueError(f"json_schema maxLength < minLength (at {hint!r})")
        return self.rule(hint, f'"\\"" {_repeat(self.primitive("char"), lo, hi)} "\\""')

    def integer(self, schema: Mapping[str, Any], hint: str) -> str:
        lo, hi = _int_bounds(schema, hint)
        if lo is None and hi is None:
            return self.primitive("integer")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"json_schema integer range is empty (at {hint!r})")
        return self.rule(hint, " | ".join(_int_range(lo, hi)))


def _constraining(schema: Mapping[str, Any]) -> bool:
    """Whether a schema says anything beyond annotations (title, description, ...)."""
    annotations = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "$defs",
                   "definitions", "deprecated", "readOnly", "writeOnly"}
    return any(k not in annotations for k in schema)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _count(schema: Mapping[str, Any], key: str, hint: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"json_schema {key} must be a non-negative integer (at {hint!r})")
    if value > _MAX_REPEAT:
        raise ValueError(f"json_schema {key} {value} is above {_MAX_REPEAT}, the most a grammar enforces (at {hint!r})")
    return value


def _repeat(expr: str, lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{expr}*" if lo == 0 else f"{expr}{{{lo},}}"
    if hi == 0:
        return ""
    if lo == hi:
        return f"{expr}{{{lo}}}"
    return f"{expr}{{{lo},{hi}}}"


def _int_bounds(schema: Mapping[str, Any], hint: str) -> tuple[int | None, int | None]:
    def bound(key: str, rounding: Callable[[float], int]) -> int | None:
        value = schema.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"json_schema {key} must be a finite number (at {hint!r})")
        return rounding(value)  # a fractional bound on an integer: the nearest integer inside

    lo, hi = bound("minimum", math.ceil), bound("maximum", math.floor)
    ex_lo, ex_hi = bound("exclusiveMinimum", math.floor), bound("exclusiveMaximum", math.ceil)
    if ex_lo is not None:
        lo = ex_lo + 1 if lo is None else max(lo, ex_lo + 1)
    if ex_hi is not None:
        hi = ex_hi - 1 if hi is None else min(hi, ex_hi - 1)
    return lo, hi


def _int_range(lo: int | None, hi: int | None) -> list[str]:
    """GBNF alternatives for the integers in [lo, hi] (None: unbounded), no leading zeros."""
    out: list[str] = []
    if lo is None or lo < 0:  # negative part: -(magnitudes in [max(1,-hi), -lo])
        mag_lo = 1 if hi is None or hi >= 0 else -hi
        mag_hi = None if lo is None else -lo
        out += [f'"-" {alt}' for alt in _nonneg_range(mag_lo, mag_hi)]
    if hi is None or hi >= 0:
        out += _nonneg_range(max(lo or 0, 0), hi)
    return [f"({alt})" for alt in out]


def _nonneg_range(lo: int, hi: int | None) -> list[str]:
    if hi is not None and lo > hi:
        return []
    out: list[str] = []
    top = hi if hi is not None else 10**_MAX_DIGITS - 1
    for digits in range(len(str(lo)), len(str(top)) + 1):
        first = 0 if digits == 1 else 10 ** (digits - 1)
        a, b = max(lo, first), min(top, 10**digits - 1)
        if a > b:
            continue
        if hi is None and a == first and b == 10**digits - 1 and digits > 1:
            # Every number of this many digits and above: one rule covers the rest.
            out.append(f"[1-9] [0-9]{{{digits - 1},{_MAX_DIGITS - 1}}}")
            break
        out += _same_length(str(a), str(b))
    return out


def _same_length(a: str, b: str) -> list[str]:
    """Alternatives matching the decimal strings in [a, b], both of the same length."""
    if len(a) == 1:
        return [f"[{a}-{b}]"]
    if a[0] == b[0]:
        return [f'"{a[0]}" {rest}' for rest in _same_length(a[1:], b[1:])]
    n = len(a) - 1
    low_whole, high_whole = a[1:] == "0" * n, b[1:] == "9" * n  # first digit's full tail range
    start = int(a[0]) if low_whole else int(a[0]) + 1
    end = int(b[0]) if high_whole else int(b[0]) - 1
    out = [] if low_whole else [f'"{a[0]}" {rest}' for rest in _same_length(a[1:], "9" * n)]
    if start <= end:
        out.append(f"[{start}-{end}] [0-9]{{{n}}}")
    if not high_whole:
        out += [f'"{b[0]}" {rest}' for rest in _same_length("0" * n, b[1:])]
    return out
