"""Hardening round 3, the findings that live in llama.cpp code llama-server shares
(tokenizer, GBNF grammar, JSON-schema converter), fixed by patches 0010-0013. Each case
runs in a fresh interpreter (tests/isolated.py), bounded in time, so that the quadratic
or exponential cost it guards against fails the test instead of stalling the suite."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from llamanb import Llama, SamplingParams, core, json_schema_to_grammar

from .isolated import run_isolated



def with_vocab(model_path: Path, code: str) -> str:
    """``code`` after lines that load the vocabulary of ``model_path`` as ``vocab``."""
    return textwrap.dedent(f"""
        import json, time
        from llamanb import core
        core.log_disable()
        params = core.ModelParams()
        params.vocab_only = True
        vocab = core.Model({str(model_path)!r}, params).vocab
    """) + textwrap.dedent(code)


def test_special_token_text_tokenizes_in_linear_time(model_path: Path) -> None:
    """Finding 5: splitting text on special tokens walked the fragment list from its
    start once per special token found, so "<|im_end|>" x 80,000 took 85 s on 2 shared
    cores (x 40,000: 20 s). Patch 0010 keeps an iterator to the previous fragment:
    x 300,000 (about 200 s before) now takes a fraction of a second, with the same tokens
    (the vocab vectors in test_tokenize.py check the rest)."""
    out = run_isolated(with_vocab(model_path, """
        eos = vocab.tokenize("<|im_end|>", add_special=False, parse_special=True).tolist()
        assert len(eos) == 1, eos
        t = time.perf_counter()
        toks = vocab.tokenize("<|im_end|>" * 300_000, add_special=False, parse_special=True)
        print("seconds", time.perf_counter() - t)
        assert toks.tolist() == eos * 300_000
        mixed = vocab.tokenize(" a<|im_end|>\\n" * 50_000, add_special=False, parse_special=True).tolist()
        one = vocab.tokenize(" a<|im_end|>\\n", add_special=False, parse_special=True).tolist()
        print("mixed", mixed == one * 50_000 or (mixed[:len(one)], one))
    """), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert float(lines["seconds"]) < 10, lines
    assert lines["mixed"] == "True", lines
