"""The server's settings, shared by the command line and ``create_app``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..speculative import SpeculativeOptions


@dataclass(frozen=True)
class ServerConfig:
    """What to serve and how.

    ``n_ctx`` is the whole KV cache, shared by ``parallel`` sequences (as in
    llama.cpp's server): each request may use ``n_ctx // parallel`` tokens, prompt
    and reply together. ``model=None`` serves the default model.
    """

    model: str | Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    parallel: int = 8
    n_ctx: int = 8192
    n_batch: int = 512
    n_threads: int | None = None
    n_gpu_layers: int | None = None  # None: 0, or all layers with rpc_servers
    rpc_servers: tuple[str, ...] = ()  # ggml RPC workers ("host:port") that hold the layers
    repack: bool = True  # weights in the CPU's extra buffer types (AMX, CPU_REPACK); see ModelOptions
    lora: tuple[tuple[str | Path, float], ...] = ()  # LoRA adapters (path, scale for requests that name none)
    alias: str | None = None
    chat_template: str | None = None
    api_key: str | None = None  # clients must send "Authorization: Bearer <api_key>" (not for /health)
    max_queue: int | None = 256  # requests that may wait for a slot; beyond it 503 (None: no bound)
    timeout: float | None = None  # seconds a generation may take, waiting included; beyond it 408
    verbose: bool = False
    mmproj: str | Path | None = None  # the model's multimodal projector: image/audio parts in chat
    allow_remote_media: bool = False  # fetch http(s) media URLs (off: the server fetches nothing)
    max_media_bytes: int = 16 << 20  # each image or audio item, decoded
    max_request_bytes: int = 32 << 20  # a request body; beyond it 413
    speculative: SpeculativeOptions | None = None  # speculation per slot (None: off)
    draft_model: str | Path | None = None  # the draft model of 'draft-simple' (same vocabulary as model)
    slot_save_path: str | Path | None = None  # directory of POST /slots/{id}?action=save|restore files

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {self.parallel}")
        if self.n_batch < self.parallel:
            # Every live sequence puts one token in each decode, which holds n_batch.
            raise ValueError(f"n_batch ({self.n_batch}) must be >= parallel ({self.parallel})")
        if self.n_ctx_slot < 2:
            raise ValueError(f"n_ctx ({self.n_ctx}) leaves no room for {self.parallel} sequences")
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty")
        for path, scale in self.lora:
            if not math.isfinite(scale):
                raise ValueError(f"the LoRA scale of {path} must be a finite number, got {scale}")
        if self.max_media_bytes < 1 or self.max_request_bytes < 1:
            raise ValueError("max_media_bytes and max_request_bytes must be >= 1")
        wants_draft = self.speculative is not None and self.speculative.needs_draft_model
        if wants_draft and self.draft_model is None:
            raise ValueError("speculative type 'draft-simple' needs draft_model (--model-draft)")
        if self.draft_model is not None and not wants_draft:
            raise ValueError("draft_model (--model-draft) is used only by the 'draft-simple' speculative type")
        if self.slot_save_path is not None and not Path(self.slot_save_path).is_dir():
            raise ValueError(f"slot_save_path is not a directory: {self.slot_save_path}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {self.n_threads}")

    @property
    def n_ctx_slot(self) -> int:
        """Tokens one request may use (prompt and reply)."""
        return self.n_ctx // self.parallel
