"""LoRA adapters of a loaded model: GGUF adapter files with their scales.

A ``Llama(lora=[(path, scale), ...])`` applies its adapters to every context it makes
(generation, ``generate_batch``, embeddings); the server loads its ``--lora`` files the
same way and picks the set per request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from . import core

LoraSpec = tuple[str | os.PathLike[str], float]
"""An adapter file and its scale (1.0: as trained; 0: off)."""

Adapters = tuple[tuple[core.LoraAdapter, float], ...]
"""Loaded adapters with their scales, as ``Context.set_adapters_lora`` takes them."""


def load_adapters(model: core.Model, specs: Sequence[LoraSpec]) -> Adapters:
    """Load every adapter of ``specs`` for ``model``; none stays loaded if one fails."""
    loaded: list[tuple[core.LoraAdapter, float]] = []
    try:
        for path, scale in specs:
            if not math.isfinite(scale):
                raise ValueError(f"the LoRA scale of {path} must be a finite number, got {scale}")
            loaded.append((core.LoraAdapter(model, path), float(scale)))
    except BaseException:
        close_adapters(tuple(loaded))
        raise
    return tuple(loaded)


def apply_adapters(ctx: core.Context, adapters: Adapters) -> None:
    """Use ``adapters`` in ``ctx`` (a new context has none)."""
    if adapters:
        ctx.set_adapters_lora(list(adapters))


def close_adapters(adapters: Adapters) -> None:
    for adapter, _ in adapters:
        adapter.close()
