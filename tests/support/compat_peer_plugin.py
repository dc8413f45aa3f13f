"""pytest plugin for llama-cpp-python's own tests (tests/test_compat_peer.py runs them):
``import llama_cpp`` gets llamanb.compat (install_as_llama_cpp), and the models those
tests download from the Hugging Face Hub are local ones: the default model for the
transformer models, and for the recurrent (mamba-130m), hybrid (Falcon-H1-Tiny) and
embedding (bge-small) ones tiny random-weight models of those kinds written with gguf-py
(tests/support/synthetic_models.py: Mamba; Jamba, a Mamba + attention hybrid; BERT with bge-small's
vocabulary and CLS pooling). Nothing else is changed."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import llamanb
import llamanb.compat

llamanb.compat.install_as_llama_cpp()

# The Hub files the tests ask for → local models. Each transformer LM the tests name
# becomes the default SmolLM2-135M (a llama-architecture LM; the tests that assert another
# model's exact tokens are listed in compat_peer_excluded.txt). The recurrent, hybrid and
# embedding models become tiny random-weight models of those kinds, written on first use
# (the tests check that state is reset, saved and restored exactly, and that pooled
# embeddings batch as they run alone).
LOCAL = {
    ("lmstudio-community/Qwen3.5-0.8B-GGUF", "Qwen3.5-0.8B-Q8_0.gguf"): "default",
    ("ggml-org/models", "tinyllamas/stories15M-q4_0.gguf"): "default",
    ("CompendiumLabs/bge-small-en-v1.5-gguf", "bge-small-en-v1.5-q4_k_m.gguf"): "bert",
    ("QuantFactory/mamba-130m-hf-GGUF", "mamba-130m-hf.Q2_K.gguf"): "mamba",
    ("tiiuae/Falcon-H1-Tiny-90M-Instruct-GGUF", "Falcon-H1-Tiny-90M-Instruct-Q2_K.gguf"): "jamba",
}
_written: dict[str, str] = {}


def _synthetic(kind: str) -> str:
    if kind not in _written:
        import synthetic_models  # tests/support/, on PYTHONPATH

        folder = Path(tempfile.mkdtemp(prefix="llamanb-peer-models-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        write = {
            "mamba": synthetic_models.write_mamba,
            "jamba": synthetic_models.write_jamba,
            "bert": synthetic_models.write_bert,
        }[kind]
        _written[kind] = str(write(folder / f"{kind}.gguf"))
    return _written[kind]


def hf_hub_download(repo_id: str, filename: str, **kwargs: Any) -> str:
    kind = LOCAL.get((repo_id, filename))
    if kind == "default":
        return str(llamanb.default_model())
    if kind is not None:
        return _synthetic(kind)
    raise RuntimeError(f"no local stand-in for {repo_id}/{filename} (the Hub is not reached from this suite)")


hub = types.ModuleType("huggingface_hub")
try:
    import huggingface_hub as real_hub

    hub.__dict__.update(real_hub.__dict__)
except ImportError:
    pass
hub.hf_hub_download = hf_hub_download  # type: ignore[attr-defined]
sys.modules["huggingface_hub"] = hub

try:
    import scipy.special  # noqa: F401
except ImportError:  # test_llama.py imports log_softmax and never calls it; spare the scipy install

    def log_softmax(x: npt.ArrayLike, axis: int | None = None) -> npt.NDArray[np.float64]:
        a = np.asarray(x, dtype=np.float64)
        shifted = a - a.max(axis=axis, keepdims=True)
        out: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return out

    scipy = types.ModuleType("scipy")
    special = types.ModuleType("scipy.special")
    special.log_softmax = log_softmax  # type: ignore[attr-defined]
    scipy.special = special  # type: ignore[attr-defined]
    sys.modules["scipy"], sys.modules["scipy.special"] = scipy, special

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect exactly the ids in $LLAMANB_PEER_DESELECT (one a line: the excluded list)."""
    wanted = set(filter(None, os.environ.get("LLAMANB_PEER_DESELECT", "").splitlines()))
    dropped = [item for item in items if item.nodeid in wanted]
    unknown = wanted - {item.nodeid for item in dropped}
    if unknown:
        raise pytest.UsageError(f"compat_peer_excluded.txt names tests that do not exist: {sorted(unknown)}")
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.nodeid not in wanted]
