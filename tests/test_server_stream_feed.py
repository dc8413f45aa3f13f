"""``core.server.ChunkFeed``: llama-server's streams pulled by C++ threads and handed to
an event loop in batches (src/llamanb/server/stream_feed.py). Driven here without a loop:
wait for the pipe, take(), as the loop's reader does."""

from __future__ import annotations

import gc
import json
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamanb import core

LIMIT_S = 120.0  # a shared 2-core machine can be slow


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[core.server.Server]:
    s = core.server.Server(["-m", str(model_path), "-c", "1024", "-np", "2", "-t", "2", "--temp", "0"])
    s.start()
    try:
        assert s.wait_ready(LIMIT_S)
        yield s
    finally:
        s.stop()


def completion(
    server: core.server.Server, n_predict: int, prompt: str = "The capital of France is"
) -> core.server.ServerResponse:
    body = json.dumps({"prompt": prompt, "n_predict": n_predict, "stream": True, "temperature": 0}).encode()
    response = core.server.ServerResponse()
    server.handle(response, "POST", "/completion", {}, {}, "", body)
    assert response.status == 200 and response.is_stream
    return response


def text_of(chunks: list[bytes]) -> str:
    """The generated text of a /completion stream's SSE events."""
    events = [json.loads(line[6:]) for c in chunks for line in c.decode().splitlines() if line.startswith("data: ")]
    assert events and events[-1]["stop"] is True
    return "".join(e["content"] for e in events)


def drain(feed: core.server.ChunkFeed, keys: set[int]) -> dict[int, list[bytes]]:
    """Every chunk of the streams ``keys``, taken as the loop takes them (once the pipe is
    readable); each stream must end with None, after its chunks."""
    out: dict[int, list[bytes]] = {k: [] for k in keys}
    open_keys = set(keys)
    while open_keys:
        readable, _, _ = select.select([feed.fileno()], [], [], LIMIT_S)
        assert readable, "the feed's pipe never turned readable"
        for key, chunk in feed.take():
            assert key in open_keys, "a chunk after its stream's end"
            if chunk is None:
                open_keys.discard(key)
            else:
                assert chunk, "empty chunks are not handed over"
                out[key].append(chunk)
    return out


def test_feed_hands_over_the_same_stream_as_next_chunk(server: core.server.Server) -> None:
    pulled = completion(server, 16)
    direct: list[bytes] = []
    while (chunk := pulled.next_chunk()) is not None:
        direct.append(chunk)
    pulled.close()

    feed = core.server.ChunkFeed()
    followed = completion(server, 16)
    key = feed.follow(followed)
    fed = drain(feed, {key})[key]
    assert text_of(fed) == text_of(direct) and len(text_of(fed)) > 0
    assert followed.next_chunk() is None  # the feed pulled it to the end
    followed.close()
    assert feed.close(5.0) and feed.running == 0  # the thread ends just after its None
    assert feed.take() == []


def test_concurrent_streams_each_arrive_whole_and_in_order(server: core.server.Server) -> None:
    feed = core.server.ChunkFeed()
    responses = [completion(server, 12, prompt) for prompt in ("One", "Two", "Three", "Four")]
    keys = [feed.follow(r) for r in responses]
    assert len(set(keys)) == 4
    fed = drain(feed, set(keys))
    for key in keys:
        events = [c for c in fed[key] if c.startswith(b"data: ")]
        assert len(events) >= 2 and b'"stop":true' in events[-1]
        assert all(b'"stop":true' not in c for c in events[:-1])  # in order: the final event last
    for r in responses:
        r.close()
    assert feed.close(5.0) and feed.running == 0


def test_cancel_ends_the_pull_and_close_waits_for_it(server: core.server.Server) -> None:
    feed = core.server.ChunkFeed()
    response = completion(server, 2000)
    key = feed.follow(response)
    first: list[tuple[int, bytes | None]] = []
    while not first:
        select.select([feed.fileno()], [], [], LIMIT_S)
        first = feed.take()
    assert first[0][0] == key and first[0][1]
    response.cancel()  # the client went away
    assert feed.close(LIMIT_S), "the pulling thread did not end after the cancel"
    assert feed.running == 0
    rest = [chunk for k, chunk in feed.take() if k == key]
    assert rest and rest[-1] is None
    with pytest.raises(RuntimeError, match="closed"):
        feed.follow(completion(server, 4))
    response.close()


def test_a_whole_response_is_not_a_stream(server: core.server.Server) -> None:
    response = core.server.ServerResponse()
    server.handle(response, "POST", "/completion", {}, {}, "", b'{"prompt": "Hi", "n_predict": 2}')
    assert response.status == 200 and not response.is_stream
    with pytest.raises(ValueError, match="not a stream"):
        core.server.ChunkFeed().follow(response)
    with pytest.raises(RuntimeError, match="not handled yet"):
        core.server.ChunkFeed().follow(core.server.ServerResponse())


def test_the_stream_outlives_its_python_objects(server: core.server.Server) -> None:
    """The pulling thread holds the request and response: dropping the ServerResponse (and
    the feed's Python object) mid-stream frees nothing it still reads."""
    feed = core.server.ChunkFeed()
    response = completion(server, 24)
    key = feed.follow(response)
    del response
    gc.collect()
    assert text_of(drain(feed, {key})[key])
    response = completion(server, 200)
    feed.follow(response)
    response.cancel()
    del response, feed
    gc.collect()
    # the engine goes on serving (the orphaned thread ended on its own)
    again = completion(server, 4)
    assert text_of(list(iter(again.next_chunk, None)))
    again.close()


def test_stop_closes_the_streams_a_feed_still_pulls(model_path: Path) -> None:
    """A pulled stream outlives its ServerResponse, the one object that keeps the Server
    alive: Server.stop() cancels and closes every open exchange, so no thread reads the
    engine once it has ended, and the Server can then be freed."""
    server = core.server.Server(["-m", str(model_path), "-c", "512", "-np", "2", "-t", "2"])
    server.start()
    assert server.wait_ready(LIMIT_S)
    feed = core.server.ChunkFeed()
    orphan = completion(server, 2000)
    key = feed.follow(orphan)
    del orphan
    held = completion(server, 2000)  # still referenced from Python at the stop
    while not feed.take():
        select.select([feed.fileno()], [], [], LIMIT_S)
    server.stop()
    assert feed.close(LIMIT_S) and feed.running == 0, "a pulling thread outlived the engine"
    assert feed.take()[-1] == (key, None)
    assert held.next_chunk() is None  # closed by the stop
    with pytest.raises(RuntimeError, match="closed"):
        _ = held.status
    del server
    gc.collect()
    held.close()
