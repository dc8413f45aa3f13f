"""llama-server in process (``pip install 'llamanb[server]'``).

Run it with ``llamanb serve`` (or ``python -m llamanb.server``) and llama-server's own
arguments, or embed the ASGI app: ``llamanb.server.create_app(["--model", PATH])``.
The engine, routes and argument parser are llama-server's (``core.Server``); the HTTP
front is ``asgi.LlamaServerApp``. This module imports neither Starlette nor uvicorn.

``ServerConfig`` and ``app.create_app`` are the earlier Python engine, kept until its
features have moved in front of llama-server's (docs/server.md).
"""

from .asgi import FrontOptions, LlamaServerApp, create_app
from .config import ServerConfig

__all__ = ["FrontOptions", "LlamaServerApp", "ServerConfig", "create_app"]
