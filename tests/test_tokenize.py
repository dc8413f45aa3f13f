"""Tokenization: round trips on the default model and llama.cpp's own vocab vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import llamanb
from llamanb import core

from .conftest import VOCAB_DIR

SEP = "\n__ggml_vocab_test__\n"
VOCAB_CASES = sorted(p for p in VOCAB_DIR.glob("ggml-vocab-*.gguf") if p.with_name(p.name + ".inp").exists())


def read_cases(vocab: Path) -> list[tuple[str, list[int]]]:
    """Inputs and expected ids, read exactly as tests/test-tokenizer-0.cpp does."""
    raw = vocab.with_name(vocab.name + ".inp").read_text(encoding="utf-8")
    inputs = raw.split(SEP)
    if raw.endswith(SEP):
        inputs = raw[: -len(SEP)].split(SEP)
    outputs = vocab.with_name(vocab.name + ".out").read_text(encoding="utf-8").split("\n")
    outputs = outputs[: len(inputs)]
    assert len(inputs) == len(outputs), vocab.name
    return [(i, [int(t) for t in o.split()]) for i, o in zip(inputs, outputs)]


@pytest.fixture(scope="module")
def vocab_models() -> Iterator[dict[str, core.Model]]:
    core.log_disable()
    loaded: dict[str, core.Model] = {}
    yield loaded
    for m in loaded.values():
        m.close()


def test_vocab_vectors_exist() -> None:
    assert len(VOCAB_CASES) >= 15, "the synced llama.cpp should carry its tokenizer vectors"


@pytest.mark.parametrize(
    "vocab_file", VOCAB_CASES, ids=lambda p: p.name.removeprefix("ggml-vocab-").removesuffix(".gguf")
)
def test_llama_cpp_tokenizer_vectors(vocab_file: Path, vocab_models: dict[str, core.Model]) -> None:
    params = core.ModelParams()
    params.vocab_only = True
    model = core.Model(vocab_file, params)
    vocab_models[vocab_file.name] = model
    cases = read_cases(vocab_file)
    assert cases
    failures = []
    for text, expected in cases:
        got = model.vocab.tokenize(text, add_special=False, parse_special=False).tolist()
        if got != expected:
            failures.append((text, expected, got))
    assert not failures, f"{len(failures)}/{len(cases)} mismatches, first: {failures[0]!r}"


def test_round_trip(llm: llamanb.Llama) -> None:
    texts = ["Hello, world!", "  leading spaces", "naïve café — 東京 🚀", "line1\nline2\ttab", ""]
    for text in texts:
        ids = llm.tokenize(text, add_special=False)
        assert all(isinstance(i, int) for i in ids)
        assert llm.detokenize(ids) == text


def test_special_tokens_parse_only_when_asked(llm: llamanb.Llama) -> None:
    eos_text = "<|im_end|>"
    parsed = llm.tokenize(eos_text, add_special=False, parse_special=True)
    assert parsed == [llm.vocab.eos]
    literal = llm.tokenize(eos_text, add_special=False, parse_special=False)
    assert len(literal) > 1
    assert llm.detokenize(parsed, special=True) == eos_text
    assert llm.detokenize(parsed, special=False) == ""


def test_core_tokenize_returns_int32_array(model: core.Model) -> None:
    ids = model.vocab.tokenize("Hello world")
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int32 and ids.ndim == 1
    assert model.vocab.detokenize(ids) == b"Hello world"
    assert model.vocab.detokenize(ids.tolist()) == b"Hello world"


def test_token_pieces_concatenate(model: core.Model) -> None:
    text = "naïve café 東京"
    ids = model.vocab.tokenize(text, add_special=False)
    assert b"".join(model.vocab.token_to_piece(int(t)) for t in ids).decode() == text


def test_out_of_range_tokens(model: core.Model) -> None:
    n = model.vocab.n_tokens
    with pytest.raises(IndexError, match="out of range"):
        model.vocab.detokenize([1, n])
    with pytest.raises(IndexError):
        model.vocab.token_to_piece(-1)
    with pytest.raises(IndexError):
        model.vocab.get_text(n + 5)
