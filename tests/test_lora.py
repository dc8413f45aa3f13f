"""LoRA adapters in the facade and compat: ``Llama(lora=[(path, scale)])`` applies them
to every context the Llama makes (generation, generate_batch, embeddings), and
``compat.Llama(lora_path=..., lora_scale=...)`` is llama-cpp-python's form of it. The
adapter is a real GGUF written with gguf-py (tests/support/lora_file.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import llamanb
from llamanb import compat, core

from .support.lora_file import write_lora

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, model: core.Model) -> Path:
    path = tmp_path_factory.mktemp("lora") / "q_proj.gguf"
    write_lora(path, model, scale_b=0.05)  # changes the reply, keeps it confident
    return path


def test_lora_applies_to_every_context(model_path: Path, adapter: Path, llm: llamanb.Llama) -> None:
    plain = llm.generate(PROMPT, max_tokens=12, temperature=0)
    plain_vec = llm.embed(["a lighthouse"])[0]
    with llamanb.Llama(model_path, n_ctx=512, n_threads=2, lora=[(adapter, 1.0)]) as adapted:
        assert len(adapted.adapters) == 1 and adapted.adapters[0][1] == 1.0
        out = adapted.generate(PROMPT, max_tokens=12, temperature=0)
        assert out.tokens != plain.tokens
        (batched,) = adapted.generate_batch([PROMPT], max_tokens=12, temperature=0)
        assert batched.tokens[:4] == out.tokens[:4]  # the batch context has the adapter too
        vec = adapted.embed(["a lighthouse"])[0]
        assert not np.allclose(vec, plain_vec, atol=1e-4)
    # Scale 0 is the model itself.
    with llamanb.Llama(model_path, n_ctx=512, n_threads=2, lora=[(adapter, 0.0)]) as off:
        assert off.generate(PROMPT, max_tokens=12, temperature=0).tokens == plain.tokens


def test_compat_lora_path(model_path: Path, adapter: Path) -> None:
    with llamanb.Llama(model_path, n_ctx=512, n_threads=2, lora=[(adapter, 0.5)]) as facade:
        want = facade.generate(PROMPT, max_tokens=8, temperature=0).text
    with compat.Llama(
        model_path=str(model_path),
        n_ctx=512,
        n_threads=2,
        verbose=False,
        lora_path=str(adapter),
        lora_scale=0.5,
        lora_base=None,
    ) as llm:
        out = llm(PROMPT, max_tokens=8, temperature=0)
    assert isinstance(out, dict) and out["choices"][0]["text"] == want


def test_bad_adapters_raise(model_path: Path, adapter: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite"):
        llamanb.Llama(model_path, n_ctx=256, n_threads=2, lora=[(adapter, float("nan"))])
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(core.LlamaError):
        llamanb.Llama(model_path, n_ctx=256, n_threads=2, lora=[(adapter, 1.0), (junk, 1.0)])
    with pytest.raises((FileNotFoundError, core.LlamaError)):
        llamanb.Llama(model_path, n_ctx=256, n_threads=2, lora=[(tmp_path / "missing.gguf", 1.0)])
