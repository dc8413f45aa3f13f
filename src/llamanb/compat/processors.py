"""llama-cpp-python's ``LogitsProcessorList`` and ``StoppingCriteriaList``, and how a
stopping criterion runs here: as the last logits processor, which ends the sequence
(by leaving only end-of-generation possible) when the criterion says so."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from .. import core
from ..logits_processor import LogitsProcessor

StoppingCriteria = Callable[[npt.NDArray[np.intc], npt.NDArray[np.single]], bool]


class LogitsProcessorList(list[LogitsProcessor]):
    """Logits processors applied in order."""

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        for process in self:
            scores = process(input_ids, scores)
        return scores


class StoppingCriteriaList(list[StoppingCriteria]):
    """Stopping criteria: generation stops when any says True."""

    def __call__(self, input_ids: npt.NDArray[np.intc], logits: npt.NDArray[np.single]) -> bool:
        return any(criterion(input_ids, logits) for criterion in self)


class MinTokensLogitsProcessor:
    """Forbids end-of-sequence until ``min_tokens`` tokens were generated."""

    def __init__(self, min_tokens: int, token_eos: int) -> None:
        self.min_tokens = min_tokens
        self.token_eos = token_eos
        self.prompt_tokens: int | None = None

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
        if len(input_ids) - self.prompt_tokens < self.min_tokens:
            scores[self.token_eos] = -np.inf
        return scores


def as_processors(value: LogitsProcessor | Sequence[LogitsProcessor] | None) -> tuple[LogitsProcessor, ...]:
    """``logits_processor=``: one function, or a list of them (a LogitsProcessorList)."""
    if value is None:
        return ()
    if isinstance(value, Sequence):
        return tuple(value)
    if callable(value):
        return (value,)
    raise TypeError(
        f"logits_processor must be a function (input_ids, scores) -> scores or a list of them, "
        f"got {type(value).__name__}"
    )


def stopping_processor(criteria: StoppingCriteria | Sequence[StoppingCriteria], vocab: core.Vocab) -> LogitsProcessor:
    """A logits processor that asks ``criteria`` before each token, with the tokens so far
    and the scores of the next one (what llama-cpp-python passes after sampling it, and
    then drops that token): on True only EOS stays possible, so the sequence ends with
    finish_reason "stop" and without that token."""
    check: StoppingCriteria = criteria if callable(criteria) else StoppingCriteriaList(criteria)
    eos = vocab.eos if vocab.eos >= 0 else vocab.eot

    def stop_when_told(input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        if not check(input_ids, scores):
            return scores
        ended = np.full_like(scores, -np.inf)
        ended[eos] = 0.0
        return ended

    return stop_when_told
