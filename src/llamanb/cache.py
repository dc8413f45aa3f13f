"""Prompt caching: keep the KV state of the last tokens and reuse their longest
common prefix with the next prompt, so a growing chat re-evaluates only new tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import core


@dataclass(frozen=True)
class SavedState:
    """A snapshot of a context (KV cache, outputs, RNG) and the tokens it holds."""

    tokens: tuple[int, ...]
    data: bytes = field(repr=False)


class PromptCache:
    """The tokens held in sequence 0 of a context, in order, and their reuse.

    Every decode on that sequence goes through here, so ``tokens`` always matches
    the KV cache. Any failure mid-decode forgets everything (safe, not clever).
    """

    def __init__(self, context: core.Context) -> None:
        self.context = context
        self.tokens: list[int] = []
        # Sliding-window models evict old positions: a prefix may be gone. Recurrent
        # models cannot truncate. Both simply start over each time.
        model = context.model
        self._reusable = can_reuse_prefix(model)

    def prefill(self, prompt: Sequence[int]) -> int:
        """Make the context hold exactly ``prompt``, with the logits of its last token.

        Returns how many leading tokens were reused instead of evaluated."""
        keep = common_prefix(self.tokens, prompt) if self._reusable else 0
        keep = min(keep, len(prompt) - 1)  # evaluate at least one token to get fresh logits
        if keep < len(self.tokens):
            if keep == 0 or not self.context.memory_seq_rm(0, keep, -1):
                self.clear()
                keep = 0
            del self.tokens[keep:]
        self.extend(prompt[keep:])
        return keep

    def extend(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` after the ones held, in chunks of ``n_batch``."""
        step = self.context.n_batch
        try:
            for start in range(0, len(tokens), step):
                chunk = list(tokens[start : start + step])
                self.context.decode_tokens(chunk)
                self.tokens.extend(chunk)
        except BaseException:
            self.clear()
            raise

    def clear(self) -> None:
        self.context.memory_clear(False)  # marking cells free is enough; zeroing costs time
        self.tokens.clear()

    def save(self) -> SavedState:
        return SavedState(tuple(self.tokens), self.context.state_get_data())

    def load(self, state: SavedState) -> None:
        try:
            self.context.state_set_data(state.data)
        except BaseException:
            self.clear()
            raise
        self.tokens = list(state.tokens)


def can_reuse_prefix(model: core.Model) -> bool:
    """Whether a sequence's KV cache can be cut back to a prefix and extended: not for
    sliding-window models (old positions are evicted) nor recurrent ones."""
    return model.n_swa == 0 and not model.is_recurrent and not model.is_hybrid


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
