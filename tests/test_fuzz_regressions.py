"""The fuzz targets in the suite: every kept regression input replayed, and a short,
seeded run of random mutations of the seeds, each target in a fresh interpreter (so a
crash fails the test instead of pytest). `make fuzz` runs the long, coverage-guided
version (tests/fuzz/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
TARGETS = ["gguf_reader", "vocab", "model", "grammar", "json_schema", "chat_template"]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_survives_regressions_and_mutations(target: str) -> None:
    kept = sorted(p for p in (FUZZ / "regressions" / target).glob("*") if p.is_file())
    runs = [["--mutate", "300"]] + ([["--replay", *map(str, kept)]] if kept else [])
    for args in runs:
        result = subprocess.run(
            [sys.executable, str(FUZZ / "run.py"), target, *args], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{target} {args[0]}: exit {result.returncode}\n{result.stderr[-3000:]}"
        assert result.stdout.strip().startswith(f"{target}: "), result.stdout


def test_a_quantized_tensor_with_zero_width_rows_reads_as_empty_rows() -> None:
    # The gguf_reader mutation fuzzer's SIGFPE: rows were nbytes / row_bytes, and a
    # Q8_0 tensor whose first dimension is 0 has rows of 0 bytes.
    from llamanb import core

    with core.gguf.GGUFFile(FUZZ / "regressions" / "gguf_reader" / "zero-width-rows") as f:
        shapes = {name: f.tensor_data(name).shape for name, *_ in f.tensors}
    assert shapes["blk.0.ffn_down.weight"] == (32, 0)
    assert shapes["blk.0.ffn_up.weight"] == (64, 34)  # a Q8_0 row of 32 values: 34 bytes


def test_a_negative_norm_epsilon_is_a_load_error() -> None:
    # The model mutation fuzzer's abort: GGML_ASSERT(eps >= 0.0f) at the first decode
    # (patch 0006 refuses the file at load).
    from llamanb import core

    with pytest.raises(core.ModelLoadError, match="invalid normalization epsilon -1e-05"):
        core.Model(FUZZ / "regressions" / "model" / "negative-norm-epsilon")


def test_a_zero_block_count_is_a_load_error() -> None:
    # The model mutation fuzzer's second abort: GGML_ASSERT(n_layer_all > 0 ...) in
    # load_hparams (patch 0006 makes its metadata asserts throw).
    from llamanb import core

    with pytest.raises(core.ModelLoadError, match="invalid model metadata: hparams.n_layer_all > 0"):
        core.Model(FUZZ / "regressions" / "model" / "zero-block-count")
