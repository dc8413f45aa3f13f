"""Sampling recipes: a typed description turned into a llama.cpp sampler chain."""

from __future__ import annotations

from dataclasses import dataclass

from . import core


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen.

    ``temperature <= 0`` means greedy decoding (the other fields are then unused).
    ``seed=None`` draws a fresh random seed for every generation.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be in [0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.seed is not None and not 0 <= self.seed < core.DEFAULT_SEED:
            raise ValueError(f"seed must be in [0, {core.DEFAULT_SEED}), got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def build(self) -> core.Sampler:
        """A fresh sampler chain for one generation."""
        chain = core.Sampler.chain()
        if self.greedy:
            chain.add(core.Sampler.greedy())
            return chain
        # llama.cpp's usual order: truncate, then temperature, then draw.
        if self.top_k > 0:
            chain.add(core.Sampler.top_k(self.top_k))
        if self.top_p < 1.0:
            chain.add(core.Sampler.top_p(self.top_p))
        if self.min_p > 0.0:
            chain.add(core.Sampler.min_p(self.min_p))
        chain.add(core.Sampler.temp(self.temperature))
        chain.add(core.Sampler.dist(core.DEFAULT_SEED if self.seed is None else self.seed))
        return chain
