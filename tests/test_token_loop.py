"""The token loop in C++ (core.fast.sample_and_decode, generation's chunked loop): the same
tokens, text and finish as one token at a time from Python, on the real model."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

import llamanb
from llamanb import SamplingParams, core

from .support.isolated import interrupt_after

PROMPT = "The history of the Roman Empire"


class ArgmaxSampler:
    """A sampler written in Python: greedy over the candidates."""

    def apply(self, candidates: core.TokenDataArray) -> None:
        candidates.selected = int(np.argmax(candidates.logits))


def python_loop(ctx: core.Context, sampler: core.Sampler, n: int, eog: frozenset[int]) -> list[int]:
    """The reference: Sampler.sample + Context.decode_tokens, one token per round trip."""
    out: list[int] = []
    while len(out) < n:
        token = sampler.sample(ctx, -1)
        out.append(token)
        if token in eog or len(out) == n:
            break
        ctx.decode_tokens([token])
    return out


def fresh(ctx: core.Context, ids: list[int]) -> None:
    ctx.memory_clear(False)
    ctx.decode_tokens(ids)


@pytest.fixture()
def prompt_ids(model: core.Model) -> list[int]:
    ids: list[int] = model.vocab.tokenize(PROMPT, True, True).tolist()
    return ids


def eog_tokens(vocab: core.Vocab) -> frozenset[int]:
    return frozenset(t for t in range(vocab.n_tokens) if vocab.is_eog(t))


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingParams(temperature=0),
        SamplingParams(seed=7),  # the default chain: top-k, top-p, min-p, temperature, dist
        SamplingParams(temperature=0.9, top_k=0, top_p=1.0, min_p=0.0, seed=3),  # all candidates
        SamplingParams(temperature=0, grammar='root ::= ("yes" | "no") " " [a-z ]{1,40} "."'),
    ],
)
def test_same_tokens_as_the_python_loop(
    model: core.Model, ctx: core.Context, prompt_ids: list[int], sampling: SamplingParams
) -> None:
    vocab = model.vocab
    eog = eog_tokens(vocab)
    fresh(ctx, prompt_ids)
    reference_sampler = sampling.build(vocab, prompt_ids)
    reference = python_loop(ctx, reference_sampler, 48, eog)
    reference_sampler.close()

    fresh(ctx, prompt_ids)
    sampler = sampling.build(vocab, prompt_ids)
    got: list[int] = []
    pending: list[int] = []
    while len(got) < 48:  # in chunks of at most 5, handing the last token back each time
        chunk = core.fast.sample_and_decode(ctx, sampler, pending, min(5, 48 - len(got)), math.inf)
        got += chunk
        if chunk[-1] in eog:
            break
        pending = chunk[-1:]
    sampler.close()
    assert got == reference
    assert len(got) > 1


def test_a_python_sampler_runs_inside_the_loop(model: core.Model, ctx: core.Context, prompt_ids: list[int]) -> None:
    vocab = model.vocab
    fresh(ctx, prompt_ids)
    greedy = core.Sampler.greedy()
    reference = python_loop(ctx, greedy, 12, eog_tokens(vocab))
    fresh(ctx, prompt_ids)
    chain = core.Sampler.chain()
    chain.add(core.Sampler.from_python(ArgmaxSampler()))
    assert core.fast.sample_and_decode(ctx, chain, [], 12, math.inf) == reference


def test_a_raising_python_sampler_raises_its_error(ctx: core.Context, prompt_ids: list[int]) -> None:
    class Broken:
        def apply(self, candidates: core.TokenDataArray) -> None:
            raise ZeroDivisionError("broken sampler")

    fresh(ctx, prompt_ids)
    chain = core.Sampler.chain()
    chain.add(core.Sampler.from_python(Broken()))
    with pytest.raises(ZeroDivisionError, match="broken sampler"):
        core.fast.sample_and_decode(ctx, chain, [], 4, math.inf)


def test_limits_pending_and_time(model: core.Model, ctx: core.Context, prompt_ids: list[int]) -> None:
    greedy = core.Sampler.greedy()
    fresh(ctx, prompt_ids)
    pos0 = ctx.memory_seq_pos_max(0)
    one = core.fast.sample_and_decode(ctx, greedy, [], 10, 0.0)  # max_ms=0: one token, nothing decoded
    assert len(one) == 1 and ctx.memory_seq_pos_max(0) == pos0
    four = core.fast.sample_and_decode(ctx, greedy, one, 4, math.inf)  # decodes `one`, then 3 of the 4 sampled
    assert len(four) == 4 and ctx.memory_seq_pos_max(0) == pos0 + 4


def test_bad_input_raises(model: core.Model, ctx: core.Context, prompt_ids: list[int]) -> None:
    greedy = core.Sampler.greedy()
    fresh(ctx, prompt_ids)
    with pytest.raises(ValueError, match="max_tokens"):
        core.fast.sample_and_decode(ctx, greedy, [], 0, 1.0)
    with pytest.raises(ValueError, match="max_ms"):
        core.fast.sample_and_decode(ctx, greedy, [], 1, float("nan"))
    with pytest.raises(IndexError):
        core.fast.sample_and_decode(ctx, greedy, [model.vocab.n_tokens], 1, 1.0)
    with pytest.raises(ValueError, match="n_batch"):
        core.fast.sample_and_decode(ctx, greedy, [1] * (ctx.n_batch + 1), 1, 1.0)
    greedy.close()
    with pytest.raises(llamanb.ClosedError):
        core.fast.sample_and_decode(ctx, greedy, [], 1, 1.0)


def test_a_full_context_raises(model: core.Model, prompt_ids: list[int]) -> None:
    params = core.ContextParams()
    params.n_ctx = 32  # llama.cpp rounds it up
    params.n_threads = 2
    vocab = model.vocab
    never_end = SamplingParams(temperature=0, logit_bias={t: -math.inf for t in eog_tokens(vocab)})
    with core.Context(model, params) as small:
        small.decode_tokens(prompt_ids)
        sampler = never_end.build(vocab, prompt_ids)
        with pytest.raises(llamanb.ContextFullError):
            core.fast.sample_and_decode(small, sampler, [], small.n_ctx + 1, math.inf)


# -- the facade: the chunked loop against the per-token one (logprobs keep that path) --


@pytest.fixture()
def fresh_llm(llm: llamanb.Llama) -> Iterator[llamanb.Llama]:
    llm.reset()
    yield llm
    llm.reset()


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0}, {"seed": 11}, {"temperature": 0, "stop": [" the "]}, {"seed": 5, "stop": ["\n", "."]}],
)
def test_generate_matches_the_per_token_path(fresh_llm: llamanb.Llama, kwargs: dict[str, object]) -> None:
    per_token = fresh_llm.generate(PROMPT, max_tokens=60, logprobs=0, **kwargs)  # type: ignore[arg-type]
    fresh_llm.reset()
    chunked = fresh_llm.generate(PROMPT, max_tokens=60, **kwargs)  # type: ignore[arg-type]
    assert (chunked.text, chunked.tokens, chunked.finish_reason) == (
        per_token.text,
        per_token.tokens,
        per_token.finish_reason,
    )
    fresh_llm.reset()
    streamed = "".join(fresh_llm.stream(PROMPT, max_tokens=60, **kwargs))  # type: ignore[arg-type]
    assert streamed == per_token.text


def test_after_a_stop_string_the_cache_still_matches(fresh_llm: llamanb.Llama) -> None:
    """Tokens decoded past a stop string stay in the KV cache and in cached_tokens, so
    the next call reuses a correct prefix: it gives what a fresh context gives."""
    # A word from the middle of the greedy reply, so the run stops there on any machine.
    words = fresh_llm.generate(PROMPT, max_tokens=40, temperature=0).text.split(" ")
    fresh_llm.reset()
    stop = f" {words[len(words) // 2]} "
    first = fresh_llm.generate(PROMPT, max_tokens=40, temperature=0, stop=[stop])
    assert first.finish_reason == "stop", (stop, first.text)
    cached = fresh_llm.cached_tokens
    assert len(cached) >= first.prompt_tokens + len(first.tokens) - 1  # the last token taken is never decoded
    follow = PROMPT + first.text + stop + "the"
    again = fresh_llm.generate(follow, max_tokens=20, temperature=0)
    fresh_llm.reset()
    clean = fresh_llm.generate(follow, max_tokens=20, temperature=0)
    assert again.tokens == clean.tokens


def test_max_tokens_and_a_full_context(model_path: object) -> None:
    with llamanb.Llama(model_path, n_ctx=64, n_threads=2) as small:  # type: ignore[arg-type]
        per_token = small.generate(PROMPT, max_tokens=None, temperature=0, logprobs=0)
        small.reset()
        chunked = small.generate(PROMPT, max_tokens=None, temperature=0)
        assert chunked.finish_reason == per_token.finish_reason == "length"
        assert chunked.tokens == per_token.tokens
        assert chunked.prompt_tokens + len(chunked.tokens) > 64 - 2
        d = small.generate(PROMPT, max_tokens=7, temperature=0)
        assert len(d.tokens) == 7 and d.finish_reason == "length"


def test_ctrl_c_stops_the_loop_within_a_token(model_path: object) -> None:
    """A generate without stop strings runs to the end in one C++ call; Ctrl-C still
    raises KeyboardInterrupt at once (the abort callback polls across the loop's
    decodes), and the Llama stays usable."""
    code = f"""
        import signal
        import llamanb
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive program
        llm = llamanb.Llama({str(model_path)!r}, n_ctx=8192, n_threads=2)
        never_end = {{t: float("-inf") for t in range(llm.vocab.n_tokens) if llm.vocab.is_eog(t)}}
        print("ready", flush=True)
        try:
            llm.generate("Once upon a time", max_tokens=None, temperature=0, logit_bias=never_end)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        print(len(llm.generate("Hello", max_tokens=4, temperature=0).tokens), flush=True)
    """
    got = interrupt_after(code, 1.5)  # well inside the generation (8000 tokens)
    assert got.line.strip() == "interrupted", got.line + got.out + got.err[-1000:]
    assert got.latency < 1.0, f"KeyboardInterrupt took {got.latency:.2f}s"
    assert got.out.strip() == "4" and got.returncode == 0, got.out + got.err[-1000:]
