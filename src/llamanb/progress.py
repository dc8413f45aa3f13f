"""A tqdm progress bar for model loading (``Llama(progress=True)``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class LoadProgress:
    """A ``ModelParams.progress_callback`` that draws a tqdm bar; ``close()`` after loading."""

    def __init__(self, description: str) -> None:
        try:
            tqdm: Any = importlib.import_module("tqdm").tqdm  # optional dependency, untyped
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError("progress=True needs tqdm: pip install tqdm (or llamanb[progress])") from err
        self._bar = tqdm(total=100, desc=description, unit="%", leave=False)
        self._shown = 0

    @property
    def callback(self) -> Callable[[float], bool | None]:
        return self._update

    def _update(self, fraction: float) -> bool:
        percent = int(fraction * 100)
        if percent > self._shown:
            self._bar.update(percent - self._shown)
            self._shown = percent
        return True

    def close(self) -> None:
        self._bar.close()
