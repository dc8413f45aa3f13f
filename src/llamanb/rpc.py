"""A ggml RPC worker: ``llamanb rpc-server`` / ``python -m llamanb.rpc``.

A worker lends this machine's GPUs (or its CPU when it has none) to llamanb or
llama.cpp clients: ``Llama(path, rpc_servers=["host:50052", ...])`` places the
model's layers on the workers. The protocol has no authentication and no
encryption, and a client can make the worker allocate memory at will: bind to
loopback (the default) or a trusted private network only.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import threading
from collections.abc import Sequence

from . import core

DEFAULT_PORT = 50052
logger = logging.getLogger("llamanb")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    n_threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Serve until the process is interrupted (Ctrl-C) or killed.

    Raises :class:`llamanb.core.RpcConnectionError` when the address cannot be
    served (port in use, not a local address).
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port}")
    if not _is_loopback(host):
        logger.warning(
            "RPC worker on %s:%d: ggml RPC is unauthenticated and unencrypted; anyone who can "
            "reach this address can use this machine's devices and memory",
            host,
            port,
        )
    threads = n_threads or max(1, os.cpu_count() or 1)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            core.ggml.rpc_serve(f"{host}:{port}", threads, None if cache_dir is None else os.fspath(cache_dir))
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            failure.append(err)

    # The server blocks in C for good; a daemon thread keeps Ctrl-C working here.
    worker = threading.Thread(target=run, name="llamanb-rpc", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.25)
    if failure:
        raise failure[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback; the protocol is unauthenticated)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument(
        "--cache-dir", default=None, help="keep received weights here so that reloading a model skips the transfer"
    )


def run_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    try:
        serve(args.host, args.port, n_threads=args.threads, cache_dir=args.cache_dir)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llamanb.rpc", description="Serve this machine over ggml RPC.")
    add_arguments(parser)
    try:
        return run_command(parser.parse_args(argv))
    except (core.RpcConnectionError, ValueError) as err:
        print(f"llamanb rpc-server: error: {err}", flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
