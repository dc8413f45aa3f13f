"""A target and draft pair with one vocabulary, made from what we have: the default model
(Q4_1) drafts for a Q8_0 copy of itself, quantized once by ``core.model_quantize`` and
cached. Used by tests/test_speculative.py and bench/speculative.py."""

from __future__ import annotations

import os
from pathlib import Path

import llamanb
from llamanb import core


def q8_target() -> Path:
    """The Q8_0 target, made once from the default Q4_1 model and cached."""
    out = llamanb.cache_dir() / "fixtures" / "SmolLM2-135M-Instruct.Q8_0-from-Q4_1.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        params = core.QuantizeParams()
        params.ftype = 7  # Q8_0
        params.allow_requantize = True
        params.nthread = 2
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        core.model_quantize(llamanb.default_model(), tmp, params)
        tmp.replace(out)
    return out
