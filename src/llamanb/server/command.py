"""``python -m llamanb.server`` (and ``llamanb serve``): arguments and startup.

Importing this module needs no server extra; ``serve`` imports uvicorn and Starlette
and says how to install them when they are missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import hub
from ..loading import add_repack_argument
from ..speculative import SpeculativeOptions
from .config import ServerConfig

SHUTDOWN_GRACE_S = 5.0  # what running requests get to finish once the server is told to stop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="GGUF file or hf://org/repo/file.gguf (default: SmolLM2-135M-Instruct, fetched once)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument("--parallel", type=int, default=8,
                        help="requests decoded together as sequences of one context (default: %(default)s)")
    parser.add_argument("--n-ctx", type=int, default=8192,
                        help="KV cache size in tokens, split evenly between the parallel requests "
                             "(default: %(default)s)")
    parser.add_argument("--n-batch", type=int, default=512, help="most tokens per decode (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--n-gpu-layers", type=int, default=None,
                        help="layers to offload to the GPU or the RPC workers (-1: all; default: 0, or all "
                             "with --rpc-servers)")
    parser.add_argument("--rpc-servers", default="",
                        help="comma-separated ggml RPC workers (host:port, see `llamanb rpc-server`) that hold "
                             "the model's layers")
    add_repack_argument(parser)
    parser.add_argument("--lora", dest="lora", metavar="PATH", action=AddLora, default=[],
                        help="a LoRA adapter GGUF, applied at scale 1 to requests that name no adapters "
                             "(repeatable; adapter ids follow the command-line order)")
    parser.add_argument("--lora-scaled", dest="lora", metavar="PATH SCALE", nargs="+", action=AddLora,
                        help="a LoRA adapter with its default scale (also llama-server's PATH:SCALE[,...])")
    parser.add_argument("--alias", help="the model id clients send (default: the file name)")
    parser.add_argument("--chat-template", help="Jinja source or a llama.cpp built-in name (default: the model's)")
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' on every route but /health "
                             "(default: $LLAMANB_API_KEY, else none)")
    parser.add_argument("--max-queue", type=int, default=256,
                        help="requests that may wait for a free slot; more get 503 with Retry-After "
                             "(default: %(default)s; -1: no bound)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a completion may take, waiting for a slot included; a slower one "
                             "ends with 408 (or an error event in its stream) and frees its slot "
                             "(default: no limit)")
    parser.add_argument("--verbose", action="store_true", help="show llama.cpp's log and every request")
    parser.add_argument("--mmproj", default=None,
                        help="the model's multimodal projector (mmproj GGUF): image and audio parts in chat")
    parser.add_argument("--allow-remote-media", action="store_true",
                        help="fetch http(s) image/audio URLs (default: refused; send data: URLs)")
    parser.add_argument("--spec-type", default=None, metavar="TYPE[,TYPE]",
                        help="speculative decoding per slot: from the n-grams of each conversation "
                             "(ngram-simple, ngram-map-k, ngram-map-k4v, ngram-mod, ngram-cache) or from "
                             "--model-draft (draft-simple) (default: off, or draft-simple with --model-draft; "
                             "replies are the same, only the number of decodes changes)")
    parser.add_argument("--model-draft", "--draft-model", "-md", dest="model_draft", default=None, metavar="PATH",
                        help="a smaller model with the same vocabulary that drafts for every slot")
    parser.add_argument("--draft-max", type=int, default=None,
                        help="most tokens drafted per step (default: each type's llama.cpp default)")
    parser.add_argument("--slot-save-path", default=None, metavar="DIR",
                        help="directory for POST /slots/{id}?action=save|restore (a slot's KV cache as a file; "
                             "default: those actions are refused)")
    parser.add_argument("--max-request-bytes", type=int, default=32 << 20,
                        help="largest request body, in bytes (default: %(default)s)")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        model=args.model, host=args.host, port=args.port, parallel=args.parallel, n_ctx=args.n_ctx,
        n_batch=args.n_batch, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
        rpc_servers=tuple(s.strip() for s in args.rpc_servers.split(",") if s.strip()), repack=args.repack,
        lora=tuple(args.lora),
        alias=args.alias, chat_template=args.chat_template,
        api_key=args.api_key if args.api_key is not None else os.environ.get("LLAMANB_API_KEY"),  # "" is refused
        max_queue=None if args.max_queue < 0 else args.max_queue, timeout=args.timeout,
        mmproj=args.mmproj, allow_remote_media=args.allow_remote_media, max_request_bytes=args.max_request_bytes,
        verbose=args.verbose, speculative=_speculative(args), draft_model=args.model_draft,
        slot_save_path=args.slot_save_path,
    )


def _speculative(args: argparse.Namespace) -> SpeculativeOptions | None:
    if args.spec_type is None and args.model_draft is None:
        if args.draft_max is not None:
            raise ValueError("--draft-max needs --spec-type or --model-draft")
        return None
    if args.spec_type is None:  # --model-draft alone
        return SpeculativeOptions(("draft-simple",), draft_max=args.draft_max)
    types = tuple(t.strip() for t in args.spec_type.split(",") if t.strip())
    return SpeculativeOptions(types, draft_max=args.draft_max)  # ServerConfig checks the draft model


class AddLora(argparse.Action):
    """``--lora PATH`` and ``--lora-scaled`` add (path, scale) to one list in command-line
    order, as llama-server numbers its adapters."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        adapters = list(getattr(namespace, self.dest) or [])
        if isinstance(values, str):  # --lora PATH
            adapters.append((values, 1.0))
        else:
            adapters.extend(_scaled_adapters(parser, list(values)))
        setattr(namespace, self.dest, adapters)


