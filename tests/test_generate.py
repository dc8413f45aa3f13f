"""generate() and stream() on the real SmolLM2-135M model."""

from __future__ import annotations

import pytest

import llamanb

PROMPT = "The capital of France is"


def test_greedy_is_deterministic(llm: llamanb.Llama) -> None:
    a = llm.generate(PROMPT, max_tokens=24, temperature=0)
    b = llm.generate(PROMPT, max_tokens=24, temperature=0)
    assert a.text == b.text and a.tokens == b.tokens
    assert "Paris" in a.text
    assert a.finish_reason in ("stop", "length")
    assert a.prompt_tokens == len(llm.tokenize(PROMPT))


def test_seeded_sampling_is_reproducible(llm: llamanb.Llama) -> None:
    a = llm.generate(PROMPT, max_tokens=16, temperature=1.0, seed=1234)
    b = llm.generate(PROMPT, max_tokens=16, temperature=1.0, seed=1234)
    assert a.tokens == b.tokens


def test_stream_joins_to_generate(llm: llamanb.Llama) -> None:
    full = llm.generate(PROMPT, max_tokens=32, temperature=0)
    pieces = list(llm.stream(PROMPT, max_tokens=32, temperature=0))
    assert len(pieces) > 1
    assert "".join(pieces) == full.text
    assert all(isinstance(p, str) and p for p in pieces)


def test_length_and_eog_finish(llm: llamanb.Llama) -> None:
    short = llm.generate(PROMPT, max_tokens=3, temperature=0)
    assert short.finish_reason == "length" and len(short.tokens) == 3
    # The chat format makes the instruct model end its turn with <|im_end|> (EOG).
    chat = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"
    done = llm.generate(chat, max_tokens=200, temperature=0)
    assert done.finish_reason == "stop"
    assert "<|im_end|>" not in done.text


def test_zero_max_tokens(llm: llamanb.Llama) -> None:
    out = llm.generate(PROMPT, max_tokens=0)
    assert out.text == "" and out.tokens == [] and out.finish_reason == "length"


def test_stop_string_cuts_text(llm: llamanb.Llama) -> None:
    full = llm.generate(PROMPT, max_tokens=24, temperature=0).text
    stop = full.strip().split()[1]  # the second word of the greedy completion
    out = llm.generate(PROMPT, max_tokens=24, temperature=0, stop=[stop])
    assert out.finish_reason == "stop"
    assert out.text == full[: full.index(stop)]
    streamed = "".join(llm.stream(PROMPT, max_tokens=24, temperature=0, stop=[stop]))
    assert streamed == out.text


def test_pieces_are_whole_utf8(llm: llamanb.Llama) -> None:
    # Emoji and CJK span several tokens; no piece may carry a replacement char.
    prompt = "Translate to Japanese: good morning ->"
    pieces = list(llm.stream(prompt, max_tokens=24, temperature=0))
    text = "".join(pieces)
    assert "\ufffd" not in text
    assert text == llm.generate(prompt, max_tokens=24, temperature=0).text


def test_prompt_longer_than_context(model_path: object) -> None:
    with llamanb.Llama(str(model_path), n_ctx=64, n_threads=2) as small:
        assert small.n_ctx >= 64  # llama.cpp rounds small contexts up
        with pytest.raises(ValueError, match="context holds"):
            small.generate("word " * (small.n_ctx + 10), max_tokens=4)


def test_context_full_finishes_with_length(model_path: object) -> None:
    with llamanb.Llama(str(model_path), n_ctx=256, n_threads=2) as small:
        out = small.generate(PROMPT, max_tokens=1000, temperature=0, stop=None)
        assert out.finish_reason in ("length", "stop")
        assert out.prompt_tokens + len(out.tokens) <= small.n_ctx + 1


def test_abandoned_stream_in_same_thread_raises(llm: llamanb.Llama) -> None:
    stream = llm.stream(PROMPT, max_tokens=8, temperature=0)
    next(stream)
    with pytest.raises(RuntimeError, match="unfinished stream"):
        llm.generate(PROMPT, max_tokens=2)
    stream.close()
    assert llm.generate(PROMPT, max_tokens=2, temperature=0).tokens
