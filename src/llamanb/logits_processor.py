"""Python functions over a token's logits, run as the first sampler of the chain:
llama-cpp-python's ``LogitsProcessor`` (``SamplingParams.logits_processors``,
``compat``'s ``logits_processor=``).

Each gets the tokens so far (the prompt, then every accepted token) and the scores of
the whole vocabulary, and returns the scores to sample from. It is Python per token,
so it costs far more than the C++ chain (~0.1 ms per token and function for a 49k
vocabulary, before what the function itself does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from . import core

LogitsProcessor = Callable[[npt.NDArray[np.intc], npt.NDArray[np.single]], npt.NDArray[np.single]]
"""``(input_ids, scores) -> scores``: scores has one float per vocabulary token."""


class LogitsProcessors:
    """The ``core.Sampler.from_python`` object running ``processors`` in order."""

    def __init__(self, processors: Sequence[LogitsProcessor], prompt: Sequence[int], n_vocab: int) -> None:
        self._processors = tuple(processors)
        self._n_prompt = len(prompt)
        # The tokens so far in a buffer that grows by doubling: each token appends one id
        # and hands the functions a view, instead of converting the whole history again.
        self._ids = np.zeros(max(16, 2 * len(prompt)), dtype=np.intc)
        self._ids[: self._n_prompt] = prompt
        self._n = self._n_prompt
        self._n_vocab = n_vocab

    def apply(self, candidates: core.TokenDataArray) -> None:
        ids = candidates.ids
        scores = np.full(self._n_vocab, -np.inf, dtype=np.single)
        scores[ids] = candidates.logits
        input_ids = self._ids[: self._n]  # a view, as llama-cpp-python passes its own input_ids
        for process in self._processors:
            out = process(input_ids, scores)
            scores = np.asarray(out, dtype=np.single)
            if scores.shape != (self._n_vocab,):
                raise ValueError(
                    f"a logits processor must return {self._n_vocab} scores (one per vocabulary "
                    f"token), got shape {np.shape(out)}"
                )
        candidates.logits = np.ascontiguousarray(scores[ids])

    def accept(self, token: int) -> None:
        if self._n == len(self._ids):
            self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
        self._ids[self._n] = token
        self._n += 1

    def reset(self) -> None:
        self._n = self._n_prompt
