"""``llama_cpp.llama_cache``: saved states keyed by the tokens they hold. A completion
whose prompt shares a longer prefix with a cached key than with what the context holds
loads that state first; every completion stores its state (``Llama.set_cache``)."""

from __future__ import annotations

import hashlib
import os
import pickle
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from ..sequence_cache import common_prefix
from .state import LlamaState


class BaseLlamaCache(ABC):
    def __init__(self, capacity_bytes: int = 2 << 30) -> None:
        self.capacity_bytes = capacity_bytes

    @property
    @abstractmethod
    def cache_size(self) -> int: ...

    @abstractmethod
    def _keys(self) -> list[tuple[int, ...]]: ...

    def _find_longest_prefix_key(self, key: tuple[int, ...]) -> tuple[int, ...] | None:
        best, best_len = None, 0
        for k in self._keys():
            n = common_prefix(k, key)
            if n > best_len:
                best, best_len = k, n
        return best

    def __contains__(self, key: Sequence[int]) -> bool:
        return self._find_longest_prefix_key(tuple(key)) is not None

    @abstractmethod
    def __getitem__(self, key: Sequence[int]) -> LlamaState: ...

    @abstractmethod
    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None: ...


class LlamaRAMCache(BaseLlamaCache):
    """States in memory, least recently used dropped beyond ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int = 2 << 30) -> None:
        super().__init__(capacity_bytes)
        self.cache_state: OrderedDict[tuple[int, ...], LlamaState] = OrderedDict()

    @property
    def cache_size(self) -> int:
        return sum(state.llama_state_size for state in self.cache_state.values())

    def _keys(self) -> list[tuple[int, ...]]:
        return list(self.cache_state)

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        found = self._find_longest_prefix_key(tuple(key))
        if found is None:
            raise KeyError("Key not found")
        self.cache_state.move_to_end(found)
        return self.cache_state[found]

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        self.cache_state.pop(key, None)
        self.cache_state[key] = value
        while self.cache_size > self.capacity_bytes and self.cache_state:
            self.cache_state.popitem(last=False)


LlamaCache = LlamaRAMCache


class LlamaDiskCache(BaseLlamaCache):
    """States as pickle files in ``cache_dir`` (llama-cpp-python uses the diskcache
    package; a directory of files needs no dependency). Oldest files go first beyond
    ``capacity_bytes``. Only load caches you wrote: pickles run code."""

    def __init__(self, cache_dir: str | os.PathLike[str] = ".cache/llama_cache", capacity_bytes: int = 2 << 30) -> None:
        super().__init__(capacity_bytes)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[Path]:
        return sorted(self.cache_dir.glob("*.state"), key=lambda p: p.stat().st_mtime_ns)

    @property
    def cache_size(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def _load(self, path: Path) -> tuple[tuple[int, ...], LlamaState]:
        with path.open("rb") as f:
            key, state = pickle.load(f)
        return key, state

    def _keys(self) -> list[tuple[int, ...]]:
        return [self._load(p)[0] for p in self._files()]

    def _path(self, key: tuple[int, ...]) -> Path:
        return self.cache_dir / (hashlib.sha256(repr(key).encode()).hexdigest() + ".state")

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        found = self._find_longest_prefix_key(tuple(key))
        if found is None:
            raise KeyError("Key not found")
        path = self._path(found)
        path.touch()  # most recently used
        return self._load(path)[1]

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        with self._path(key).open("wb") as f:
            pickle.dump((key, value), f)
        files = self._files()
        while files and sum(p.stat().st_size for p in files) > self.capacity_bytes:
            files.pop(0).unlink()
