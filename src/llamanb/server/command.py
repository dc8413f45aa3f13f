"""``llamanb serve`` (and ``python -m llamanb.server``): llama-server's command line.

Every argument is llama-server's, parsed by llama.cpp's own parser (``--help`` lists
them; ``LLAMA_ARG_*`` environment variables work too). llamanb adds the HTTP front's
options (``--max-queue``, ``--max-request-bytes``, ``--body-timeout``,
``--header-timeout``, ``--max-stop-strings``, ``--allow-remote-media``,
``--cache-share-across-keys``), serves
the default model when none is named, and keeps its older flag names as aliases.

Importing this module needs no server extra; ``serve`` imports uvicorn and says how to
install it when it is missing.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .front_options import FrontOptions
from .vertex import VertexRoutes

if TYPE_CHECKING:
    from .. import core

SHUTDOWN_GRACE_S = 5.0  # what running requests get to finish once the server is told to stop

# llamanb's earlier names for llama-server's flags
ALIASES = {
    "--n-ctx": "--ctx-size",
    "--n-batch": "--batch-size",
    "--draft-max": "--spec-draft-n-max",
    "--rpc-servers": "--rpc",
}
# what names a model for llama-server (else llamanb serves its default model)
MODEL_FLAGS = frozenset({"-m", "--model", "-mu", "--model-url", "-hf", "-hfr", "--hf-repo", "-dr", "--docker-repo"})
MODEL_ENV = ("LLAMA_ARG_MODEL", "LLAMA_ARG_MODEL_URL", "LLAMA_ARG_HF_REPO", "LLAMA_ARG_DOCKER_REPO")


def front_parser() -> argparse.ArgumentParser:
    """The options of llamanb's HTTP front (the rest goes to llama-server's parser)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="requests that may wait for a free slot; more get 503 with Retry-After "
        "(default: %(default)s; -1: no bound)",
    )
    parser.add_argument(
        "--max-request-bytes", type=int, default=32 << 20, help="largest request body, in bytes (default: %(default)s)"
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        help="seconds a request body may take to arrive; slower gets 408 (default: %(default)s)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may take to send its request line and headers; slower is "
        "closed (default: %(default)s)",
    )
    parser.add_argument(
        "--max-stop-strings",
        type=int,
        default=256,
        help="stop strings a request may give (`stop`, `stop_sequences`); more get 400 (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-remote-media",
        action="store_true",
        help="fetch http(s) image/audio URLs in requests, from public addresses only "
        "(default: refused; send data: URLs)",
    )
    parser.add_argument(
        "--remote-media-allow-private",
        action="store_true",
        help="with --allow-remote-media: private and loopback addresses too (a trusted network)",
    )
    parser.add_argument(
        "--cache-share-across-keys",
        action="store_true",
        help="let requests with different API keys reuse each other's cached prompt prefixes "
        "(default: each key has its own; cached_tokens and timing would tell one client "
        "what another's prompt holds)",
    )
    return parser


def llama_server_args(rest: Sequence[str]) -> list[str]:
    """llamanb's aliases and defaults applied to a llama-server command line."""
    args: list[str] = []
    items = list(rest)
    i = 0
    while i < len(items):
        arg = items[i]
        name, eq, value = arg.partition("=")
        if name in ALIASES:
            args.append(ALIASES[name] + (eq + value if eq else ""))
        elif name == "--lora-scaled" and not eq and i + 2 < len(items) and _is_number(items[i + 2 : i + 3]):
            args += ["--lora-scaled", f"{items[i + 1]}:{items[i + 2]}"]  # llamanb's PATH SCALE form
            i += 3
            continue
        else:
            args.append(arg)
        i += 1
    if "--api-key" not in args and "LLAMANB_API_KEY" in os.environ and "LLAMA_API_KEY" not in os.environ:
        args += ["--api-key", os.environ["LLAMANB_API_KEY"]]
    for j, arg in enumerate(args):
        if arg == "--api-key" and j + 1 < len(args) and not args[j + 1]:
            raise ValueError("--api-key must not be empty (an empty key would leave the server open)")
    if (
        not any(a.split("=")[0] in MODEL_FLAGS for a in args)
        and not any(os.environ.get(e) for e in MODEL_ENV)
        and not _asks_for_help(args)
    ):
        from .. import default_model

        args = ["--model", str(default_model()), *args]
    return args


