"""The ``llamanb`` command: ``llamanb generate "prompt"``, ``info``, ``serve`` and ``rpc-server``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import core, rpc
from .llama import Llama
from .loading import ModelOptions, add_repack_argument, open_model
from .server import command as server_command


def _generate(args: argparse.Namespace) -> int:
    with Llama(
        args.model, n_ctx=args.n_ctx, n_threads=args.threads, seed=args.seed, verbose=args.verbose, repack=args.repack
    ) as llm:
        for piece in llm.stream(args.prompt, max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed):
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _info(args: argparse.Namespace) -> int:
    if not args.verbose:
        core.log_disable()
    with open_model(args.model, ModelOptions(repack=args.repack)) as model:
        vocab = model.vocab
        print(f"path:        {model.path}")
        print(f"description: {model.desc}")
        print(f"parameters:  {model.n_params:,}")
        print(f"size:        {model.size:,} bytes")
        print(f"n_ctx_train: {model.n_ctx_train}")
        print(f"n_embd:      {model.n_embd}")
        print(f"n_layer:     {model.n_layer}")
        weights = ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(model.buffer_types.items()))
        print(f"weights:     {weights}")
        print(f"vocab:       {vocab.type.name}, {vocab.n_tokens} tokens, bos={vocab.bos} eos={vocab.eos}")
        print(f"chat:        {'yes' if model.chat_template() else 'no'} (template in metadata)")
        print(f"llama.cpp:   {core.LLAMA_CPP_COMMIT}")
        print(f"system:      {core.system_info().strip()}")
        print(f"backends:    {', '.join(core.ggml.backends())}")
        devices = [d["name"] + " (" + d["description"] + ")" for d in core.ggml.devices()]
        print(f"devices:     {', '.join(devices)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamanb", description="Run GGUF models with llama.cpp.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="complete a prompt, streaming the text")
    gen.add_argument("prompt")
    gen.add_argument(
        "--model", help="GGUF file or hf://org/repo/file.gguf (default: SmolLM2-135M-Instruct, fetched once)"
    )
    gen.add_argument("--max-tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--n-ctx", type=int, default=4096)
    gen.add_argument("--threads", type=int, default=None)
    gen.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    add_repack_argument(gen)
    gen.set_defaults(run=_generate)

    info = sub.add_parser("info", help="describe a model")
    info.add_argument("--model", help="GGUF file (default: the default model)")
    info.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    add_repack_argument(info)
    info.set_defaults(run=_info)

    # serve's arguments are llama-server's, parsed by llama.cpp (main() hands them over)
    sub.add_parser(
        "serve",
        add_help=False,
        help="llama-server in process: its flags and routes (pip install 'llamanb[server]'; `llamanb serve --help`)",
    )

    rpc_server = sub.add_parser(
        "rpc-server",
        help="lend this machine's devices to other hosts over ggml RPC (unauthenticated: loopback by default)",
    )
    rpc.add_arguments(rpc_server)
    rpc_server.set_defaults(run=rpc.run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return server_command.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (FileNotFoundError, IsADirectoryError, core.LlamaError, ValueError) as err:
        print(f"llamanb: error: {err}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
