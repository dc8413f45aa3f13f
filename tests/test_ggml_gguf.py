"""ggml types and (de)quantization, model tensors as views, GGUF files against the
`gguf` reference package, and the small ggml compute API against numpy."""

from __future__ import annotations

import gc
from pathlib import Path

import gguf
import numpy as np
import pytest

from llamanb import core

from .conftest import VOCAB_DIR

G = core.ggml
T = G.GGMLType
RNG = np.random.default_rng(7)


def roundtrip_types() -> list[T]:
    out = []
    for t in T.__members__.values():
        if t in (T.F32,) or t.name.startswith("I") and t.name[1:].isdigit():
            continue
        x = np.zeros((1, 256), dtype=np.float32)
        try:
            G.quantize(x, t)
        except ValueError:
            continue
        out.append(t)
    return out


@pytest.mark.parametrize("qtype", roundtrip_types(), ids=lambda t: t.name)
def test_quantize_roundtrip_error_is_bounded(qtype: T) -> None:
    x = RNG.standard_normal((8, 512)).astype(np.float32)
    q = G.quantize(x, qtype)
    assert q.dtype == np.uint8 and q.shape == (8, G.row_size(qtype, 512))
    y = G.dequantize(q, qtype, 512)
    assert y.shape == x.shape
    rel = float(np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x**2)))
    bits = 8 * G.type_size(qtype) / G.block_size(qtype)
    # Roughly halves per extra bit: generous bounds that still catch a broken codec.
    assert rel < 2.5 * 2.0 ** (-bits + 1) + 0.002, f"{qtype.name}: relative RMS error {rel:.4f} at {bits:.2f} bits"
    if qtype == T.Q8_0:
        assert rel < 0.01


def test_quantize_errors() -> None:
    with pytest.raises(ValueError, match="block size"):
        G.quantize(np.zeros((2, 100), np.float32), T.Q4_0)
    with pytest.raises(ValueError, match="importance matrix"):
        G.quantize(np.zeros((1, 256), np.float32), T.IQ2_XXS)
    with pytest.raises(ValueError, match="whole number"):
        G.dequantize(np.zeros(10, np.uint8), T.Q8_0, 32)
    with pytest.raises(ValueError):
        G.type_name(9999)


def test_dequantize_matches_gguf_package(model_path: Path) -> None:
    reader = gguf.GGUFReader(str(model_path))
    checked = 0
    for tensor in reader.tensors:
        qtype = int(tensor.tensor_type)
        if qtype not in (T.Q8_0, T.Q4_1, T.F32) or checked >= 6:
            continue
        reference = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        n = int(tensor.shape[0])
        ours = G.dequantize(np.ascontiguousarray(tensor.data).view(np.uint8), qtype, n) if qtype != T.F32 else None
        if ours is not None:
            np.testing.assert_allclose(ours.reshape(reference.shape), reference, rtol=1e-6, atol=1e-6)
        checked += 1
    assert checked >= 3


def compare_with_reader(path: Path) -> None:
    reader = gguf.GGUFReader(str(path))
    with core.gguf.GGUFFile(path) as ours:
        meta = ours.metadata
        ref_keys = [k for k in reader.fields if not k.startswith("GGUF.")]
        assert sorted(meta) == sorted(ref_keys)
        for key in ref_keys:
            assert meta[key] == reader.fields[key].contents(), key
        infos = {name: (ggml_type, shape, offset, nbytes) for name, ggml_type, shape, offset, nbytes in ours.tensors}
        assert len(infos) == len(reader.tensors)
        for t in reader.tensors:
            ggml_type, shape, offset, nbytes = infos[t.name]
            assert ggml_type == int(t.tensor_type)
            assert shape == [int(d) for d in reversed(t.shape.tolist())] or shape == [
                int(d) for d in t.shape.tolist()[::-1]
            ]
            assert ours.data_offset + offset == t.data_offset
            assert nbytes == t.n_bytes
            data = ours.tensor_data(t.name)
            assert data.tobytes() == np.ascontiguousarray(t.data).tobytes()


def test_gguf_file_matches_reference_on_the_model(model_path: Path) -> None:
    compare_with_reader(model_path)


# The reference reader is pure Python (slow on 250k-entry vocabularies): the three smallest files.
SMALL_VOCABS = sorted(VOCAB_DIR.glob("ggml-vocab-*.gguf"), key=lambda p: p.stat().st_size)[:3]


@pytest.mark.parametrize("vocab", SMALL_VOCABS, ids=lambda p: p.stem)
def test_gguf_file_matches_reference_on_vocab_files(vocab: Path) -> None:
    compare_with_reader(vocab)


