"""``FrontOptions``: the HTTP front's own settings (``llamanb serve``'s flags of the front,
docs/server.md), beside llama-server's arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vertex import VertexRoutes


@dataclass(frozen=True)
class FrontOptions:
    """What the HTTP front adds to llama-server's own arguments."""

    max_queue: int = 256  # requests that may wait for a slot; beyond it 503 (-1: no bound)
    max_request_bytes: int = 32 << 20  # a request body; beyond it 413
    light_threads: int = 4  # threads for GET routes (/health, /props, /metrics, ...)
    allow_remote_media: bool = False  # fetch http(s) media URLs (remote_media.py rules; else 400)
    remote_media_allow_private: bool = False  # with it: private and loopback addresses too (a LAN, tests)
    body_timeout_s: float = 60.0  # the whole body must arrive within it; else 408
    header_timeout_s: float = 10.0  # the request line and headers (uvicorn's protocol, command.py)
    max_stop_strings: int = 256  # `stop` / `stop_sequences` entries; beyond it 400
    max_stop_bytes: int = 32 << 10  # their total UTF-8 size; beyond it 400
    cache_share_across_keys: bool = False  # requests with different API keys reuse each other's cached prompts
    vertex: VertexRoutes | None = None  # Vertex AI's prediction route (AIP_MODE=PREDICTION; vertex.py)

    def __post_init__(self) -> None:
        if self.max_queue < -1:
            raise ValueError(f"max_queue must be >= -1, got {self.max_queue}")
        if self.max_request_bytes < 1 or self.light_threads < 1:
            raise ValueError("max_request_bytes and light_threads must be >= 1")
        if self.body_timeout_s <= 0 or self.header_timeout_s <= 0:
            raise ValueError("body_timeout_s and header_timeout_s must be > 0")
        if self.max_stop_strings < 0 or self.max_stop_bytes < 0:
            raise ValueError("max_stop_strings and max_stop_bytes must be >= 0")
