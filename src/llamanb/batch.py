"""Batched generation: many prompts as parallel sequences of one context.

Each step submits one ``core.Batch`` holding the next token of every live sequence
(and prompt chunks of sequences still being read), so one decode serves them all.
When a sequence ends its slot is freed and the next waiting prompt takes it
(continuous batching), so any number of prompts runs with ``max_parallel`` slots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from . import core
from .lora import Adapters, apply_adapters
from .batch_speculation import BatchSpeculation
from .generation import Completion, GenerateOptions, Prompt, SequenceText, encode_prompt
from .sampling import SamplingParams
from .speculative import SpeculativeOptions


class Feeding(Protocol):
    """A sequence in a batch schedule: tokens to decode, next position, output row."""

    pending: list[int]
    pos: int
    row: int


def fill_batch(batch: core.Batch, live: Sequence[tuple[int, Feeding]],
               drafts: dict[int, list[int]] | None = None) -> None:
    """Put every generating sequence's token in the batch, then as much prompt as fits
    (sequence ids are the ints of ``live``). A sequence whose pending tokens all fit
    gets an output row (``row``); the others get -1. A generating sequence with a
    speculative draft in ``drafts`` (by sequence id) has its token and the draft in the
    batch, each with an output row: ``row`` and the rows after it."""
    batch.clear()
    room = batch.capacity
    drafted: set[int] = set()
    for seq_id, s in live:
        draft = drafts.get(seq_id) if drafts else None
        if draft and len(s.pending) == 1:  # the drafts were sized to fit (see the engine)
            drafted.add(seq_id)
            s.row = len(batch)
            for k, token in enumerate(s.pending + draft):
                batch.add(token, s.pos + k, [seq_id], True)
            s.pos += 1 + len(draft)
            s.pending = []
            room -= 1 + len(draft)
    # Generating sequences (one pending token) first: they always fit, since there
    # are at most n_batch slots.
    for seq_id, s in sorted(live, key=lambda item: len(item[1].pending)):
        if seq_id in drafted:
            continue
        take = s.pending[:room]
        s.row = -1
        if not take:
            continue
        finished_prompt = len(take) == len(s.pending)
        batch.add_sequence(take, s.pos, seq_id, finished_prompt)
        if finished_prompt:
            s.row = len(batch) - 1
        s.pos += len(take)
        s.pending = s.pending[len(take):]
        room -= len(take)


@dataclass
class _Live:
    """A sequence occupying a slot (its sequence id)."""

    index: int
    seq: SequenceText
    sampler: core.Sampler
    prompt: list[int]
    pending: list[int]  # tokens still to decode: the prompt, then the last sampled token
    pos: int = 0
    row: int = -1  # batch row whose logits this sequence samples from, or -1
    speculates: bool = False
    draft: list[int] = field(default_factory=list)  # drafted after the pending token, in this decode


class BatchGenerator:
    """Owns the batch context (created on first use, reused while big enough) and,
    with ``speculative``, the drafting state for its sequences (``draft_model``: the
    draft-simple type's, not owned)."""

    def __init__(self, model: core.Model, n_threads: int, n_batch: int,
                 speculative: SpeculativeOptions | None = None, draft_model: core.Model | None = None,
                 adapters: Adapters = ()) -> None:
        self._model = model
        self._adapters = adapters
        self._n_threads = n_threads
        self._n_batch = n_batch
        self._speculative = speculative
        self._draft_model = draft_model
        self._ctx: core.Context | None = None
        self._spec: BatchSpeculation | None = None

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
        spec = self._spec
        results: list[Completion | None] = [None] * len(encoded)
        slots: list[_Live | None] = [None] * n_par
        waiting = deque(range(len(encoded)))
        batch = core.Batch(self._n_batch, 0, 1)
        try:
            while waiting or any(slots):
                for slot in range(n_par):
                    while slots[slot] is None and waiting:
                        i = waiting.popleft()
                        started = slots[slot] = self._start(vocab, i, encoded[i], sampling[i], options, results)
                        if started is not None and spec is not None:
                            spec.start(slot, started, 0)
                live = [(s, lv) for s, lv in enumerate(slots) if lv is not None]
                if not live:
                    break
                fill_batch(batch, live, None if spec is None else spec.drafts(live, batch.capacity, n_ctx_seq))
                ctx.decode(batch)
                if spec is not None:
                    spec.mirror(batch, live)
                for slot, lv in live:
                    if lv.row < 0:
                        continue
                    if lv.draft:
                        assert spec is not None
                        spec.accept(slot, lv, lv.sampler, n_ctx_seq)
                    else:
                        lv.seq.advance(ctx, lv.sampler, lv.row, room_left=lv.pos < n_ctx_seq)
                    if lv.seq.done:
                        results[lv.index] = lv.seq.completion()
                        lv.sampler.close()
                        ctx.memory_seq_rm(slot, -1, -1)
                        if spec is not None:
                            spec.clear(slot)
                        slots[slot] = None
                    else:
                        lv.pending = lv.seq.to_decode
        finally:
            for left in slots:
                if left is not None:
                    left.sampler.close()
            ctx.memory_clear(False)
            if spec is not None:
                for slot in range(n_par):
                    spec.clear(slot)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _start(
        self,
        vocab: core.Vocab,
        index: int,
        encoded: tuple[list[int], str],
        sampling: SamplingParams,
        options: GenerateOptions,
        results: list[Completion | None],
    ) -> _Live | None:
        ids, text = encoded
        seq = SequenceText(vocab, options)
        seq.prompt_tokens = len(ids)
        seq.echo_prompt(text)  # the result's text holds it; there is no stream to show it in
        if seq.done:  # max_tokens=0: nothing to decode
            results[index] = seq.completion()
            return None
        return _Live(index, seq, sampling.build(vocab, ids), ids, list(ids))

    def _context(self, n_seq: int, n_ctx: int) -> core.Context:
        ctx = self._ctx
        if ctx is not None and ctx.n_seq_max >= n_seq and ctx.n_ctx >= n_ctx:
            return ctx
        self.close()
        params = core.ContextParams()
        params.n_ctx = -(-n_ctx // 256) * 256  # round up: later calls of similar size reuse it
        params.n_batch = self._n_batch
        params.n_ubatch = min(self._n_batch, params.n_ubatch)
        params.n_seq_max = n_seq
        params.kv_unified = True  # one KV pool: each sequence takes what it needs
        params.n_threads = params.n_threads_batch = self._n_threads
        params.no_perf = False  # keep ctx.perf() counters, as Llama's own context does
        self._ctx = core.Context(self._model, params)
        apply_adapters(self._ctx, self._adapters)
        if self._speculative is not None:
            try:
                self._spec = BatchSpeculation(self._speculative, self._ctx, params, self._draft_model)
            except BaseException:
                self.close()
                raise
        return self._ctx
