"""Speculative decoding for the sequences of a batched context: the server engine's
slots and ``generate_batch``'s.

llama.cpp's common_speculative keeps one drafting state per sequence. Each step the
generating sequences draft together (one call: a draft model decodes their drafts
side by side), the drafts ride in the target's decode next to the other sequences'
tokens (``batch.fill_batch``), and each sequence keeps its draft as far as its own
sampler agrees (``core.fast.sample_and_accept_n``), so replies are plain decoding's. With a
draft model (draft-simple), a context of it holds every sequence as the target does:
it mirrors each target decode, and rejected tokens leave both caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import core
from .cache import can_reuse_prefix
from .generation import SequenceText, Step
from .speculative import SpeculativeOptions


class Speculating(Protocol):
    """A sequence in a batch schedule that may speculate."""

    pending: list[int]  # tokens still to decode: the prompt, then the last sampled token
    pos: int  # tokens of this sequence in the target's cache
    row: int  # its output row in the last decode, or -1
    speculates: bool
    draft: list[int]  # drafted after its pending token, in this step's decode

    @property
    def prompt(self) -> list[int]: ...

    @property
    def seq(self) -> SequenceText: ...


class BatchSpeculation:
    """The drafting side of ``n_seq`` sequences of ``target``, whose settings were
    ``target_params`` (a draft context is laid out the same way)."""

    def __init__(self, options: SpeculativeOptions, target: core.Context, target_params: core.ContextParams,
                 draft_model: core.Model | None) -> None:
        if options.needs_draft_model and draft_model is None:
            raise ValueError("speculative type 'draft-simple' needs a draft model")
        if draft_model is not None and not options.needs_draft_model:
            raise ValueError("a draft model is used only by the 'draft-simple' speculative type")
        if not can_reuse_prefix(target.model):
            raise ValueError("speculative decoding needs a model whose cache can drop rejected draft tokens")
        self.options = options
        self._draft: core.Context | None = None
        if draft_model is not None:
            if not can_reuse_prefix(draft_model):
                raise ValueError("the draft model's cache cannot drop rejected tokens (recurrent, hybrid or SWA)")
            params = core.ContextParams()
            for name in ("n_ctx", "n_batch", "n_ubatch", "n_seq_max", "kv_unified", "n_threads", "n_threads_batch"):
                setattr(params, name, getattr(target_params, name))
            self._draft = core.Context(draft_model, params)
        try:
            self._spec = core.common.Speculative(options.params(), target, self._draft, target_params.n_seq_max)
        except BaseException:
            if self._draft is not None:
                self._draft.close()
            raise
        self._target = target
        self._n_batch = target_params.n_batch
        self._held = [0] * target_params.n_seq_max  # tokens of each sequence the draft context holds (a prefix)

    def close(self) -> None:
        self._spec.close()
        if self._draft is not None:
            self._draft.close()

    def start(self, i: int, s: Speculating, keep: int) -> None:
        """Sequence ``i`` starts generating after ``s.prompt``, of which the target holds
        the first ``keep`` tokens. Sets ``s.speculates``: False when the draft context
        could not be made to hold the same tokens (the sequence then decodes plainly)."""
        s.speculates = self._sync(i, s.prompt, keep)
        if s.speculates:
            self._spec.begin(i, s.prompt)
            s.seq.drafted_tokens = s.seq.accepted_tokens = 0

    def _sync(self, i: int, prompt: list[int], keep: int) -> bool:
        draft = self._draft
        if draft is None:
            return True
        held = min(self._held[i], keep)
        try:
            if held < self._held[i] and (held == 0 or not draft.memory_seq_rm(i, held, -1)):
                draft.memory_seq_rm(i, -1, -1)
                held = 0
            self._held[i] = held
            for at in range(held, keep, self._n_batch):
                self._spec.process(prompt[at:min(keep, at + self._n_batch)], at, i)
                self._held[i] = min(keep, at + self._n_batch)
        except (core.LlamaError, ValueError):
            self.clear(i)
            return False
        return True

    def clear(self, i: int) -> None:
        """Sequence ``i``'s draft side holds nothing (the target's was dropped, or holds
        what the draft side cannot mirror: media)."""
        if self._draft is not None:
            self._draft.memory_seq_rm(i, -1, -1)
        self._held[i] = 0

    def drafts(self, live: Sequence[tuple[int, Speculating]], room: int, n_ctx_seq: int) -> dict[int, list[int]]:
        """This step's drafts of the generating sequences that speculate, by sequence id,
        sized so that every sequence's pending tokens still fit the ``room`` of the batch
        and no sequence passes ``n_ctx_seq`` tokens or its ``max_tokens``."""
        requests: list[tuple[int, list[int], int, int]] = []
        room -= sum(len(s.pending) for _, s in live)
        for i, s in live:
            s.draft = []
            seq = s.seq
            if not s.speculates or len(s.pending) != 1 or not seq.tokens or room <= 0:
                continue
            n = min(room, n_ctx_seq - s.pos - 1)
            if seq.options.max_tokens is not None:
                n = min(n, seq.options.max_tokens - len(seq.tokens) - 1)
            if self.options.draft_max is not None:
                n = min(n, self.options.draft_max)
            if n <= 0:
                continue
            history = [*s.prompt, *seq.tokens][:s.pos]
            requests.append((i, history, s.pending[0], n))
            room -= n  # reserved: the sequences draft together, each within its share
        drafts: dict[int, list[int]] = {}
        if not requests:
            return drafts
        by_id = dict(live)
        for (i, *_), made in zip(requests, self._spec.draft_many(requests)):
            draft: list[int] = made.tolist()
            if draft:
                by_id[i].draft = drafts[i] = draft
        return drafts

    def mirror(self, batch: core.Batch, live: Sequence[tuple[int, Speculating]]) -> None:
        """Feed the draft context what the target's decode of ``batch`` gave the
        speculating sequences (pending tokens and drafts): one decode of the draft model.
        A sequence it fails for goes on without speculation (this step's drafts are
        still verified)."""
        if self._draft is None:
            return
        mirrored = [i for i, s in live if s.speculates]
        if not mirrored:
            return
        try:
            self._spec.process_batch(batch, mirrored)
        except (core.LlamaError, ValueError):
            for i, s in live:
                if s.speculates:
                    s.speculates = False
                    self.clear(i)
            return
        for i, s in live:
            if s.speculates:
                self._held[i] = s.pos

    def accept(self, i: int, s: Speculating, sampler: core.Sampler, n_ctx_seq: int) -> tuple[list[Step], int]:
        """Verify sequence ``i``'s draft: sample its rows while the sampler agrees, take
        those tokens, and drop the rest from both caches (and what follows a stop, so
        they hold exactly the prompt and the reply but its last token, as without
        speculation). The steps, and how many draft tokens were taken."""
        seq, draft = s.seq, s.draft
        assert seq.drafted_tokens is not None and seq.accepted_tokens is not None
        s.draft = []
        held = s.pos - 1 - len(draft)  # before the pending token
        rows = [s.row + k for k in range(len(draft) + 1)]
        accepted: list[int] = core.fast.sample_and_accept_n(sampler, self._target, draft, rows).tolist()
        self._spec.accept(i, len(accepted) - 1)
        seq.drafted_tokens += len(draft)
        seq.accepted_tokens += len(accepted) - 1
        steps: list[Step] = []
        taken = 0
        for j, token in enumerate(accepted):
            taken = j
            steps += seq.take(token, self._target, s.row + j, room_left=held + 1 + j < n_ctx_seq)
            if seq.done:
                break
        s.pos = held + 1 + taken
        self._target.memory_seq_rm(i, s.pos, -1)
        if self._draft is not None and s.speculates:
            self._draft.memory_seq_rm(i, s.pos, -1)
            self._held[i] = s.pos
        return steps, taken
