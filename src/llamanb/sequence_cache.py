"""Prompt caching (not the KV cache itself): what one sequence of a context holds, and
the reuse of its longest common prefix with the next prompt, so a growing chat
re-evaluates only new tokens. ``Llama``'s main context is ``SequenceCache(ctx, 0)``;
each slot of the batch scheduler is one too."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import core

if TYPE_CHECKING:
    from .media import MediaPrompt

MEDIA = -1
"""What ``SequenceCache.tokens`` holds at the positions of an image or audio chunk."""


@dataclass(frozen=True)
class SavedState:
    """A snapshot of a context (KV cache, outputs, RNG) and the tokens it holds
    (``media``: the image and audio chunks among them, as (position, id, n_pos))."""

    tokens: tuple[int, ...]
    data: bytes = field(repr=False)
    media: tuple[tuple[int, str | None, int], ...] = ()


class SequenceCache:
    """The tokens held in sequence ``seq_id`` of a context, in order, and their reuse.

    Every decode on that sequence goes through here (or is recorded with
    :meth:`note`), so ``tokens`` always matches the KV cache. Any failure mid-decode
    forgets everything (safe, not clever). ``lora``: the adapter set the tokens were
    decoded with (a different set cannot reuse them); ``last_use``: when it last
    decoded (``time.monotonic``), for whoever picks a sequence to evict.
    """

    def __init__(self, context: core.Context, seq_id: int = 0) -> None:
        self.context = context
        self.seq_id = seq_id
        self.tokens: list[int] = []
        # Media chunks held: their first position -> (chunk id, positions). Their
        # positions in ``tokens`` hold MEDIA; a chunk is reused when its id matches.
        self.media: dict[int, tuple[str | None, int]] = {}
        self.lora: tuple[tuple[str, float], ...] = ()
        self.last_use = 0.0
        # M-RoPE media held (or a sequence other than 0): text goes at explicit
        # positions (llama.cpp's automatic position, the largest held + 1, is not the
        # next one after such media, and is sequence 0's only).
        self._explicit_pos = seq_id != 0
        # Sliding-window models evict old positions: a prefix may be gone. Recurrent
        # models cannot truncate. Both simply start over each time.
        self._reusable = can_reuse_prefix(context.model)

    def reuse(self, prompt: Sequence[int]) -> int:
        """Keep the longest held prefix of ``prompt`` but its last token (evaluated
        again for fresh logits); drop the rest. How many tokens are kept."""
        keep = common_prefix(self.tokens, prompt) if self._reusable else 0
        keep = min(keep, len(prompt) - 1)
        return keep if self.truncate(keep) else 0

    def prefill(self, prompt: Sequence[int]) -> int:
        """Make the context hold exactly ``prompt``, with the logits of its last token.

        Returns how many leading tokens were reused instead of evaluated."""
        keep = self.reuse(prompt)
        self.extend(prompt[keep:])
        return keep

    def prefill_media(self, prompt: MediaPrompt) -> int:
        """:meth:`prefill` for a prompt of text and media chunks: the held prefix is
        reused where its text tokens and media chunk ids match (an image asked about
        again is not encoded again); the rest is evaluated, media with libmtmd."""
        chunks = [prompt.chunks[i] for i in range(len(prompt.chunks))]
        texts = [c.tokens.tolist() if c.type == core.mtmd.ChunkType.TEXT else [] for c in chunks]
        pos, start, offset = held_prefix(
            self.tokens if self._reusable else [], self.media if self._reusable else {}, chunks, texts
        )
        reused = pos if self.truncate(pos) else 0
        if reused == 0:
            start, offset = 0, 0
        mctx = prompt.projector.context
        try:
            for i in range(start, len(chunks)):
                if chunks[i].type == core.mtmd.ChunkType.TEXT:
                    self.extend(texts[i][offset if i == start else 0 :])
                    continue
                n_past = len(self.tokens)
                mctx.eval_chunk(self.context, chunks[i], n_past, self.seq_id, 0, False)
                self.media[n_past] = (chunks[i].id, chunks[i].n_pos)
                self.tokens.extend([MEDIA] * chunks[i].n_pos)
                self._explicit_pos = self._explicit_pos or mctx.uses_mrope
            self.last_use = time.monotonic()
        except BaseException:
            self.clear()
            raise
        return reused

    def truncate(self, keep: int) -> bool:
        """Hold only the first ``keep`` positions; False if everything had to go."""
        if keep >= len(self.tokens):
            return True
        if keep == 0 or not self.context.memory_seq_rm(self.seq_id, keep, -1):
            self.clear()
            return False
        del self.tokens[keep:]
        for start in [p for p in self.media if p >= keep]:
            del self.media[start]
        self._explicit_pos = self.seq_id != 0 or (self._explicit_pos and bool(self.media))
        return True

    def extend(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` after the ones held, in chunks of ``n_batch``."""
        step = self.context.n_batch
        try:
            for start in range(0, len(tokens), step):
                chunk = list(tokens[start : start + step])
                if self._explicit_pos:
                    batch = core.Batch(len(chunk))
                    batch.add_sequence(chunk, len(self.tokens), self.seq_id, True)
                    self.context.decode(batch)
                else:
                    self.context.decode_tokens(chunk)
                self.tokens.extend(chunk)
        except BaseException:
            self.clear()
            raise
        self.last_use = time.monotonic()

    def note(self, tokens: Sequence[int]) -> None:
        """Record ``tokens`` as held after the others: they were decoded elsewhere
        (a shared batch of the scheduler, a speculative draft)."""
        self.tokens.extend(tokens)
        self.last_use = time.monotonic()

    @property
    def automatic_positions(self) -> bool:
        """Whether text goes at llama.cpp's automatic positions (False after M-RoPE media)."""
        return not self._explicit_pos

    def sample_and_extend(
        self, sampler: core.Sampler, pending: Sequence[int], max_tokens: int, max_ms: float
    ) -> list[int]:
        """Decode ``pending`` after the tokens held, then sample and decode in C++
        (``core.fast.sample_and_decode``): the sampled tokens. All but the last are then
        held; the last is the next call's ``pending``. Only with automatic positions."""
        if self._explicit_pos:
            raise RuntimeError("sample_and_extend needs automatic positions (M-RoPE media are held)")
        try:
            tokens = core.fast.sample_and_decode(self.context, sampler, pending, max_tokens, max_ms)
        except BaseException:
            self.clear()
            raise
        self.tokens.extend(pending)
        self.tokens.extend(tokens[:-1])
        return tokens

    def clear(self) -> None:
        if self.context.n_seq_max == 1:
            self.context.memory_clear(False)  # marking cells free is enough; zeroing costs time
        else:
            self.context.memory_seq_rm(self.seq_id, -1, -1)
        self.tokens.clear()
        self.media.clear()
        self._explicit_pos = self.seq_id != 0

    def save(self) -> SavedState:
        """A snapshot of the whole context (one of a single sequence)."""
        media = tuple((p, i, n) for p, (i, n) in sorted(self.media.items()))
        return SavedState(tuple(self.tokens), self.context.state_get_data(), media)

    def load(self, state: SavedState) -> None:
        try:
            self.context.state_set_data(state.data)
        except BaseException:
            self.clear()
            raise
        self.tokens = list(state.tokens)
        self.media = {p: (i, n) for p, i, n in state.media}


