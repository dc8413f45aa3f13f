"""pytest plugin for llama-cpp-python's own tests (tests/test_compat_peer.py runs them):
``import llama_cpp`` gets llamanb.compat (install_as_llama_cpp), and the models those
tests download from the Hugging Face Hub are local ones. Nothing else is changed."""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import numpy as np
import numpy.typing as npt

import llamanb
import llamanb.compat

llamanb.compat.install_as_llama_cpp()

# The Hub files the tests ask for → local models. Each transformer model the tests name
# becomes the default SmolLM2-135M (a llama-architecture LM without pooling; the tests
# that assert another model's exact tokens are listed in compat_peer_excluded.txt).
# Recurrent and hybrid models have no local stand-in: asking for one fails the test.
LOCAL = {
    ("lmstudio-community/Qwen3.5-0.8B-GGUF", "Qwen3.5-0.8B-Q8_0.gguf"): "default",
    ("ggml-org/models", "tinyllamas/stories15M-q4_0.gguf"): "default",
    ("CompendiumLabs/bge-small-en-v1.5-gguf", "bge-small-en-v1.5-q4_k_m.gguf"): "default",
}


def hf_hub_download(repo_id: str, filename: str, **kwargs: Any) -> str:
    if LOCAL.get((repo_id, filename)) == "default":
        return str(llamanb.default_model())
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
