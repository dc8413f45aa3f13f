"""A tiny synthetic vision projector (mmproj GGUF) for the default model, written with
llama.cpp's gguf-py.

No small vision-language model is in the package registries we reach, so the tests
make one: a llava-style ``mlp`` projector (``clip.projector_type = "mlp"``) over a
2-layer ViT on 32x32 images cut into 8-pixel patches (16 image tokens), with seeded
random weights and a projection width equal to the text model's ``n_embd``. The names
of keys and tensors are those clip.cpp's loader reads (tools/mtmd/clip-impl.h); the
llava graph (tools/mtmd/models/llava.cpp) runs every layer but the last, then the
two-layer MLP (mm.0, GELU, mm.2). The output means nothing; it exercises every step
of libmtmd's real path: loading, preprocessing, the ViT encode, the projection and the
decode of the embeddings into the text model.

Run as a script to write one: ``python tests/support/mmproj_file.py OUT.gguf [N_EMBD]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_EMBD = 64  # ViT width
N_HEAD = 4
N_FF = 96  # != N_EMBD: clip.cpp swaps ffn up/down of old llava files when ffn_down's ne[0] == n_embd
N_LAYER = 2
N_HIDDEN = 128  # the MLP projector's hidden width
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


def _start(path: Path, name: str, seed: int) -> tuple[gguf.GGUFWriter, Callable[..., np.ndarray]]:
    """A clip GGUF writer named ``name``, and the seeded maker of its random weights."""
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", name)
    return writer, w


def write_mmproj(path: Path, projection_dim: int, *, seed: int = 0) -> Path:
    """Write the projector for a text model of width ``projection_dim`` to ``path``."""
    writer, w = _start(path, "llamanb synthetic test projector", seed)
    writer.add_string("general.description", "random weights; for tests only")
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", N_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", N_FF)
    writer.add_uint32("clip.vision.block_count", N_LAYER)
    writer.add_uint32("clip.vision.projection_dim", projection_dim)
    writer.add_uint32("clip.vision.attention.head_count", N_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    n_patches = N_IMAGE_TOKENS
    # numpy shapes are ggml's ne reversed: the patch embedding is a conv kernel
    # ne = [patch, patch, 3, n_embd]; a linear layer's weight is (n_out, n_in).
    writer.add_tensor("v.patch_embd.weight", w(N_EMBD, 3, PATCH_SIZE, PATCH_SIZE, scale=0.1))
    writer.add_tensor("v.patch_embd.bias", w(N_EMBD))
    writer.add_tensor("v.position_embd.weight", w(n_patches, N_EMBD))
    writer.add_tensor("v.pre_ln.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("v.pre_ln.bias", np.zeros(N_EMBD, dtype=np.float32))
    for il in range(N_LAYER):
        p = f"v.blk.{il}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{p}.{name}.weight", w(N_EMBD, N_EMBD))
            writer.add_tensor(f"{p}.{name}.bias", w(N_EMBD))
        for ln in ("ln1", "ln2"):
            writer.add_tensor(f"{p}.{ln}.weight", (1.0 + w(N_EMBD)).astype(np.float32))
            writer.add_tensor(f"{p}.{ln}.bias", w(N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.weight", w(N_FF, N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.bias", w(N_FF))
        writer.add_tensor(f"{p}.ffn_down.weight", w(N_EMBD, N_FF))
        writer.add_tensor(f"{p}.ffn_down.bias", w(N_EMBD))
    # The projection into the text model's embedding space: scaled like its token
    # embeddings, so the decoder sees inputs of a sensible size.
    writer.add_tensor("mm.0.weight", w(N_HIDDEN, N_EMBD, scale=0.2))
    writer.add_tensor("mm.0.bias", w(N_HIDDEN))
    writer.add_tensor("mm.2.weight", w(projection_dim, N_HIDDEN, scale=0.1))
    writer.add_tensor("mm.2.bias", w(projection_dim))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


AUDIO_N_MEL = 128
AUDIO_N_POS = 1500  # whisper: 3000 mel frames (30 s) per chunk, halved by the second conv


def write_audio_mmproj(path: Path, projection_dim: int, *, seed: int = 0) -> Path:
    """A tiny Qwen2-Audio-style projector (``qwen2a``): a whisper encoder (two conv1d
    layers, 2 transformer layers of width N_EMBD) and a linear projection, seeded random
    weights. libmtmd cuts audio into 30-second chunks of 750 tokens each (whisper's 1500
    positions, average-pooled by 2)."""
    writer, w = _start(path, "llamanb synthetic audio projector", seed)
    writer.add_string("clip.projector_type", "qwen2a")
    writer.add_bool("clip.has_vision_encoder", False)
    writer.add_bool("clip.has_audio_encoder", True)
    writer.add_uint32("clip.audio.embedding_length", N_EMBD)
    writer.add_uint32("clip.audio.feed_forward_length", N_FF)
    writer.add_uint32("clip.audio.block_count", N_LAYER)
    writer.add_uint32("clip.audio.projection_dim", projection_dim)
    writer.add_uint32("clip.audio.attention.head_count", N_HEAD)
    writer.add_float32("clip.audio.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.audio.num_mel_bins", AUDIO_N_MEL)
    # conv kernels: ggml ne = [kernel, in, out]; biases broadcast over time: ne = [1, out]
    writer.add_tensor("a.conv1d.1.weight", w(N_EMBD, AUDIO_N_MEL, 3, scale=0.1))
    writer.add_tensor("a.conv1d.1.bias", w(N_EMBD, 1))
    writer.add_tensor("a.conv1d.2.weight", w(N_EMBD, N_EMBD, 3, scale=0.1))
    writer.add_tensor("a.conv1d.2.bias", w(N_EMBD, 1))
    writer.add_tensor("a.position_embd.weight", w(AUDIO_N_POS, N_EMBD))
    for il in range(N_LAYER):
        p = f"a.blk.{il}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{p}.{name}.weight", w(N_EMBD, N_EMBD))
            if name != "attn_k":  # whisper's k projection has no bias
                writer.add_tensor(f"{p}.{name}.bias", w(N_EMBD))
        for ln in ("ln1", "ln2"):
            writer.add_tensor(f"{p}.{ln}.weight", (1.0 + w(N_EMBD)).astype(np.float32))
            writer.add_tensor(f"{p}.{ln}.bias", w(N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.weight", w(N_FF, N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.bias", w(N_FF))
        writer.add_tensor(f"{p}.ffn_down.weight", w(N_EMBD, N_FF))
        writer.add_tensor(f"{p}.ffn_down.bias", w(N_EMBD))
    writer.add_tensor("a.post_ln.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("a.post_ln.bias", np.zeros(N_EMBD, dtype=np.float32))
    writer.add_tensor("mm.a.fc.weight", w(projection_dim, N_EMBD, scale=0.1))
    writer.add_tensor("mm.a.fc.bias", w(projection_dim))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tone_wav(seconds: float = 1.0, hz: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a sine tone."""
    import io
    import wave

    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.sin(2 * np.pi * hz * t) * 12000).astype(np.int16).tobytes())
    return out.getvalue()


def noise_png(seed: int = 1, size: int = IMAGE_SIZE) -> bytes:
    """A small RGB PNG of seeded noise (zlib-compressed rows; no imaging library)."""
    import struct
    import zlib

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write_mmproj(out, int(sys.argv[2]) if len(sys.argv) > 2 else 576)
    print(out)
