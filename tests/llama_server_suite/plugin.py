"""A pytest plugin for llama-server's suite: deselects the tests listed in excluded.txt
(``NODEID  # reason``; a test name without parameters covers all its cases, a file name
all its tests), and answers the suite's downloads of its test images from the Hub with
local stand-ins (as shim.py does for its models)."""

from __future__ import annotations

from pathlib import Path

import pytest

EXCLUDED = Path(__file__).with_name("excluded.txt")
# the suite's test images (requests.get in test_vision_api, test_slot_save, test_systemone):
# each URL gets its own seeded noise PNG, so the tests that need an image, not this one, run
TEST_IMAGES = "https://huggingface.co/ggml-org/tinygemma3-GGUF/resolve/main/test/"


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


@pytest.fixture(autouse=True)
def _local_test_images(monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    import requests

    from ..support.mmproj_file import noise_png

    real_get = requests.get

    def get(url: object, *args: object, **kwargs: object) -> requests.Response:
        if isinstance(url, str) and url.startswith(TEST_IMAGES):
            response = requests.Response()
            response.status_code = 200
            response.url = url
            response._content = noise_png(seed=zlib.crc32(url.encode()))
            return response
        return real_get(url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(requests, "get", get)
