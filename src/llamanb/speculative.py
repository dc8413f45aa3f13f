"""Speculative decoding with llama.cpp's own drafting (``common/speculative.h``), for
the sequences of one context (``Llama``'s sequence 0, or ``generate_batch``'s slots).

Each step the generating sequences draft tokens after their last sampled one (from a
smaller draft model with the same vocabulary, or from n-grams already in the
context; one call drafts for all of them), each draft rides in the target's decode
next to the other sequences' tokens (``scheduler.fill_batch``), and each sequence
keeps its draft while its own sampler picks the same tokens (llama.cpp's rule,
``core.fast.sample_and_accept_n``). The sampler draws at every position exactly as plain
decoding does, so the output is the target's: with greedy sampling or a seed, the
same tokens (up to the rounding of batched kernels, see docs), with the same stop
strings, logprobs, grammars and ``max_tokens``. What speculation changes is how many
decodes that takes. With a draft model (draft-simple), a context of it holds every
sequence as the target does: it mirrors each target decode, and rejected tokens
leave both caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from . import core
from .generation import SequenceText, Step
from .loading import context_params
from .sequence_cache import SequenceCache, can_reuse_prefix, common_prefix

SpeculativeType = Literal["draft-simple", "ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache"]
"""The types llamanb offers: a draft model, or self-speculation from the context's
n-grams. (llama.cpp's Eagle3/MTP/DFlash types need models with drafting heads.)"""

SPECULATIVE_TYPES: tuple[SpeculativeType, ...] = get_args(SpeculativeType)


@dataclass(frozen=True)
class SpeculativeOptions:
    """Which drafting to use and how long drafts may be.

    ``types``: one or more of :data:`SpeculativeType`; llama.cpp tries the n-gram
    types first, then the draft model. ``draft_max``: most tokens drafted per step
    (None: each type's llama.cpp default: draft-simple 3, ngram-simple/map 48,
    ngram-mod 64, ngram-cache 8). ``draft_min``: shorter drafts are dropped
    (draft-simple, ngram-mod; None: llama.cpp's 0 and 48). ``draft_p_min``: the draft
    model stops at a token it gives less probability (None: 0). ``ngram_size``: the
    n-gram looked up by ngram-simple/map-k/map-k4v (None: 12), or matched by
    ngram-mod (None: 24). ``ngram_min_hits``: occurrences an n-gram needs before the
    map types draft from it (None: 1).
    """

    types: tuple[SpeculativeType, ...] = ("ngram-mod",)
    draft_max: int | None = None
    draft_min: int | None = None
    draft_p_min: float | None = None
    ngram_size: int | None = None
    ngram_min_hits: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.types, str):
            object.__setattr__(self, "types", (self.types,))
        if not self.types:
            raise ValueError("SpeculativeOptions needs at least one type")
        for t in self.types:
            if t not in SPECULATIVE_TYPES:
                raise ValueError(f"unknown or unsupported speculative type {t!r}; llamanb offers {SPECULATIVE_TYPES}")
        if self.draft_max is not None and self.draft_max < 1:
            raise ValueError(f"draft_max must be >= 1, got {self.draft_max}")
        if self.draft_min is not None and self.draft_min < 0:
            raise ValueError(f"draft_min must be >= 0, got {self.draft_min}")
        if self.draft_max is not None and self.draft_min is not None and self.draft_min > self.draft_max:
            raise ValueError(f"draft_min ({self.draft_min}) exceeds draft_max ({self.draft_max})")
        if self.draft_p_min is not None and not 0.0 <= self.draft_p_min <= 1.0:
            raise ValueError(f"draft_p_min must be in [0, 1], got {self.draft_p_min}")
        if self.ngram_size is not None and self.ngram_size < 1:
            raise ValueError(f"ngram_size must be >= 1, got {self.ngram_size}")
        if self.ngram_min_hits is not None and self.ngram_min_hits < 1:
            raise ValueError(f"ngram_min_hits must be >= 1, got {self.ngram_min_hits}")

    @property
    def needs_draft_model(self) -> bool:
        return "draft-simple" in self.types

    @staticmethod
    def of(spec: str | Sequence[str] | SpeculativeOptions | None, has_draft_model: bool) -> SpeculativeOptions | None:
        """The options a ``Llama(speculative=..., draft_model=...)`` pair means: a type
        name, several, options, or None (draft-simple with a draft model, else off)."""
        if spec is None:
            return SpeculativeOptions(("draft-simple",)) if has_draft_model else None
        if isinstance(spec, SpeculativeOptions):
            options = spec
        else:
            names = (spec,) if isinstance(spec, str) else tuple(spec)
            options = SpeculativeOptions(names)  # type: ignore[arg-type]
        if options.needs_draft_model and not has_draft_model:
            raise ValueError("speculative type 'draft-simple' needs draft_model= (a GGUF path or a Llama)")
        if has_draft_model and not options.needs_draft_model:
            raise ValueError(f"draft_model= is used only by the 'draft-simple' type, not by {options.types}")
        return options

    def params(self) -> core.common.SpeculativeParams:
        """llama.cpp's settings for these options (its defaults where None)."""
        p = core.common.SpeculativeParams()
        p.types = [core.common.speculative_type_from_name(t) for t in self.types]
        if self.draft_max is not None:
            p.draft.n_max = self.draft_max
            p.ngram_mod.n_max = self.draft_max
            for m in (p.ngram_simple, p.ngram_map_k, p.ngram_map_k4v):
                m.size_m = self.draft_max
        if self.draft_min is not None:
            p.draft.n_min = self.draft_min
            p.ngram_mod.n_min = self.draft_min
        # A shorter draft_max must not leave a larger default minimum behind.
        p.draft.n_min = min(p.draft.n_min, p.draft.n_max)
        p.ngram_mod.n_min = min(p.ngram_mod.n_min, p.ngram_mod.n_max)
        if self.draft_p_min is not None:
            p.draft.p_min = self.draft_p_min
        if self.ngram_size is not None:
            p.ngram_mod.n_match = self.ngram_size
            for m in (p.ngram_simple, p.ngram_map_k, p.ngram_map_k4v):
                m.size_n = self.ngram_size
        if self.ngram_min_hits is not None:
            for m in (p.ngram_simple, p.ngram_map_k, p.ngram_map_k4v):
                m.min_hits = self.ngram_min_hits
        return p


