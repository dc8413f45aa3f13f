"""Weights in whatever buffer type holds them (CPU, CPU_REPACK, AMX): read back as the
file has them, saved as the file has them, and the AMX path checked where the CPU has it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import llamanb
import llamanb.cli
from llamanb import core
from llamanb.loading import amx_available

G = core.ggml

# A fixed English text for the NLL comparison (134 tokens with the default model).
TEXT = (
    "The river rose slowly through the night, and by morning the low fields beside the village were under "
    "water. Farmers moved their animals to the hill behind the church, where the ground stayed dry. The "
    "school closed for the week, and the children spent their days watching boats carry bread and "
    "medicine along the main street. When the water finally went down, it left a thick layer of mud in "
    "every kitchen and shop. People worked together to clean the houses, and the baker gave away his "
    "first loaves to the families who had lost the most. Years later, the old men still talked about the "
    "flood, and about how the whole village had learned to depend on one another."
)


def load(path: Path, repack: bool) -> core.Model:
    params = core.ModelParams()
    params.use_extra_bufts = repack
    return core.Model(path, params)


@pytest.fixture(scope="module", params=[True, False], ids=["repack", "plain"])
def any_model(request: pytest.FixtureRequest, model_path: Path) -> Iterator[core.Model]:
    core.log_disable()
    with load(model_path, request.param) as m:
        yield m


def file_tensor(f: core.gguf.GGUFFile, name: str) -> bytes:
    return np.asarray(f.tensor_data(name)).tobytes()


def test_every_weight_reads_as_the_file_has_it(any_model: core.Model, model_path: Path) -> None:
    tensors = any_model.tensors()
    with core.gguf.GGUFFile(model_path) as f:
        for name, t in tensors.items():
            assert t.is_host, (name, t.buffer_type)  # repacked or not, weights are in host RAM here
            dense = t.numpy(dequantize=True)
            raw = f.tensor_data(name)
            if G.is_quantized(t.ggml_type):
                expected = G.dequantize(raw, t.ggml_type, t.shape[-1]).reshape(dense.shape)
            else:
                expected = np.asarray(raw, dtype=np.float32).reshape(dense.shape)
            np.testing.assert_array_equal(dense, expected, err_msg=f"{name} in {t.buffer_type}")
    sizes = any_model.buffer_types
    assert sizes and all(size > 0 for size in sizes.values())
    repacked = {t.buffer_type for t in tensors.values() if t.is_repacked}
    assert repacked <= set(sizes)


def test_repack_off_keeps_the_file_layout(model_path: Path) -> None:
    core.log_disable()
    with load(model_path, False) as m:
        assert not any(t.is_repacked for t in m.tensors().values())
        assert not {"AMX", "CPU_REPACK"} & set(m.buffer_types)


def test_save_writes_the_file_bytes(any_model: core.Model, model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "saved.gguf"
    any_model.save(out)
    with core.gguf.GGUFFile(model_path) as src, core.gguf.GGUFFile(out) as saved:
        names = [t[0] for t in src.tensors]
        assert sorted(t[0] for t in saved.tensors) == sorted(names)
        for name in names:
            assert file_tensor(saved, name) == file_tensor(src, name), name
    with core.Model(out) as again:
        assert again.n_params == any_model.n_params


def test_the_facade_and_cli_choose_repacking(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with llamanb.Llama(model_path, n_ctx=256, repack=False) as llm:
        assert not any(t.is_repacked for t in llm.model.tensors().values())
    assert llamanb.cli.main(["info", "--model", str(model_path), "--no-repack"]) == 0
    weights = [line for line in capsys.readouterr().out.splitlines() if line.startswith("weights:")]
    assert len(weights) == 1 and "MiB" in weights[0] and "AMX" not in weights[0]


def mean_nll(model: core.Model, tokens: list[int]) -> float:
    params = core.ContextParams()
    params.n_ctx = 512
    params.n_batch = 512
    params.n_threads = 2
    params.n_threads_batch = 2
    with core.Context(model, params) as ctx:
        batch = core.Batch(len(tokens))
        for i, tok in enumerate(tokens):
            batch.add(tok, i, [0], True)
        ctx.decode(batch)
        logits = ctx.get_logits(copy=True).astype(np.float64)
    logits = logits[:-1]
    logz = np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1)) + logits.max(axis=1)
    picked = logits[np.arange(len(tokens) - 1), tokens[1:]]
    return float(np.mean(logz - picked))


def test_amx_buffers_are_used_and_agree_with_the_plain_path(model_path: Path) -> None:
    if not amx_available():
        pytest.skip(
            "this CPU has no AMX (amx_int8 not in /proc/cpuinfo, or the build lacks it): "
            "the AMX buffer type is not offered"
        )
    core.log_disable()
    with load(model_path, True) as amx, load(model_path, False) as plain:
        assert "AMX" in amx.buffer_types, amx.buffer_types
        assert any(t.buffer_type == "AMX" for t in amx.tensors().values())
        tokens = amx.vocab.tokenize(TEXT, True, False).tolist()
        assert len(tokens) > 100
        nll_amx, nll_plain = mean_nll(amx, tokens), mean_nll(plain, tokens)
    # Same weights, other kernels: the AMX path quantizes activations for its int8
    # tiles, so it rounds differently; within 1% of the plain path's NLL it is the same model.
    assert abs(nll_amx - nll_plain) <= 0.01 * nll_plain, (nll_amx, nll_plain)
