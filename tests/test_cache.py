"""Prompt caching: the KV state of the longest common prefix is reused across calls,
visible in llama.cpp's own counters (n_p_eval), without changing any output."""

from __future__ import annotations

from pathlib import Path

import llamanb

TURN1 = [{"role": "user", "content": "What is the capital of France?"}]


def prompt_tokens_evaluated(llm: llamanb.Llama) -> int:
    llm.context.synchronize()  # llama.cpp updates its counters when the work completes
    return int(llm.context.perf()["n_p_eval"])


def test_growing_chat_evaluates_only_new_tokens(model_path: Path) -> None:
    with llamanb.Llama(model_path, n_ctx=1024, n_threads=2) as llm:
        llm.context.perf_reset()
        first = llm.chat(TURN1, max_tokens=16, temperature=0)
        full1 = len(llm.tokenize(llm.render_chat(TURN1), add_special=False, parse_special=True))
        assert prompt_tokens_evaluated(llm) == full1  # a cold cache evaluates everything

        turn2 = [*TURN1, {"role": "assistant", "content": first.text}, {"role": "user", "content": "And Italy?"}]
        prompt2 = llm.tokenize(llm.render_chat(turn2), add_special=False, parse_special=True)
        cached = llm.cached_tokens
        reused = next((i for i, (a, b) in enumerate(zip(cached, prompt2)) if a != b), min(len(cached), len(prompt2)))
        assert reused >= full1  # the whole first prompt (and some of the reply) is still valid
        llm.context.perf_reset()
        llm.chat(turn2, max_tokens=1, temperature=0)
        evaluated = prompt_tokens_evaluated(llm)
        assert evaluated == len(prompt2) - reused  # only the new turn went through the model
        assert evaluated < len(prompt2) // 2


def test_cached_and_fresh_outputs_agree(model_path: Path) -> None:
    with llamanb.Llama(model_path, n_ctx=1024, n_threads=2) as llm:
        base = "The history of Paris begins"
        llm.generate(base, max_tokens=8, temperature=0)  # warms the cache with the prefix
        extended = base + " in the third century BC, when"
        warm = llm.generate(extended, max_tokens=16, temperature=0)
        llm.reset()
        assert llm.cached_tokens == ()
        llm.context.perf_reset()
        cold = llm.generate(extended, max_tokens=16, temperature=0)
        assert prompt_tokens_evaluated(llm) == len(llm.tokenize(extended))
        assert warm.tokens == cold.tokens


def test_same_prompt_twice_re_evaluates_one_token(llm: llamanb.Llama) -> None:
    prompt = "Once upon a time, in a land far away,"
    a = llm.generate(prompt, max_tokens=4, temperature=0)
    llm.context.perf_reset()
    b = llm.generate(prompt, max_tokens=4, temperature=0)
    llm.context.synchronize()
    perf = llm.context.perf()
    assert perf["n_p_eval"] <= 1  # (llama.cpp reports at least 1) the last prompt token only
    assert a.tokens == b.tokens


def test_save_and_load_state(llm: llamanb.Llama) -> None:
    prompt = "A short poem about the sea:"
    llm.generate(prompt, max_tokens=1, temperature=0)
    saved = llm.save_state()
    assert list(saved.tokens) == llm.tokenize(prompt) and len(saved.data) > 0
    expected = llm.generate(prompt, max_tokens=12, temperature=0)
    llm.generate("Something else entirely, to overwrite the cache", max_tokens=4, temperature=0)
    llm.load_state(saved)
    assert llm.cached_tokens == saved.tokens
    llm.context.perf_reset()
    again = llm.generate(prompt, max_tokens=12, temperature=0)
    assert prompt_tokens_evaluated(llm) <= 1  # the restored state served the prompt
    assert again.tokens == expected.tokens