def _scaled_adapters(parser: argparse.ArgumentParser, values: list[str]) -> list[tuple[str, float]]:
    """``PATH SCALE``, or llama-server's ``PATH:SCALE[,PATH:SCALE...]``."""
    pairs = [(values[0], values[1])] if len(values) == 2 else [
        tuple(item.rsplit(":", 1)) for value in values for item in value.split(",") if item]
    out: list[tuple[str, float]] = []
    for pair in pairs:
        try:
            path, scale = pair
            out.append((path, float(scale)))
        except ValueError:
            parser.error(f"--lora-scaled takes PATH SCALE or PATH:SCALE[,PATH:SCALE...], got {' '.join(values)}")
    return out


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted. Raises ValueError for bad settings and
    FileNotFoundError for a missing model."""
    config = config_from_args(args)
    if config.model is not None and not hub.is_hub_uri(config.model) and not Path(config.model).is_file():
        # Checked here: a load failure inside the app's startup is a uvicorn traceback.
        raise FileNotFoundError(f"model file not found: {config.model}")
    for path, _ in config.lora:
        if not Path(path).is_file():
            raise FileNotFoundError(f"LoRA adapter file not found: {path}")
    if config.mmproj is not None and not Path(config.mmproj).is_file():
        raise FileNotFoundError(f"projector (mmproj) file not found: {config.mmproj}")
    if config.draft_model is not None and not hub.is_hub_uri(config.draft_model) and not Path(
            config.draft_model).is_file():
        raise FileNotFoundError(f"draft model file not found: {config.draft_model}")
    try:
        from .app import Api
        from .shutdown import serve_until_signalled
    except ImportError as err:
        print(f"llamanb serve needs the server extra ({err.name} is missing): pip install 'llamanb[server]'",
              file=sys.stderr)
        return 1
    # On SIGTERM or Ctrl-C, running requests get SHUTDOWN_GRACE_S to finish, then end with an error.
    api = Api(config)
    started = serve_until_signalled(api.app, api.drain, host=config.host, port=config.port,
                                    grace=SHUTDOWN_GRACE_S, verbose=config.verbose)
    return 0 if started else 3  # uvicorn's exit status for a failed startup


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llamanb.server",
                                     description="Serve a GGUF model over an OpenAI-compatible HTTP API.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"llamanb serve: error: {err}", file=sys.stderr)
        return 2
