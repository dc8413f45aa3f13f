"""astream()/agenerate(): the same results as the sync calls, without blocking the loop."""

from __future__ import annotations

import asyncio

import pytest

import llamanb

PROMPT = "The capital of France is"


def test_astream_and_agenerate_match_sync(llm: llamanb.Llama) -> None:
    async def main() -> tuple[list[str], llamanb.Completion]:
        pieces = [p async for p in llm.astream(PROMPT, max_tokens=16, temperature=0)]
        return pieces, await llm.agenerate(PROMPT, max_tokens=16, temperature=0, logprobs=1)

    pieces, completion = asyncio.run(main())
    expected = llm.generate(PROMPT, max_tokens=16, temperature=0)
    assert "".join(pieces) == expected.text and len(pieces) > 1
    assert completion.tokens == expected.tokens and completion.finish_reason == expected.finish_reason
    assert completion.logprobs is not None and len(completion.logprobs) == len(completion.tokens)


def test_event_loop_keeps_running(llm: llamanb.Llama) -> None:
    async def main() -> tuple[int, llamanb.Completion]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.002)

        task = asyncio.create_task(ticker())
        completion = await llm.agenerate(PROMPT, max_tokens=24, temperature=0)
        done.set()
        await task
        return ticks, completion

    ticks, completion = asyncio.run(main())
    assert len(completion.tokens) == 24
    assert ticks >= 10  # a blocked loop would tick once or twice during 24 decodes


def test_concurrent_calls_take_turns(llm: llamanb.Llama) -> None:
    prompts = [PROMPT, "Once upon a time", "1, 2, 3,"]

    async def main() -> list[llamanb.Completion]:
        return list(await asyncio.gather(*(llm.agenerate(p, max_tokens=8, temperature=0) for p in prompts)))

    results = asyncio.run(main())
    assert [r.tokens for r in results] == [llm.generate(p, max_tokens=8, temperature=0).tokens for p in prompts]


def test_leaving_early_frees_the_llama(llm: llamanb.Llama) -> None:
    async def main() -> str:
        async for piece in llm.astream(PROMPT, max_tokens=200, temperature=0):
            return piece  # leaves the stream after one piece
        return ""

    first = asyncio.run(main())
    assert first
    # The worker thread let go: a sync call right away is not blocked or refused.
    assert llm.generate(PROMPT, max_tokens=2, temperature=0).tokens


def test_cancelled_task_frees_the_llama(llm: llamanb.Llama) -> None:
    async def main() -> None:
        # End-of-generation tokens are banned so that the run cannot finish before the cancel on a fast machine.
        never_stop = {t: float("-inf") for t in range(llm.vocab.n_tokens) if llm.vocab.is_eog(t)}
        task = asyncio.create_task(
            llm.agenerate(PROMPT, max_tokens=900, temperature=0.8, seed=1, logit_bias=never_stop)
        )
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert llm.generate(PROMPT, max_tokens=2, temperature=0).tokens


def test_errors_surface_in_the_coroutine(llm: llamanb.Llama) -> None:
    async def main() -> None:
        async for _ in llm.astream("word " * 5000, max_tokens=2):
            pass

    with pytest.raises(ValueError, match="context holds"):
        asyncio.run(main())
    with pytest.raises(ValueError, match="max_tokens"):
        asyncio.run(llm.agenerate(PROMPT, max_tokens=-3))
