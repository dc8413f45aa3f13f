"""asyncio: run a blocking generator on a worker thread, consume it without blocking
the event loop. The core releases the GIL while decoding, so the loop keeps running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Item(Generic[T]):
    def __init__(self, value: T) -> None:
        self.value = value


async def iterate_in_thread(start: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Items of ``start()``, produced on a dedicated thread (one per call, so the
    generator keeps one thread for its whole life, as its locks expect).

    Leaving the ``async for`` early (break, exception, task cancelled) tells the
    thread to stop after the item it is producing, and waits for it off the loop.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[_Item[T] | _Failed | _Done] = asyncio.Queue()
    stop = threading.Event()

    def put(item: _Item[T] | _Failed | _Done) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def produce() -> None:
        try:
            iterator = start()
            try:
                for value in iterator:
                    put(_Item(value))
                    if stop.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()  # a generator: run its cleanup (lock release) on this thread
        except BaseException as error:  # handed to the consumer, re-raised there
            put(_Failed(error))
        else:
            put(_Done())

    thread = threading.Thread(target=produce, name="llamanb-aio", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item.value
    finally:
        stop.set()
        if thread.is_alive():
            await asyncio.shield(asyncio.to_thread(thread.join))
