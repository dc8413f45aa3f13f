"""The scheduler: sequences of one context decoded together, each step one decode.

Each step submits one ``core.Batch`` holding the next token of every live sequence
(with its speculative draft, if any) and prompt chunks of sequences still being read,
so one decode serves them all. When a sequence ends its slot is freed and the next
waiting prompt takes it (continuous batching), so any number of prompts runs with
``max_parallel`` slots. ``generate_batch`` runs here, and so does ``Llama``'s
speculative decoding of one sequence (its sequence 0, one slot); plain generation of
one sequence has its own loop in C++ (``generation.run``), the fast path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from . import core
from .generation import Completion, GenerateOptions, Prompt, SequenceText, Step, encode_prompt
from .loading import Runtime, context_params
from .sampling import SamplingParams
from .sequence_cache import SequenceCache
from .speculative import Speculation, SpeculativeOptions


@dataclass
class Slot:
    """A sequence occupying a slot: its sequence id is ``cache.seq_id``, and ``cache``
    holds what it has decoded."""

    index: int  # its prompt's place among the run's
    seq: SequenceText
    sampler: core.Sampler
    cache: SequenceCache
    prompt: list[int]
    pending: list[int]  # tokens still to decode: the prompt's rest, then the last sampled token
    row: int = -1  # batch row whose logits this sequence samples from, or -1
    speculates: bool = False
    draft: list[int] = field(default_factory=list)  # drafted after the pending token, in this decode


def fill_batch(batch: core.Batch, live: Sequence[Slot]) -> None:
    """Put every generating sequence's token (and its draft) in the batch, then as much
    prompt as fits; record in each cache what it gets. A sequence whose pending tokens
    all fit gets an output row (``row``; a draft's rows follow it); the others get -1."""
    batch.clear()
    room = batch.capacity
    for s in live:
        if s.draft:  # one pending token; the drafts were sized to fit (draft_budget)
            s.row = len(batch)
            tokens = s.pending + s.draft
            pos0, seq_id = len(s.cache.tokens), s.cache.seq_id
            for k, token in enumerate(tokens):
                batch.add(token, pos0 + k, [seq_id], True)
            s.cache.note(tokens)
            s.pending = []
            room -= len(tokens)
    # Generating sequences (one pending token) first: they always fit, since there
    # are at most n_batch slots.
    for s in sorted(live, key=lambda s: len(s.pending)):
        if s.draft:  # in the batch already
            continue
        take = s.pending[:room]
        s.row = -1
        if not take:
            continue
        finished_prompt = len(take) == len(s.pending)
        batch.add_sequence(take, len(s.cache.tokens), s.cache.seq_id, finished_prompt)
        s.row = len(batch) - 1 if finished_prompt else -1
        s.cache.note(take)
        s.pending = s.pending[len(take) :]
        room -= len(take)


Admit = Callable[[SequenceCache], Slot | None]
"""Starts a waiting prompt in a free slot's cache: its Slot, or None when it needs
no decoding (its result is already known)."""


def schedule(
    ctx: core.Context,
    caches: Sequence[SequenceCache],
    waiting: deque[Admit],
    spec: Speculation | None,
    n_ctx_seq: int,
    release: bool,
) -> Generator[tuple[Slot, list[Step]], None, None]:
    """Decode until no slot is live and nothing waits: yields each sequence's steps as
    it takes them. A finished sequence's slot is freed (``release``: its cache too).
    ``caches[i]`` is slot ``i``'s (sequence id ``i``)."""
    slots: list[Slot | None] = [None] * len(caches)
    batch = core.Batch(ctx.n_batch, 0, 1)
    try:
        while True:
            for i, cache in enumerate(caches):
                while slots[i] is None and waiting:
                    started = slots[i] = waiting.popleft()(cache)
                    if started is not None and spec is not None:
                        spec.start(started)
            live = [s for s in slots if s is not None]
            if not live:
                return
            if spec is not None:
                spec.drafts(live, batch.capacity, n_ctx_seq)
            fill_batch(batch, live)
            try:
                ctx.decode(batch)
            except BaseException:
                for s in live:  # what they noted is not held
                    s.cache.clear()
                raise
            if spec is not None:
                spec.mirror(batch, live)
            for s in live:
                if s.row < 0:
                    continue
                if s.draft:
                    assert spec is not None
                    steps = spec.accept(s, s.sampler, n_ctx_seq)
                else:
                    steps = s.seq.advance(ctx, s.sampler, s.row, room_left=len(s.cache.tokens) < n_ctx_seq)
                yield s, steps
                if s.seq.done:
                    s.sampler.close()
                    slots[s.cache.seq_id] = None
                    if release:
                        s.cache.clear()
                        if spec is not None:
                            spec.clear(s.cache.seq_id)
                else:
                    s.pending = s.seq.to_decode
    finally:
        for left in slots:
            if left is not None:
                left.sampler.close()


def begin(cache: SequenceCache, index: int, seq: SequenceText, sampling: SamplingParams, ids: list[int]) -> Slot:
    """A slot for ``seq`` after the prompt ``ids``, reusing what ``cache`` holds of it."""
    seq.cached_tokens = keep = cache.reuse(ids)
    return Slot(index, seq, sampling.build(seq.vocab, ids), cache, ids, ids[keep:])


class Scheduler:
    """Owns the batch context (created on first use, reused while big enough) and,
    with ``speculative``, the drafting state for its sequences."""

    def __init__(self, runtime: Runtime, n_batch: int, speculative: SpeculativeOptions | None = None) -> None:
        self._runtime = runtime
        self._n_batch = n_batch
        self._speculative = speculative
        self._ctx: core.Context | None = None
        self._spec: Speculation | None = None

    def close(self) -> None:
        if self._spec is not None:
            self._spec.close()
            self._spec = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    def run(
        self,
        vocab: core.Vocab,
        prompts: Sequence[Prompt],
        sampling: Sequence[SamplingParams],
        options: GenerateOptions,
        n_ctx_seq: int,
        max_parallel: int,
    ) -> list[Completion]:
        """Complete every prompt; results in prompt order. Each sequence may grow to
        ``n_ctx_seq`` tokens; ``sampling[i]`` drives prompt ``i``."""
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
        encoded = [encode_prompt(vocab, p, n_ctx_seq) for p in prompts]
        if not encoded:
            return []
        n_par = min(max_parallel, len(encoded), self._n_batch, core.max_parallel_sequences())
        budget = options.max_tokens if options.max_tokens is not None else n_ctx_seq
        per_seq = min(n_ctx_seq, max(len(ids) for ids, _ in encoded) + budget + 1)
        ctx = self._context(n_par, n_par * per_seq)
        results: list[Completion | None] = [None] * len(encoded)

        def admit(i: int) -> Admit:
            def start(cache: SequenceCache) -> Slot | None:
                ids, text = encoded[i]
                seq = SequenceText(vocab, options)
                seq.prompt_tokens = len(ids)
                seq.echo_prompt(text)  # the result's text holds it; there is no stream to show it in
                if seq.done:  # max_tokens=0: nothing to decode
                    results[i] = seq.completion()
                    return None
                return begin(cache, i, seq, sampling[i], ids)

            return start

        caches = [SequenceCache(ctx, i) for i in range(n_par)]
        try:
            for s, _ in schedule(
                ctx, caches, deque(admit(i) for i in range(len(encoded))), self._spec, n_ctx_seq, release=True
            ):
                if s.seq.done:
                    results[s.index] = s.seq.completion()
        finally:
            ctx.memory_clear(False)
            if self._spec is not None:
                for i in range(n_par):
                    self._spec.clear(i)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _context(self, n_seq: int, n_ctx: int) -> core.Context:
        ctx = self._ctx
        if ctx is not None and ctx.n_seq_max >= n_seq and ctx.n_ctx >= n_ctx:
            return ctx
        self.close()
        n_ctx = -(-n_ctx // 256) * 256  # round up: later calls of similar size reuse it
        self._ctx = self._runtime.context(
            context_params(n_ctx, self._n_batch, self._runtime.n_threads, n_seq=n_seq, perf=True)
        )
        if self._speculative is not None:
            try:
                self._spec = Speculation(self._speculative, self._ctx, self._runtime.draft_model)
            except BaseException:
                self.close()
                raise
        return self._ctx


def speculate(
    cache: SequenceCache, spec: Speculation, prompt: Prompt, sampling: SamplingParams, seq: SequenceText
) -> Generator[Step, None, None]:
    """``generation.run`` with speculation, through the scheduler with one slot (the
    cache's sequence): the same steps, fewer decodes. The cache keeps what it decoded,
    for the next prompt to reuse."""
    ids, text = encode_prompt(seq.vocab, prompt, cache.context.n_ctx)
    seq.prompt_tokens = len(ids)
    seq.drafted_tokens = seq.accepted_tokens = 0
    yield from seq.echo_prompt(text)
    if seq.done:
        return
    waiting: deque[Admit] = deque([lambda c: begin(c, 0, seq, sampling, ids)])
    for _, steps in schedule(cache.context, [cache], waiting, spec, cache.context.n_ctx, release=False):
        yield from steps


BatchGenerator = Scheduler  # its name before it served single sequences too
