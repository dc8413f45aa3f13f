"""One CPU-bound process beside a measurement: the shared machine users really have.

On 2 cores its fair share leaves the measured program 0.5x of its quiet figure
(issue 27: decoding must degrade in proportion to the CPU it gets, not collapse).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """One CPU-bound process (``while True: pass``) for the length of the block."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()
