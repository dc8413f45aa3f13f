"""Speculative decoding with llama.cpp's own drafting (``common/speculative.h``).

Each step drafts tokens after the last sampled one (from a smaller draft model with
the same vocabulary, or from n-grams already in the context), decodes the last token
and the draft on the target in one batch, and keeps the draft while the target's own
sampler picks the same tokens (llama.cpp's rule, ``core.fast.sample_and_accept_n``). The
sampler draws at every position exactly as plain decoding does, so the output is the
target's: with greedy sampling or a seed, the same tokens (up to the rounding of
batched kernels, see docs), with the same stop strings, logprobs, grammars and
``max_tokens``. What speculation changes is how many decodes that takes.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from . import core
from .cache import PromptCache, can_reuse_prefix
from .generation import Prompt, SequenceText, Step, encode_prompt
from .sampling import SamplingParams

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
        options = spec if isinstance(spec, SpeculativeOptions) else SpeculativeOptions(
            tuple(spec) if not isinstance(spec, str) else (spec,))  # type: ignore[arg-type]
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


class Speculator:
    """A ``Llama``'s speculative decoding: llama.cpp's drafting state over the main
    context (sequence 0) and, for draft-simple, a draft context that mirrors it."""

    def __init__(self, target: core.Context, options: SpeculativeOptions, draft_model: core.Model | None,
                 n_threads: int, *, owns_draft_model: bool = False) -> None:
        model = target.model
        if not can_reuse_prefix(model):
            raise ValueError("speculative decoding needs a model whose cache can drop rejected draft tokens; "
                             "recurrent, hybrid and sliding-window models cannot (yet)")
        self.options = options
        self.draft_context: core.Context | None = None
        self._owned_model = draft_model if owns_draft_model else None
        self._draft_cache: PromptCache | None = None
        if options.needs_draft_model:
            if draft_model is None:
                raise ValueError("speculative type 'draft-simple' needs a draft model")
            if not can_reuse_prefix(draft_model):
                raise ValueError("the draft model's cache cannot drop rejected tokens (recurrent, hybrid or SWA)")
            params = core.ContextParams()
            params.n_ctx = target.n_ctx
            params.n_batch = target.n_batch
            params.n_ubatch = target.n_ubatch
            params.n_seq_max = 1
            params.n_threads = params.n_threads_batch = n_threads
            self.draft_context = core.Context(draft_model, params)
            self._draft_cache = PromptCache(self.draft_context)
        try:
            self.spec = core.common.Speculative(options.params(), target, self.draft_context, 1)
        except BaseException:
            if self.draft_context is not None:
                self.draft_context.close()
            raise
        self._batch: core.Batch | None = None

    @property
    def draft_model(self) -> core.Model | None:
        """The draft-simple type's model (None for the n-gram types)."""
        return None if self.draft_context is None else self.draft_context.model

    def close(self) -> None:
        self.spec.close()
        if self.draft_context is not None:
            self.draft_context.close()
        if self._owned_model is not None:
            self._owned_model.close()

    def run(self, cache: PromptCache, vocab: core.Vocab, prompt: Prompt, sampling: SamplingParams,
            seq: SequenceText) -> Generator[Step, None, None]:
        """``generation.run`` with speculation: the same steps, fewer decodes."""
        ctx = cache.context
        n_ctx, n_batch = ctx.n_ctx, ctx.n_batch
        ids, text = encode_prompt(vocab, prompt, n_ctx)
        seq.prompt_tokens = len(ids)
        seq.drafted_tokens = seq.accepted_tokens = 0
        yield from seq.echo_prompt(text)
        if seq.done:
            return
        sampler = sampling.build(vocab, ids)
        try:
            seq.cached_tokens = cache.prefill(ids)
            if self._draft_cache is not None:
                self._draft_cache.prefill(ids)
            self.spec.begin(0, ids)
            yield from seq.advance(ctx, sampler, -1, room_left=len(cache.tokens) < n_ctx)
            while not seq.done:
                (last,) = seq.to_decode
                held = len(cache.tokens)
                # The draft fits the context, the batch, and what max_tokens leaves.
                room = min(n_ctx - held - 1, n_batch - 1)
                if seq.options.max_tokens is not None:
                    room = min(room, seq.options.max_tokens - len(seq.tokens) - 1)
                if self.options.draft_max is not None:
                    room = min(room, self.options.draft_max)
                draft: list[int] = self.spec.draft(0, cache.tokens, last, room).tolist() if room > 0 else []
                if not draft:  # the plain step
                    cache.extend([last])
                    self._mirror([last], held)
                    yield from seq.advance(ctx, sampler, -1, room_left=len(cache.tokens) < n_ctx)
                    continue
                self._decode_all(cache, [last, *draft], held)
                self._mirror([last, *draft], held)
                accepted = core.fast.sample_and_accept_n(sampler, ctx, draft).tolist()
                self.spec.accept(0, len(accepted) - 1)
                seq.drafted_tokens += len(draft)
                seq.accepted_tokens += len(accepted) - 1
                self._truncate(cache, held + len(accepted))
                for j, token in enumerate(accepted):
                    yield from seq.take(token, ctx, j, room_left=held + 1 + j < n_ctx)
                    if seq.done:
                        break
        finally:
            sampler.close()

    def _decode_all(self, cache: PromptCache, tokens: list[int], pos0: int) -> None:
        """Decode ``tokens`` after the ``pos0`` tokens held, with an output row each."""
        batch = self._batch
        if batch is None or batch.capacity < len(tokens):
            batch = self._batch = core.Batch(max(len(tokens), 64), 0, 1)
        batch.clear()
        for i, token in enumerate(tokens):
            batch.add(token, pos0 + i, [0], True)
        try:
            cache.context.decode(batch)
        except BaseException:
            cache.clear()
            raise
        cache.tokens.extend(tokens)

    def _mirror(self, tokens: list[int], pos0: int) -> None:
        """Feed the draft side what the target just decoded."""
        draft_cache = self._draft_cache
        if draft_cache is None:
            self.spec.process(tokens, pos0)  # a no-op for the n-gram types
            return
        try:
            self.spec.process(tokens, pos0)
        except BaseException:
            draft_cache.clear()
            raise
        draft_cache.tokens.extend(tokens)

    def _truncate(self, cache: PromptCache, keep: int) -> None:
        """Drop the rejected draft tokens from both caches."""
        for c in (cache, self._draft_cache):
            if c is not None and not c.truncate(keep):
                raise core.LlamaError("the cache could not drop rejected draft tokens")
