"""The client side of bench/serve.py: streaming chats through the official ``openai``
client, timed the same way against any OpenAI-compatible server.

Time to first token is measured to the first chunk that carries reply text (a server
may send a role-only chunk before it has sampled anything). Every request bans the
end-of-generation tokens (``logit_bias`` -100, which both servers honour), so every
reply is exactly ``max_tokens`` long and both servers do the same work.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any, cast

import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk

TOPICS = [
    "a lighthouse keeper",
    "a lost robot",
    "the first snow of winter",
    "a dragon who cannot fly",
    "an old map",
    "a city under the sea",
    "a talking cat",
    "the last train home",
    "a garden on Mars",
    "a clockmaker's apprentice",
    "a storm at sea",
    "a forgotten library",
    "a kite festival",
    "a haunted violin",
    "a desert caravan",
    "a mountain rescue",
    "a tiny spaceship",
    "a baker's secret",
    "a river that flows uphill",
    "a chess tournament",
    "a broken compass",
    "a midnight market",
    "an island of birds",
    "a painter who sees sounds",
    "a runaway balloon",
    "a glass forest",
    "a sleepy volcano",
    "a letter from the future",
    "a detective mouse",
    "a frozen waterfall",
    "a circus in the rain",
    "a message in a bottle",
]

# The conversation's system prompt: long enough (~200 tokens) that reusing its cache matters.
SYSTEM_PROMPT = (
    "You are a patient, knowledgeable assistant for a community gardening club. Members ask about "
    "soil preparation, composting, crop rotation, watering schedules, companion planting, pest "
    "control without chemicals, seed saving, and planning beds for small urban plots. Answer in "
    "plain language, give concrete quantities and timings where you can, mention the season a task "
    "belongs to, and suggest one simple next step the member can take this week. When a question "
    "depends on the local climate, say which climates your advice fits and how it changes for "
    "colder or drier places. Prefer methods that need few tools and little money. If a member "
    "describes a sick plant, list the two or three most likely causes, how to tell them apart by "
    "looking at the leaves, stems and roots, and what to do about each. Keep a friendly tone and "
    "avoid jargon; when you must use a technical word, explain it in a few words."
)
QUESTIONS = [
    "How should I prepare a new raised bed for tomatoes?",
    "What can I plant next to the tomatoes to keep pests away?",
    "How often should I water them in a hot, dry July?",
    "Some lower leaves are turning yellow with brown spots. What is it?",
    "How do I save seeds from this year's best plants?",
    "What should I grow in that bed over the winter?",
]


@dataclass(frozen=True)
class Sampling:
    """The request fields both servers get (llama.cpp's top_k and min_p ride in the body)."""

    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    banned: tuple[int, ...]  # end-of-generation token ids

    def fields(self, seed: int) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": seed,
            "logit_bias": {str(t): -100 for t in self.banned},
            "stream_options": {"include_usage": True},
            "extra_body": {"top_k": self.top_k, "min_p": self.min_p},
        }


def client_for(base_url: str, limit_s: float) -> openai.AsyncOpenAI:
    """An openai client that opens a connection per request: llama-server (cpp-httplib)
    may close a kept-alive connection just as the next request goes out on it ("Server
    disconnected without sending a response", seen here between turns of a
    conversation). A loopback connect costs well under a millisecond, for both servers."""
    return openai.AsyncOpenAI(
        base_url=base_url, api_key="unused", max_retries=0, timeout=limit_s, default_headers={"Connection": "close"}
    )


@dataclass(frozen=True)
class Reply:
    ttft: float  # seconds from sending the request to the first chunk with text
    seconds: float  # to the end of the stream
    tokens: int  # completion tokens (the usage chunk)
    text: str


async def stream_chat(
    client: openai.AsyncOpenAI, model: str, messages: list[dict[str, str]], sampling: Sampling, seed: int
) -> Reply:
    start = time.perf_counter()
    ttft: float | None = None
    parts: list[str] = []
    tokens = 0
    stream = cast(
        AsyncStream[ChatCompletionChunk],
        await client.chat.completions.create(model=model, messages=messages, stream=True, **sampling.fields(seed)),
    )  # type: ignore[arg-type]
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if ttft is None:
                ttft = time.perf_counter() - start
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    if ttft is None:
        raise RuntimeError("the stream carried no text")
    return Reply(ttft, time.perf_counter() - start, tokens, "".join(parts))


@dataclass(frozen=True)
class LoadResult:
    tok_per_s: float  # all completion tokens / wall time of the whole load
    ttft_p50: float
    tokens: list[int]  # per stream


async def concurrent_chats(
    base_url: str, model: str, streams: int, sampling: Sampling, seed: int, limit_s: float
) -> LoadResult:
    """``streams`` streaming chats sent at once, each with its own topic and seed."""
    async with client_for(base_url, limit_s) as client:

        async def one(i: int) -> Reply:
            topic = TOPICS[i % len(TOPICS)]
            messages = [{"role": "user", "content": f"Write a short story about {topic}."}]
            return await stream_chat(client, model, messages, sampling, seed + i)

        start = time.perf_counter()
        replies = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(streams))), limit_s)
        wall = time.perf_counter() - start
    tokens = [r.tokens for r in replies]
    return LoadResult(sum(tokens) / wall, statistics.median(r.ttft for r in replies), tokens)


@dataclass(frozen=True)
class ConversationResult:
    ttft: list[float]  # per turn
    prompt_note: str  # session tag that kept this conversation's prefix new to the server


async def conversation(
    base_url: str, model: str, turns: int, sampling: Sampling, seed: int, tag: str, limit_s: float
) -> ConversationResult:
    """One conversation of ``turns`` turns, alone on the server: each turn sends the
    system prompt, the history (every earlier question and the reply the server gave)
    and a new question. ``tag`` heads the system prompt, so no earlier conversation
    shares its prefix."""
    messages = [{"role": "system", "content": f"Session {tag}. {SYSTEM_PROMPT}"}]
    ttfts: list[float] = []
    async with client_for(base_url, limit_s) as client:
        for turn in range(turns):
            messages.append({"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]})
            reply = await asyncio.wait_for(stream_chat(client, model, messages, sampling, seed + turn), limit_s)
            ttfts.append(reply.ttft)
            messages.append({"role": "assistant", "content": reply.text})
    return ConversationResult(ttfts, tag)
