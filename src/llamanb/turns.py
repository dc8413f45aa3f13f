"""One call at a time on a ``Llama``: its contexts serve one generation at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager

from .generation import Step


class Turns:
    """Holds a Llama for one call. Other threads wait; the same thread starting a
    second call while a stream is unfinished gets an error instead of a deadlock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def take(self) -> Iterator[None]:
        if self._owner == threading.get_ident():
            raise RuntimeError(
                "this thread has an unfinished stream() on this Llama; "
                "exhaust it or call its close() before generating again"
            )
        with self._lock:
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None

    def guarded(self, steps: Callable[[], Generator[Step, None, None]]) -> Generator[Step, None, None]:
        """``steps()`` run during a turn, taken when the first step is asked for."""
        with self.take():
            yield from steps()
