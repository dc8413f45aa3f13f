"""Hardening round 3, the findings that live in llama.cpp code llama-server shares
(tokenizer, GBNF grammar, JSON-schema converter), fixed by patches 0010-0013. Each case
runs in a fresh interpreter (tests/support/isolated.py), bounded in time, so that the quadratic
or exponential cost it guards against fails the test instead of stalling the suite."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from llamanb import Llama, SamplingParams, core, json_schema_to_grammar

from .support.isolated import run_isolated


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
    out = run_isolated(
        with_vocab(
            model_path,
            """
        eos = vocab.tokenize("<|im_end|>", add_special=False, parse_special=True).tolist()
        assert len(eos) == 1, eos
        t = time.perf_counter()
        toks = vocab.tokenize("<|im_end|>" * 300_000, add_special=False, parse_special=True)
        print("seconds", time.perf_counter() - t)
        assert toks.tolist() == eos * 300_000
        mixed = vocab.tokenize(" a<|im_end|>\\n" * 50_000, add_special=False, parse_special=True).tolist()
        one = vocab.tokenize(" a<|im_end|>\\n", add_special=False, parse_special=True).tolist()
        print("mixed", mixed == one * 50_000 or (mixed[:len(one)], one))
    """,
        ),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert float(lines["seconds"]) < 10, lines
    assert lines["mixed"] == "True", lines


def anyof(k: int) -> str:
    return json.dumps({"anyOf": [{"const": f"value-{i}"} for i in range(k)]})


def nested_empty(depth: int) -> str:
    """``depth`` nested rules, each two possibly-empty copies of the next: 2^depth stacks."""
    rules = "".join(f'r{i} ::= (r{i + 1} | "") (r{i + 1} | "")\n' for i in range(depth))
    return f'root ::= r0 "x"\n{rules}r{depth} ::= "a" | ""\n'


def test_a_grammar_with_too_many_parse_stacks_is_refused(model_path: Path) -> None:
    """Finding 4: every sampled token cost (parse stacks) x (vocabulary): an anyOf of
    3,000 constants took 11 s a token here, 20,000 never gave one, and 40 nested rules
    that may be empty expand to 2^40 stacks. Patch 0011 refuses such a grammar when it is
    created (ValueError, "too costly"), at once; a grammar of 200 alternates still
    samples, in well under a second a token."""
    out = run_isolated(
        with_vocab(
            model_path,
            """
        import numpy as np
        from tests.test_hostile_llama_cpp import anyof, nested_empty
        def make(text):
            t = time.perf_counter()
            try:
                core.Sampler.grammar(vocab, text).close()
                result = "ok"
            except ValueError as e:
                result = "too costly" if "too costly" in str(e) else "ValueError: " + str(e)[:200]
            return result, time.perf_counter() - t
        for name, text in [("anyof20000", core.common.json_schema_to_grammar(anyof(20_000))),
                           ("anyof3000", core.common.json_schema_to_grammar(anyof(3000))),
                           ("nested40", nested_empty(40)),
                           ("nested6", nested_empty(6))]:
            result, seconds = make(text)
            print(name, result, round(seconds, 3))
        chain = core.Sampler.chain()
        chain.add(core.Sampler.grammar(vocab, core.common.json_schema_to_grammar(anyof(200))))
        chain.add(core.Sampler.greedy())
        rng = np.random.default_rng(0)
        pieces, slowest = [], 0.0
        for _ in range(4):
            t = time.perf_counter()
            pieces.append(vocab.token_to_piece(chain.sample_logits(rng.standard_normal(vocab.n_tokens).astype(np.float32))))
            slowest = max(slowest, time.perf_counter() - t)
        print("anyof200", b"".join(pieces).decode()[:1], round(slowest, 3))
    """,
        ),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    results = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    for name in ("anyof20000", "anyof3000", "nested40"):
        assert results[name][:2] == ["too", "costly"], results
        assert float(results[name][2]) < 10, results
    assert results["nested6"][0] == "ok", results
    assert results["anyof200"][0] == '"', results
    assert float(results["anyof200"][1]) < 5, results


def test_generate_refuses_a_costly_schema_at_once(llm: Llama) -> None:
    """Finding 4 through the facade: SamplingParams(json_schema=...) of 20,000 constants
    is a ValueError before any token, not minutes a token."""
    schema = json.loads(anyof(20_000))
    started = time.monotonic()
    with pytest.raises(ValueError, match="too costly"):
        llm.generate("Pick one:", max_tokens=2, sampling=SamplingParams(json_schema=schema))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("schema", "word"),
    [
        ({"type": "string", "maxLength": 2001}, "maxLength 2001"),
        ({"type": "string", "minLength": 1, "maxLength": 100_000}, "maxLength 100000"),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 2001}, "maxItems 2001"),
        ({"type": "string", "minLength": 2001}, "minLength 2001"),
    ],
)
def test_schema_bounds_above_2000_are_errors(schema: dict[str, object], word: str) -> None:
    """Finding 15: the GBNF parser made a repetition maximum above 2000 unbounded, so
    maxLength 2001 gave 3,597 characters. Patch 0013 makes llama.cpp's converter (which
    llama-server and llamanb.json_schema_to_grammar use) refuse the bound with its
    keyword, and the GBNF parser refuse "{0,2001}"; 2000 still converts."""
    with pytest.raises(ValueError, match=word):
        core.common.json_schema_to_grammar(json.dumps(schema))
    with pytest.raises(ValueError, match=word):
        json_schema_to_grammar(schema)
    at_limit = {k: min(v, 2000) if isinstance(v, int) else v for k, v in schema.items()}
    assert "root ::=" in core.common.json_schema_to_grammar(json.dumps(at_limit))
    assert "root ::=" in json_schema_to_grammar(at_limit)


def test_a_gbnf_repetition_above_2000_is_an_error(model: core.Model) -> None:
    """Finding 15, GBNF: "x{0,2001}" allowed any number of x; now a parse error."""
    with pytest.raises(ValueError, match="repetition maximum 2001 exceeds 2000"):
        core.Sampler.grammar(model.vocab, 'root ::= "x"{0,2001}')
    core.Sampler.grammar(model.vocab, 'root ::= "x"{0,2000}').close()
    core.Sampler.grammar(model.vocab, 'root ::= "x"{5,}').close()


def test_a_grammar_parse_error_logs_a_bounded_excerpt(model_path: Path) -> None:
    """A GBNF parse error printed the whole grammar to stderr, and most errors' messages
    carry the rest of the grammar too: a 2 MB grammar wrote 4 MB of log per attempt.
    Patch 0012 logs at most 256 bytes of each, through llama.cpp's log callback."""
    out = run_isolated(
        f"""
        from llamanb import core
        params = core.ModelParams()
        params.vocab_only = True
        vocab = core.Model({str(model_path)!r}, params).vocab
        bad = 'root ::= "a" ' + 'x ' * 1_000_000 + '{{'
        for text in (bad, 'root ::= "a"{{1,q}} ' + "b" * 2_000_000):
            try:
                core.Sampler.grammar(vocab, text)
            except ValueError as e:
                print("ValueError", len(str(e)))
    """,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines[0::2] == ["ValueError", "ValueError"], out.stdout
    assert all(int(n) < 2000 for n in lines[1::2]), out.stdout
    assert len(out.stderr) < 4000, (len(out.stderr), out.stderr[:1000])
