"""A pytest plugin for llama-server's suite: deselects the tests listed in excluded.txt
(``NODEID  # reason``; a test name without parameters covers all its cases, a file name
all its tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

EXCLUDED = Path(__file__).with_name("excluded.txt")


def excluded() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in EXCLUDED.read_text().splitlines():
        node, _, reason = line.partition("#")
        if node.strip():
            out[node.strip()] = reason.strip()
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed = excluded()
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        file = item.nodeid.split("::", 1)[0]
        (dropped if item.nodeid in listed or base in listed or file in listed else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
