"""Greedy text jobs run to the end on a server Engine in-process (no HTTP), as
tests/test_server_speculative.py and bench/worker.py (its engine row) drive it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import llamanb
from llamanb.generation import GenerateOptions, SequenceText
from llamanb.server.engine import Engine, Job


def run_greedy_jobs(engine: Engine, llm: llamanb.Llama, prompts: Sequence[str], max_tokens: int,
                    cache_prompt: bool = False) -> list[SequenceText]:
    """Submit one greedy job per prompt (special tokens parsed) at once and wait for
    them all; their sequences, in prompt order."""
    greedy = llamanb.SamplingParams(temperature=0)

    async def jobs() -> list[SequenceText]:
        loop = asyncio.get_running_loop()
        submitted = []
        for prompt in prompts:
            ids = llm.tokenize(prompt, parse_special=True)
            seq = SequenceText(llm.vocab, GenerateOptions(max_tokens=max_tokens))
            seq.prompt_tokens = len(ids)
            job = Job(ids, seq, greedy.build(llm.vocab, ids), loop, cache_prompt=cache_prompt)
            engine.submit(job)
            submitted.append(job)
        for job in submitted:
            async for _ in job.steps():
                pass
        return [job.seq for job in submitted]

    return asyncio.run(jobs())
