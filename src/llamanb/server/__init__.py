"""An OpenAI-compatible HTTP server (``pip install 'llamanb[server]'``).

Run it with ``python -m llamanb.server --model PATH`` (or ``llamanb serve``), or
embed the ASGI app: ``llamanb.server.app.create_app(ServerConfig(...))``.
Concurrent requests are decoded together as parallel sequences of one context
(``engine.Engine``). This module imports neither Starlette nor uvicorn.
"""

from .config import ServerConfig

__all__ = ["ServerConfig"]
