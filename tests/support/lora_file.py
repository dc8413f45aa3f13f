"""A real LoRA adapter GGUF for the default model, written with llama.cpp's gguf-py."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from llamanb import core


def write_lora(path: Path, model: core.Model, scale_b: float) -> None:
    """A real LoRA GGUF for SmolLM2's q projection in every layer (rank 4)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 4.0)
    rng = np.random.default_rng(0)
    n = model.n_embd
    for layer in range(model.n_layer):
        a = rng.standard_normal((4, n)).astype(np.float32)
        b = (scale_b * rng.standard_normal((n, 4))).astype(np.float32)
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_a", a)
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
