"""Log-probabilities of sampled tokens and their top alternatives.

They describe the model's own distribution (log-softmax of the raw logits), before
penalties, biases or grammars, as OpenAI's API reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import core


@dataclass(frozen=True)
class TopLogprob:
    """One candidate token at a position."""

    token: int
    piece: bytes
    logprob: float

    @property
    def text(self) -> str:
        return self.piece.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class TokenLogprob:
    """The sampled token at a position, with the ``n`` most likely candidates."""

    token: int
    piece: bytes
    logprob: float
    top: tuple[TopLogprob, ...]

    @property
    def text(self) -> str:
        return self.piece.decode("utf-8", errors="replace")


def token_logprob(vocab: core.Vocab, logits: npt.NDArray[np.float32], token: int, n_top: int) -> TokenLogprob:
    """The log-probability of ``token`` under ``logits``, and the ``n_top`` best tokens."""
    shifted = logits.astype(np.float64) - float(logits.max())
    logp = shifted - np.log(np.exp(shifted).sum())
    top: tuple[TopLogprob, ...] = ()
    if n_top > 0:
        n = min(n_top, logp.shape[0])
        best = np.argpartition(-logp, n - 1)[:n]
        best = best[np.argsort(-logp[best], kind="stable")]
        top = tuple(TopLogprob(int(t), _piece(vocab, int(t)), float(logp[t])) for t in best)
    return TokenLogprob(token, _piece(vocab, token), float(logp[token]), top)


def _piece(vocab: core.Vocab, token: int) -> bytes:
    return vocab.token_to_piece(token, 0, True)  # special=True: show "<|im_end|>" as text
