"""Streamed responses' chunks into the event loop (asgi.py), through
``core.server.ChunkFeed``: a C++ thread per stream pulls it from the engine without the
GIL, and the loop is woken once per batch (the chunks of one decode step, one per busy
slot), not once per chunk through an executor call.

Measured against a ``run_in_executor(next_chunk)`` per chunk (AMD EPYC, 2 cores): the
front's CPU during bench/serve.py's 32-stream load (2048 chunks) fell from 0.88 to 0.43 s,
and the compute threads' run-queue wait from 1.66 to 1.46 s (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio

from .. import core

Chunks = asyncio.Queue[bytes | None]  # a stream's chunks, then None


class StreamFeed:
    """The streams of one event loop: made and followed on that loop's thread; closed
    from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.closed = False
        self._feed = core.server.ChunkFeed()  # its pipe stays open as long as this object
        self._streams: dict[int, Chunks] = {}
        loop.add_reader(self._feed.fileno(), self._deliver)

    def follow(self, response: core.server.ServerResponse) -> Chunks:
        """Starts pulling ``response``'s stream; its chunks arrive in the queue, then None.
        RuntimeError when no thread could be started for it, or the feed is closed."""
        key = self._feed.follow(response)
        chunks: Chunks = asyncio.Queue()
        self._streams[key] = chunks  # before any take(): _deliver runs on this thread too
        return chunks

    def _deliver(self) -> None:
        for key, chunk in self._feed.take():
            chunks = self._streams[key] if chunk is not None else self._streams.pop(key)
            chunks.put_nowait(chunk)

    @property
    def running(self) -> int:
        """Streams still being pulled."""
        return self._feed.running

    def close(self, timeout_s: float) -> bool:
        """Takes no new streams and waits up to ``timeout_s`` for the pulling threads
        (whose responses were cancelled) to end, so that none is inside the engine when it
        stops; True when none is left."""
        self.closed = True
        return self._feed.close(timeout_s)