def draft_budget(room: int, n_ctx_seq: int, held: int, seq: SequenceText, draft_max: int | None) -> int:
    """How many tokens a sequence may draft after its pending token: the draft fits the
    ``room`` left in the batch, the sequence's ``n_ctx_seq`` positions (``held`` before
    the pending token), what ``max_tokens`` leaves, and ``draft_max``."""
    n = min(room, n_ctx_seq - held - 1)
    if seq.options.max_tokens is not None:
        n = min(n, seq.options.max_tokens - len(seq.tokens) - 1)
    if draft_max is not None:
        n = min(n, draft_max)
    return n


class Speculating(Protocol):
    """A sequence of the scheduler that may speculate (``cache.seq_id`` is its id)."""

    pending: list[int]  # tokens still to decode: the prompt, then the last sampled token
    row: int  # its output row in the last decode, or -1
    speculates: bool
    draft: list[int]  # drafted after its pending token, in this step's decode

    @property
    def prompt(self) -> list[int]: ...

    @property
    def seq(self) -> SequenceText: ...

    @property
    def cache(self) -> SequenceCache: ...


class Speculation:
    """The drafting side of the ``target.n_seq_max`` sequences of ``target``: llama.cpp's
    drafting state and, for draft-simple, a context of ``draft_model`` laid out as the
    target's (not owned: the ``Runtime`` opened it)."""

    def __init__(self, options: SpeculativeOptions, target: core.Context, draft_model: core.Model | None) -> None:
        if not can_reuse_prefix(target.model):
            raise ValueError(
                "speculative decoding needs a model whose cache can drop rejected draft tokens; "
                "recurrent, hybrid and sliding-window models cannot (yet)"
            )
        self.options = options
        self.draft_context: core.Context | None = None
        n_seq = target.n_seq_max
        if draft_model is not None:
            if not can_reuse_prefix(draft_model):
                raise ValueError("the draft model's cache cannot drop rejected tokens (recurrent, hybrid or SWA)")
            params = context_params(
                target.n_ctx, target.n_batch, target.n_threads, n_seq=n_seq, n_ubatch=target.n_ubatch
            )
            self.draft_context = core.Context(draft_model, params)
        try:
            self._spec = core.common.Speculative(options.params(), target, self.draft_context, n_seq)
        except BaseException:
            if self.draft_context is not None:
                self.draft_context.close()
            raise
        self._target = target
        # What each sequence of the draft context holds: a prefix of the target's.
        self._held = [] if self.draft_context is None else [SequenceCache(self.draft_context, i) for i in range(n_seq)]

    def close(self) -> None:
        self._spec.close()
        if self.draft_context is not None:
            self.draft_context.close()

    def start(self, s: Speculating) -> None:
        """``s`` starts generating after ``s.prompt``, of which the target holds what
        ``s.cache`` holds. Sets ``s.speculates``: False when the draft context could not
        be made to hold the same tokens (the sequence then decodes plainly)."""
        s.speculates = self._sync(s.cache.seq_id, s.cache.tokens)
        if s.speculates:
            self._spec.begin(s.cache.seq_id, s.prompt)
            s.seq.drafted_tokens = s.seq.accepted_tokens = 0

    def _sync(self, i: int, held_by_target: list[int]) -> bool:
        if self.draft_context is None:
            return True
        held = self._held[i]
        held.truncate(common_prefix(held.tokens, held_by_target))
        n_batch = self.draft_context.n_batch
        try:
            for at in range(len(held.tokens), len(held_by_target), n_batch):
                chunk = held_by_target[at : at + n_batch]
                self._spec.process(chunk, at, i)
                held.note(chunk)
        except (core.LlamaError, ValueError):
            held.clear()
            return False
        return True

    def clear(self, i: int) -> None:
        """Sequence ``i``'s draft side holds nothing (the target's was dropped)."""
        if self._held:
            self._held[i].clear()

    def drafts(self, live: Sequence[Speculating], room: int, n_ctx_seq: int) -> None:
        """Draft for this step: each generating sequence that speculates gets its
        ``draft`` (maybe empty), sized by :func:`draft_budget` so that every sequence's
        pending tokens still fit the ``room`` of the batch."""
        requests: list[tuple[int, list[int], int, int]] = []
        asking: list[Speculating] = []
        room -= sum(len(s.pending) for s in live)
        for s in live:
            s.draft = []
            if not s.speculates or len(s.pending) != 1 or not s.seq.tokens or room <= 0:
                continue
            n = draft_budget(room, n_ctx_seq, len(s.cache.tokens), s.seq, self.options.draft_max)
            if n <= 0:
                continue
            requests.append((s.cache.seq_id, s.cache.tokens, s.pending[0], n))
            asking.append(s)
            room -= n  # reserved: the sequences draft together, each within its share
        if not requests:
            return
        if len(requests) == 1:  # one sequence: no list of requests to marshal
            i, history, last, n = requests[0]
            asking[0].draft = self._spec.draft(i, history, last, n).tolist()
            return
        for s, made in zip(asking, self._spec.draft_many(requests)):
            s.draft = made.tolist()

    def mirror(self, batch: core.Batch, live: Sequence[Speculating]) -> None:
        """Feed the draft context what the target's decode of ``batch`` gave the
        speculating sequences (pending tokens and drafts): one decode of the draft model.
        A sequence it fails for goes on without speculation (this step's drafts are
        still verified)."""
        if self.draft_context is None:
            return
        mirrored = [s.cache.seq_id for s in live if s.speculates]
        if not mirrored:
            return
        try:
            self._spec.process_batch(batch, mirrored)
        except (core.LlamaError, ValueError):
            for s in live:
                if s.speculates:
                    s.speculates = False
                    self.clear(s.cache.seq_id)
            return
        for s in live:
            if s.speculates:
                held = self._held[s.cache.seq_id]
                held.note(s.cache.tokens[len(held.tokens) :])

    def accept(self, s: Speculating, sampler: core.Sampler, n_ctx_seq: int) -> list[Step]:
        """Verify ``s``'s draft: sample its rows while the sampler agrees, take those
        tokens, and drop the rest from both caches (and what follows a stop, so they
        hold exactly the prompt and the reply but its last token, as without
        speculation). The steps taken."""
        seq, draft, cache = s.seq, s.draft, s.cache
        assert seq.drafted_tokens is not None and seq.accepted_tokens is not None
        s.draft = []
        held = len(cache.tokens) - 1 - len(draft)  # before the pending token
        rows = [s.row + k for k in range(len(draft) + 1)]
        accepted: list[int] = core.fast.sample_and_accept_n(sampler, self._target, draft, rows).tolist()
        self._spec.accept(cache.seq_id, len(accepted) - 1)
        seq.drafted_tokens += len(draft)
        seq.accepted_tokens += len(accepted) - 1
        steps: list[Step] = []
        taken = 0
        for j, token in enumerate(accepted):
            taken = j
            steps += seq.take(token, self._target, s.row + j, room_left=held + 1 + j < n_ctx_seq)
            if seq.done:
                break
        keep = held + 1 + taken
        if not cache.truncate(keep):
            raise core.LlamaError("the cache could not drop rejected draft tokens")
        if self._held and s.speculates and not self._held[cache.seq_id].truncate(keep):
            s.speculates = False  # the draft side starts over with the next prompt
        return steps
