"""`import llamanb` is light: the facade, numpy, jinja2 and asyncio load on first use."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import llamanb


def test_import_loads_only_the_core() -> None:
    code = (
        "import sys, json, llamanb; "
        "print(json.dumps(sorted(m for m in ('numpy', 'jinja2', 'asyncio', 'llamanb.llama') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert json.loads(out.stdout) == []


def test_every_public_name_resolves() -> None:
    for name in llamanb.__all__:
        assert getattr(llamanb, name) is not None, name
    assert llamanb.Llama.__module__ == "llamanb.llama"
    assert set(llamanb.__all__) <= set(dir(llamanb))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Lama'"):
        llamanb.Lama  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(llamanb, "__wrapped__")


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    # Importing llamanb.x sets the package attribute x: a submodule named like a lazy
    # public name would replace it (llamanb.embed the function vs llamanb/embed.py).
    for info in pkgutil.walk_packages(llamanb.__path__, "llamanb."):
        spec = importlib.util.find_spec(info.name)
        python_source = spec is not None and spec.origin is not None and spec.origin.endswith(".py")
        # Not: the server (its extra may be absent), __main__ (runs the CLI), or the ggml
        # shared libraries a dispatch wheel ships beside the module (lib*.so look like modules).
        if python_source and not info.name.startswith("llamanb.server") and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in llamanb.__all__:
        if name != "core":
            assert not isinstance(getattr(llamanb, name), types.ModuleType), name