def _is_number(values: Sequence[str]) -> bool:
    try:
        float(values[0])
        return True
    except (ValueError, IndexError):
        return False


def _asks_for_help(args: Sequence[str]) -> bool:
    return any(a in ("-h", "--help", "--usage", "--version", "--list-devices", "--completion-bash") for a in args)


def serve(argv: Sequence[str]) -> int:
    """Run llama-server's engine behind llamanb's front until interrupted."""
    front, rest = front_parser().parse_known_args(list(argv))
    if _asks_for_help(rest) and any(a in ("-h", "--help", "--usage") for a in rest):
        print("llamanb serve: llama-server's arguments, plus llamanb's HTTP front:\n")
        print(front_parser().format_help().split("\n", 2)[-1], flush=True)  # llama.cpp then exits
    try:
        import uvicorn  # noqa: F401
    except ImportError as err:
        print(
            f"llamanb serve needs the server extra ({err.name} is missing): pip install 'llamanb[server]'",
            file=sys.stderr,
        )
        return 1
    from .. import core
    from .asgi import LlamaServerApp
    from .shutdown import serve_until_signalled

    args = llama_server_args(rest)
    core.server.log_setup()
    server = core.server.Server(args)  # exits for --help/--version as llama-server does
    options = FrontOptions(
        max_queue=front.max_queue,
        max_request_bytes=front.max_request_bytes,
        allow_remote_media=front.allow_remote_media,
        remote_media_allow_private=front.remote_media_allow_private,
        body_timeout_s=front.body_timeout,
        header_timeout_s=front.header_timeout,
        max_stop_strings=front.max_stop_strings,
        cache_share_across_keys=front.cache_share_across_keys,
        vertex=VertexRoutes.from_environ(),
    )
    app = LlamaServerApp(server, options)
    _raise_open_files_limit()
    port = server.port
    if options.vertex is not None and options.vertex.port != port:  # as llama-server: AIP_HTTP_PORT wins
        print(
            f"llamanb serve: Vertex AI mode: serving AIP_HTTP_PORT {options.vertex.port}, not port {port}",
            file=sys.stderr,
        )
        port = options.vertex.port
    sockets = [_listen(host, port) for host in server.hostnames]
    app.start()
    started = serve_until_signalled(
        app,
        app.drain,
        sockets=sockets,
        grace=SHUTDOWN_GRACE_S,
        ssl_keyfile=server.ssl_file_key or None,
        ssl_certfile=server.ssl_file_cert or None,
        stop_when=lambda stop: _stop_if_the_model_fails(server, stop),
        header_timeout=options.header_timeout_s,
    )
    return 0 if started and app.server.state != "failed" else 1


def _raise_open_files_limit() -> None:
    """The soft limit on open files up to the hard one: each connection is a descriptor,
    and at the usual soft limit (1024) a thousand idle connections locked clients out."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = 1 << 16 if hard == resource.RLIM_INFINITY else min(hard, 1 << 16)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):  # Windows, or a limit the process may not raise
        pass


def _stop_if_the_model_fails(server: core.server.Server, stop: Callable[[], None]) -> None:
    """llama-server exits when its model does not load; so does llamanb serve (uvicorn
    stops, serve() returns 1)."""

    def watch() -> None:
        while server.state == "loading":
            server.wait_ready(1.0)
        if server.state == "failed":
            stop()

    threading.Thread(target=watch, name="llamanb-load-watch", daemon=True).start()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket: a TCP address, or a UNIX socket path ending in .sock (as llama-server)."""
    if host.endswith(".sock"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(host):
            os.unlink(host)
        sock.bind(host)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return serve(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        print(f"llamanb serve: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the address is in use, ...
        print(f"llamanb serve: error: {err}", file=sys.stderr)
        return 1
