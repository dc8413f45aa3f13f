"""What the fuzz tests of llama-server's request converters share (Responses in
test_server_responses.py, Messages in test_server_anthropic.py): small JSON values of
every type, the run settings, and the property: a chat request, or a ValueError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=8)
fuzz_settings = settings(max_examples=3000, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))


def converts_or_refuses(convert: Callable[[str], str], request: dict[str, Any]) -> dict[str, Any] | None:
    """The chat request ``convert`` makes of ``request``, or None when it refused it
    with a ValueError that says why; anything else fails the test."""
    try:
        out: dict[str, Any] = json.loads(convert(json.dumps(request)))
    except ValueError as error:
        assert str(error)
        return None
    assert isinstance(out["messages"], list)
    return out
