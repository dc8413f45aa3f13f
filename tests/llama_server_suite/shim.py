"""llama-server's command line, as its own test suite builds it, run as ``llamanb serve``.

The suite (tools/server/tests of the pinned tree) starts ``$LLAMA_SERVER_BIN_PATH`` with
llama-server's flags. Everything passes through unchanged except the models its presets
download from the Hub, which this machine cannot reach: each is replaced by a local
stand-in (STAND_INS). ``runner.py`` writes an executable that calls ``main()``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# Hub repo (or repo/file) -> what stands in for it: the default model, with extra flags.
EMBEDDING_FLAGS = ["--pooling", "mean"]  # SmolLM2 declares no pooling; bert-bge-small pools by mean
STAND_INS: dict[str, list[str]] = {
    "ggml-org/test-model-stories260K": [],
    "ggml-org/test-model-stories260K-infill": [],
    "ggml-org/stories15M_MOE": [],
    "ggml-org/tinylaya-for-testing-gguf": [],
    "ggml-org/models/bert-bge-small/ggml-model-f16.gguf": EMBEDDING_FLAGS,
    "ggml-org/models/jina-reranker-v1-tiny-en/ggml-model-f16.gguf": [],  # no local reranker: listed
    "ggml-org/tinyopenjev-for-testing-gguf:Q8_0": ["@mmproj"],
    "ggml-org/tinygemma3-GGUF:Q8_0": ["@mmproj"],
}
VALUE_FLAGS = {"--hf-repo", "--hf-file", "--hf-repo-draft"}


def translate(argv: Sequence[str], model: str, mmproj: str | None) -> list[str]:
    """llama-server's arguments with every Hub model replaced by its local stand-in."""
    args: list[str] = []
    hub: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        if items[i] in VALUE_FLAGS and i + 1 < len(items):
            hub[items[i]] = items[i + 1]
            i += 2
            continue
        args.append(items[i])
        i += 1
    if "--hf-repo" in hub:
        repo = hub["--hf-repo"]
        key = repo + ("/" + hub["--hf-file"] if "--hf-file" in hub else "")
        extra = STAND_INS.get(key, [])
        args = ["--model", model, *args]
        if "@mmproj" in extra and mmproj and "--no-mmproj" not in args:  # the Hub's projector, unless refused
            args += ["--mmproj", mmproj]
        if extra is EMBEDDING_FLAGS and "--pooling" not in args:  # the test's own --pooling wins
            args += EMBEDDING_FLAGS
    if "--hf-repo-draft" in hub:
        args += ["--model-draft", model]
    return args


def main() -> None:
    model = os.environ["LLAMANB_SUITE_MODEL"]
    mmproj = os.environ.get("LLAMANB_SUITE_MMPROJ")
    from llamanb.server.command import main as serve

    sys.exit(serve(translate(sys.argv[1:], model, mmproj)))