def test_gguf_views_are_zero_copy_and_outlive_close(model_path: Path) -> None:
    f = core.gguf.GGUFFile(model_path)
    a = f.tensor_data("output_norm.weight")
    b = f.tensor_data("output_norm.weight")
    assert a.dtype == np.float32 and not a.flags.writeable and np.shares_memory(a, b)
    expected = a.copy()
    f.close()
    f.close()
    with pytest.raises(core.ClosedError):
        _ = f.metadata
    del f, b
    gc.collect()
    np.testing.assert_array_equal(a, expected)  # the mapping lives until the last view goes


def test_gguf_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        core.gguf.GGUFFile(tmp_path / "none.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"nope" * 100)
    with pytest.raises(core.ModelLoadError):
        core.gguf.GGUFFile(bad)


def test_model_tensors(model: core.Model, model_path: Path) -> None:
    tensors = model.tensors()
    assert len(tensors) == 272
    emb = tensors["token_embd.weight"]
    assert emb.shape == [49152, 576] and emb.ggml_type == T.Q8_0 and emb.is_host
    with pytest.raises(TypeError, match="dequantize=True"):
        emb.numpy()
    dense = emb.numpy(dequantize=True)
    assert dense.shape == (49152, 576) and dense.dtype == np.float32
    with core.gguf.GGUFFile(model_path) as f:
        ref = G.dequantize(f.tensor_data("token_embd.weight"), T.Q8_0, 576)
        np.testing.assert_array_equal(dense, ref)
        norm = tensors["output_norm.weight"].numpy()
        assert not norm.flags.writeable
        np.testing.assert_array_equal(norm, f.tensor_data("output_norm.weight"))
        assert np.shares_memory(norm, tensors["output_norm.weight"].numpy())


def test_model_tensor_view_keeps_weights_alive(model_path: Path) -> None:
    m = core.Model(model_path)
    view = m.tensors()["output_norm.weight"].numpy()
    expected = view.copy()
    m.close()
    del m
    gc.collect()
    np.testing.assert_array_equal(view, expected)


def test_compute_graph_matches_numpy() -> None:
    ctx = G.Context(16 << 20)
    a_np = RNG.standard_normal((3, 64)).astype(np.float32)
    b_np = RNG.standard_normal((5, 64)).astype(np.float32)
    row = RNG.standard_normal((1, 64)).astype(np.float32)
    a = ctx.new_tensor(T.F32, [3, 64])
    b = ctx.new_tensor(T.F32, [5, 64])
    r = ctx.new_tensor(T.F32, [1, 64])
    a.set(a_np)
    b.set(b_np)
    r.set(row)
    cases = {
        "add": (ctx.add(a, r), a_np + row),
        "mul": (ctx.mul(a, r), a_np * row),
        "mul_mat": (ctx.mul_mat(a, b), b_np @ a_np.T),
        "soft_max": (ctx.soft_max(a), np.exp(a_np) / np.exp(a_np).sum(1, keepdims=True)),
        "rms_norm": (ctx.rms_norm(a, 1e-6), a_np / np.sqrt((a_np**2).mean(1, keepdims=True) + 1e-6)),
        "scale": (ctx.scale(a, 0.5), a_np * 0.5),
        "sum": (ctx.sum(a), np.array([a_np.sum()])),
        "transpose": (ctx.cont(ctx.transpose(a)), a_np.T),
    }
    for name, (out, expected) in cases.items():
        ctx.compute(out, 2)
        np.testing.assert_allclose(out.numpy().reshape(expected.shape), expected, rtol=1e-4, atol=1e-4, err_msg=name)


def test_compute_with_quantized_weights() -> None:
    ctx = G.Context(16 << 20)
    w_np = RNG.standard_normal((32, 256)).astype(np.float32)
    x_np = RNG.standard_normal((4, 256)).astype(np.float32)
    w = ctx.new_tensor(T.Q8_0, [32, 256])
    w.set(w_np)
    x = ctx.new_tensor(T.F32, [4, 256])
    x.set(x_np)
    y = ctx.mul_mat(w, x)
    ctx.compute(y, 2)
    w_deq = w.numpy()
    np.testing.assert_allclose(w_deq, w_np, atol=0.05)
    np.testing.assert_allclose(y.numpy(), x_np @ w_deq.T, rtol=0.02, atol=0.2)


def test_compute_errors() -> None:
    ctx = G.Context(1 << 20)
    a = ctx.new_tensor(T.F32, [3, 64])
    b = ctx.new_tensor(T.F32, [4, 32])
    with pytest.raises(ValueError, match="broadcast"):
        ctx.add(a, b)
    with pytest.raises(ValueError, match="mul_mat"):
        ctx.mul_mat(a, b)
    with pytest.raises(ValueError, match="out of memory"):
        ctx.new_tensor(T.F32, [1024, 1024])
    other = G.Context(1 << 20)
    with pytest.raises(ValueError, match="another ggml context"):
        other.add(a, a)
    with pytest.raises(ValueError):
        a.set(np.zeros(5, np.float32))
