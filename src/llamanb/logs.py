"""llama.cpp's log, through Python ``logging``.

Messages go to the logger ``"llamanb"``, which has a ``NullHandler``: silent unless
the application configures logging (the library convention). ``Llama(verbose=True)``
shows them on stderr while that ``Llama`` is open.

llama.cpp's log is process-wide, so this bridge is too. The core sends its log here
by default (it imports this module on the first message), and every ``Llama``
installs the bridge again (idempotently) in case the core was told otherwise.
"""

from __future__ import annotations

import logging
import sys
import threading

from . import core

logger = logging.getLogger("llamanb")
logger.addHandler(logging.NullHandler())

_LEVELS = {
    int(core.LogLevel.DEBUG): logging.DEBUG,
    int(core.LogLevel.INFO): logging.INFO,
    int(core.LogLevel.WARN): logging.WARNING,
    int(core.LogLevel.ERROR): logging.ERROR,
}


class _LineJoiner:
    """llama.cpp writes lines in pieces (and progress dots); log whole lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = ""
        self._level = logging.INFO

    def __call__(self, level: int, text: str) -> None:
        py_level = _LEVELS.get(level, logging.INFO)
        with self._lock:
            if self._pending and py_level != self._level:
                lines, self._pending = [self._pending], ""
            else:
                lines = []
            self._level = py_level
            self._pending += text
            *complete, self._pending = self._pending.split("\n")
            lines += complete
        for line in lines:
            if line.strip() and logger.isEnabledFor(py_level):
                logger.log(py_level, "%s", line.rstrip())


forward = _LineJoiner()
"""The callback the core calls by default: ``forward(level, text)``."""


def route_to_logging() -> None:
    """Send llama.cpp's log to the ``"llamanb"`` logger (idempotent)."""
    core.log_to_callback(forward)


class _StderrView:
    """A stderr handler on the ``"llamanb"`` logger, held open by verbose ``Llama``s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._handler = logging.StreamHandler(sys.stderr)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._saved_level = logging.NOTSET

    def acquire(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._saved_level = logger.level
                logger.setLevel(logging.DEBUG)
                logger.addHandler(self._handler)

    def release(self) -> None:
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0:
                logger.removeHandler(self._handler)
                logger.setLevel(self._saved_level)


stderr_view = _StderrView()
