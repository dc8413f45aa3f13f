"""llamanb's libmtmd path against llama.cpp's own: ``llama-mtmd-cli`` built from the same
tree and libraries (tests/support/mtmd_cli.py) on the same model, projector and image gives the
same image token count, bit-identical image embeddings and the same greedy reply.

Building the CLI compiles all of upstream's common/ (minutes on 2 cores), so this runs
when the CLI is there: ``make mtmd-check`` builds it and runs this file (or set
LLAMANB_MTMD_CLI=1 to build it from here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import llamanb
from llamanb import core

from .support import mtmd_cli
from .support.mmproj_file import N_IMAGE_TOKENS, noise_png, write_mmproj

# builds llama-mtmd-cli when make mtmd-check has not, then runs it and libmtmd
pytestmark = pytest.mark.slow

QUESTION = "What is in this image?"
N_PREDICT = 16


@pytest.fixture(scope="module")
def cli() -> Path:
    found = mtmd_cli.find()
    if found is not None:
        return found
    if os.environ.get("LLAMANB_MTMD_CLI") == "1":
        return mtmd_cli.build()
    pytest.skip("llama-mtmd-cli is not built: `make mtmd-check` builds it and runs this check")


def test_llama_mtmd_cli_agrees(cli: Path, model_path: Path, model: core.Model, tmp_path: Path) -> None:
    mmproj = write_mmproj(tmp_path / "mmproj.gguf", model.n_embd)
    image = tmp_path / "image.png"
    image.write_bytes(noise_png(5))
    reference = mtmd_cli.run(cli, model_path, mmproj, image, QUESTION, N_PREDICT, tmp_path)

    with llamanb.Llama(model_path, n_ctx=1024, n_threads=2, mmproj=mmproj) as llm:
        mtmd = llm.projector
        assert mtmd is not None
        chunks = mtmd.tokenize(mtmd.marker, [mtmd.bitmap_from_file(image)], add_special=False)
        embeddings = mtmd.encode_chunk(chunks[0])
        assert reference.embeddings.shape == embeddings.shape == (N_IMAGE_TOKENS, model.n_embd)
        assert np.array_equal(reference.embeddings, embeddings), float(np.abs(reference.embeddings - embeddings).max())
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": str(image)}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ]
        reply = llm.chat(messages, max_tokens=N_PREDICT, temperature=0)
    assert reply.text.strip() == reference.text, (reply.text, reference.text)
