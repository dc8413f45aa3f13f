"""generate_batch(): many prompts as parallel sequences of one context."""

from __future__ import annotations

import pytest

import llamanb

PROMPTS = [
    "The capital of France is",
    "1, 2, 3, 4,",
    "Once upon a time",
    "The best way to learn Python is",
    "Water boils at",
]


def test_greedy_batch_equals_sequential(llm: llamanb.Llama) -> None:
    batch = llm.generate_batch(PROMPTS, max_tokens=12, temperature=0)
    sequential = [llm.generate(p, max_tokens=12, temperature=0) for p in PROMPTS]
    assert [c.tokens for c in batch] == [c.tokens for c in sequential]
    assert [c.text for c in batch] == [c.text for c in sequential]
    assert [c.prompt_tokens for c in batch] == [len(llm.tokenize(p)) for p in PROMPTS]


def test_more_prompts_than_slots_keeps_order(llm: llamanb.Llama) -> None:
    wide = llm.generate_batch(PROMPTS, max_tokens=8, temperature=0, max_parallel=8)
    narrow = llm.generate_batch(PROMPTS, max_tokens=8, temperature=0, max_parallel=2)
    assert [c.tokens for c in narrow] == [c.tokens for c in wide]


def test_sequences_finish_independently(llm: llamanb.Llama) -> None:
    chat = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"
    prompts = [chat, "The capital of France is", "1, 2, 3, 4,"]
    out = llm.generate_batch(prompts, max_tokens=40, temperature=0, stop=["8"])
    assert out[0].finish_reason == "stop" and "<|im_end|>" not in out[0].text  # end of turn (EOG)
    assert out[2].finish_reason == "stop" and "8" not in out[2].text  # stop string
    assert out[2].text == llm.generate(prompts[2], max_tokens=40, temperature=0, stop=["8"]).text
    assert all(c.finish_reason in ("stop", "length") and len(c.tokens) <= 40 for c in out)


def test_echo_logprobs_and_token_prompts(llm: llamanb.Llama) -> None:
    prompts: list[llamanb.Prompt] = ["The capital of France is", llm.tokenize("Water boils at")]
    out = llm.generate_batch(prompts, max_tokens=4, temperature=0, echo=True, logprobs=2)
    assert out[0].text.startswith("The capital of France is")
    assert out[1].text.startswith("Water boils at")
    for c in out:
        assert c.logprobs is not None and len(c.logprobs) == len(c.tokens)
        assert all(lp.top[0].token == lp.token for lp in c.logprobs)  # greedy


def test_seeded_batch_is_reproducible(llm: llamanb.Llama) -> None:
    a = llm.generate_batch(PROMPTS[:3], max_tokens=10, temperature=1.0, seed=42)
    b = llm.generate_batch(PROMPTS[:3], max_tokens=10, temperature=1.0, seed=42)
    assert [c.tokens for c in a] == [c.tokens for c in b]
    # Each prompt gets its own seed (seed + i): the same prompt twice samples differently.
    twins = llm.generate_batch([PROMPTS[2], PROMPTS[2]], max_tokens=16, temperature=1.0, seed=42)
    assert twins[0].tokens != twins[1].tokens


def test_zero_max_tokens_and_empty_list(llm: llamanb.Llama) -> None:
    assert llm.generate_batch([], max_tokens=4) == []
    out = llm.generate_batch(PROMPTS[:2], max_tokens=0)
    assert [c.text for c in out] == ["", ""] and all(c.finish_reason == "length" for c in out)


def test_bad_batches(llm: llamanb.Llama) -> None:
    with pytest.raises(TypeError, match="list of prompts"):
        llm.generate_batch("one prompt")
    with pytest.raises(ValueError, match="max_parallel"):
        llm.generate_batch(PROMPTS, max_parallel=0)
    with pytest.raises(ValueError, match="context holds"):
        llm.generate_batch(["short", "word " * 2000], max_tokens=4)
    # The Llama is still usable afterwards.
    assert llm.generate_batch(PROMPTS[:1], max_tokens=2, temperature=0)[0].tokens
