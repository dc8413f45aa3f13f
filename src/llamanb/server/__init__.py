"""llama-server in process (``pip install 'llamanb[server]'``).

Run it with ``llamanb serve`` (or ``python -m llamanb.server``) and llama-server's own
arguments, or embed the ASGI app: ``llamanb.server.create_app(["--model", PATH])``.
The engine, routes and argument parser are llama-server's (``core.server.Server``); the HTTP
front is ``asgi.LlamaServerApp``. This module imports neither Starlette nor uvicorn.
"""

from .asgi import LlamaServerApp, create_app
from .front_options import FrontOptions

__all__ = ["FrontOptions", "LlamaServerApp", "create_app"]
