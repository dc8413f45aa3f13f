"""Seed inputs for the fuzz targets: tiny GGUF models written with gguf-py (llama.cpp's
own writer), llama.cpp's GBNF grammars, JSON schemas, and its real chat templates."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

VENDOR = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp"


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet: the 256 single-byte tokens of a byte-level BPE."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_model(quantized: bool, n_embd: int = 32, n_ff: int = 64) -> bytes:
    """A one-layer llama with a byte-level BPE vocabulary (about 40 KB)."""
    import gguf

    rng = np.random.default_rng(7)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + _byte_tokens() + ["Ġt", "he", "Ġthe", "in", "Ġa"]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_block_count(1)
        w.add_context_length(256)
        w.add_embedding_length(n_embd)
        w.add_feed_forward_length(n_ff)
        w.add_head_count(2)
        w.add_head_count_kv(2)
        w.add_rope_dimension_count(n_embd // 2)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_file_type(7 if quantized else 0)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_chat_template(
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        )

        def matrix(name: str, rows: int, cols: int) -> None:
            x = (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)
            if quantized:
                q = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(name, x)

        def vector(name: str, n: int) -> None:
            w.add_tensor(name, np.ones(n, dtype=np.float32))

        matrix("token_embd.weight", len(tokens), n_embd)
        vector("output_norm.weight", n_embd)
        vector("blk.0.attn_norm.weight", n_embd)
        for part in ("q", "k", "v", "output"):
            matrix(f"blk.0.attn_{part}.weight", n_embd, n_embd)
        vector("blk.0.ffn_norm.weight", n_embd)
        matrix("blk.0.ffn_gate.weight", n_ff, n_embd)
        matrix("blk.0.ffn_up.weight", n_ff, n_embd)
        matrix("blk.0.ffn_down.weight", n_embd, n_ff)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


SCHEMAS = [
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name"],
    },
    {"type": "array", "items": {"enum": ["red", "green", 3, None]}, "minItems": 1, "maxItems": 4},
    {"anyOf": [{"type": "number"}, {"type": "string", "pattern": "^[a-z]{2,5}$"}]},
    {"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"},
    {"type": "string", "format": "date-time"},
]


def seeds(target: str) -> list[bytes]:
    if target in ("gguf_reader", "vocab", "model"):
        return [tiny_model(False), tiny_model(True)]
    if target == "grammar":
        return [p.read_bytes() for p in sorted((VENDOR / "grammars").glob("*.gbnf"))]
    if target == "json_schema":
        return [json.dumps(s).encode() for s in SCHEMAS]
    if target == "chat_template":
        files = sorted((VENDOR / "models" / "templates").glob("*.jinja"), key=lambda p: p.stat().st_size)
        return [p.read_bytes() for p in files[:12]]
    raise ValueError(f"unknown target {target!r}")