def held_prefix(
    tokens: Sequence[int],
    media: dict[int, tuple[str | None, int]],
    chunks: Sequence[core.mtmd.InputChunk],
    texts: Sequence[list[int]],
) -> tuple[int, int, int]:
    """How much of a prompt of ``chunks`` (``texts``: each text chunk's tokens) a
    sequence holding ``tokens`` (MEDIA at media positions) and ``media`` (first
    position -> (chunk id, positions)) already holds: (positions held, index of the
    first chunk to evaluate, tokens of it held). Text matches token by token, a media
    chunk whole, by its id. At least the last token is left to evaluate (for fresh
    logits); a prompt must end with a text chunk."""
    if not chunks or chunks[-1].type != core.mtmd.ChunkType.TEXT or not texts[-1]:
        raise ValueError("a prompt with media must end with text")
    pos = 0
    for i, chunk in enumerate(chunks):
        if chunk.type == core.mtmd.ChunkType.TEXT:
            held = common_prefix(tokens[pos : pos + len(texts[i])], texts[i])
            if held < len(texts[i]):
                return pos + held, i, held
            pos += len(texts[i])
        else:
            if chunk.id is None or media.get(pos) != (chunk.id, chunk.n_pos):
                return pos, i, 0
            pos += chunk.n_pos
    return pos - 1, len(chunks) - 1, len(texts[-1]) - 1


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
