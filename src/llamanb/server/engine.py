"""Continuous batching: many requests as parallel sequences of one context.

One background thread owns the context. Each round it admits waiting jobs into free
sequence slots, then submits one decode holding the next token of every generating
sequence plus as much waiting prompt as fits in ``n_batch``, and samples every
sequence that has an output from its row. A finished or abandoned sequence frees its
slot at once, so the next waiting job starts on the following round.

Jobs talk to the asyncio event loop only through ``loop.call_soon_threadsafe``, once
per round for all of them (:class:`_Outbox`); the core releases the GIL during decode
and sampling, so the loop keeps serving HTTP.

LoRA adapters apply to a whole context in llama.cpp, so one decode only holds
sequences under the same adapter set (:data:`LoraSet`); with several sets live, they
take turns, the set whose sequence waited longest first.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .. import core
from ..batch import fill_batch
from ..batch_speculation import BatchSpeculation
from ..cache import MEDIA, can_reuse_prefix, common_prefix, held_prefix
from ..media import MediaPrompt
from ..generation import SequenceText, Step
from ..speculative import SpeculativeOptions
from .metrics import Metrics


@dataclass(frozen=True)
class Finished:
    """The last event of a job: ``error`` if it failed, ``cancelled`` if dropped."""

    error: Exception | None = None
    cancelled: bool = False


Event = Step | Finished


class RequestTimeout(Exception):
    """A job ran past its deadline (waiting for a slot included)."""


class ShuttingDown(RuntimeError):
    """The server is stopping: the job is refused, or cut short after the grace period."""


LoraSet = tuple[tuple[int, float], ...]
"""The LoRA adapters a sequence runs under: (index into the engine's adapters, scale)
pairs, by index, scale never 0 (an adapter at scale 0 is no adapter). Empty: the base
model."""


@dataclass(eq=False)
class Job:
    """One generation request, created on the event loop and run by the engine.

    The engine owns ``sampler`` once the job is submitted (it closes it when the job
    ends) and is the only writer of ``seq`` until the job's ``Finished`` event.
    """

    prompt: list[int]
    seq: SequenceText
    sampler: core.Sampler
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cache_prompt: bool = True  # may start from a slot's cached prefix
    lora: LoraSet = ()
    # Written by the event loop, read by the engine: a plain flag is enough (GIL).
    cancelled: bool = False
    submitted: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # time.monotonic() by which the job must end (None: none)
    last_token: float = 0.0  # when the engine sampled its latest token (0: none yet)
    # A chat with images or audio: its text and media chunks (``prompt`` holds its text tokens).
    media: MediaPrompt | None = None
    media_held: dict[int, tuple[str | None, int]] = field(default_factory=dict)  # its media chunks in the KV cache

    def expired(self, now: float) -> RequestTimeout | None:
        """The error that ends this job, if it is past its deadline."""
        if self.deadline is None or now < self.deadline:
            return None
        return RequestTimeout(f"the request took longer than the server's limit of "
                              f"{self.deadline - self.submitted:g} s")

    def cancel(self) -> None:
        """Ask the engine to drop this job (client gone); harmless once finished."""
        self.cancelled = True

    async def steps(self) -> AsyncIterator[Step]:
        """The job's steps as the engine produces them; raises the engine's error."""
        while True:
            event = await self.queue.get()
            if isinstance(event, Finished):
                if event.error is not None:
                    raise event.error
                return
            yield event


@dataclass(eq=False)
class SlotAction:
    """Save, restore or erase what a slot's KV cache keeps (llama-server's POST
    /slots/{id}?action=...). It runs on the engine thread once the slot is free (a busy
    slot defers it, as llama-server does); ``done`` gets the result or the error."""

    kind: str  # "save", "restore", "erase"
    slot: int
    path: str | None  # the state file (save, restore)
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[dict[str, object]]

    def resolve(self, result: dict[str, object] | BaseException) -> None:
        """Called on the engine thread."""
        def deliver() -> None:
            if self.done.done():
                return
            if isinstance(result, BaseException):
                self.done.set_exception(result)
            else:
                self.done.set_result(result)
        try:
            self.loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the event loop is closed: nobody is waiting
            pass


class _Outbox:
    """The events the engine thread produced in one round, handed to each event loop
    in one callback: one wake-up of the loop per round, not one per token and job
    (on a machine whose cores also run the decode, those wake-ups cost decode time)."""

    def __init__(self) -> None:
        self._events: list[tuple[Job, Event]] = []

    def put(self, job: Job, event: Event) -> None:
        self._events.append((job, event))

    def flush(self) -> None:
        events, self._events = self._events, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}
        for job, event in events:
            by_loop.setdefault(job.loop, []).append((job, event))
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, batch)
            except RuntimeError:  # the event loop is closed: nobody is listening
                for job, _ in batch:
                    job.cancelled = True


def _deliver(batch: list[tuple[Job, Event]]) -> None:
    """Runs on the event loop."""
    for job, event in batch:
        job.queue.put_nowait(event)


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's state and counters since it started."""

    slots: int
    busy: int
    waiting: int
    finished: int
    cancelled: int
    tokens: int
    decodes: int
    peak_parallel: int  # most sequences sampled from one decode
    prompt_tokens: int  # prompt tokens of admitted jobs
    cached_tokens: int  # of those, reused from a slot's KV cache


@dataclass(eq=False)
class _Slot:
    """A job occupying a sequence id (its slot index)."""

    job: Job
    pending: list[int]  # tokens still to decode: the prompt, then the last sampled token
    pos: int = 0  # tokens of this sequence in the KV cache
    row: int = -1  # batch row this sequence samples from after the decode, or -1
    last_decode: int = -1  # the engine's decode count when this sequence was last in one
    speculates: bool = False  # drafts with the engine's speculation (text prompts)
    draft: list[int] = field(default_factory=list)  # drafted after the pending token, in this decode

    @property
    def prompt(self) -> list[int]:
        return self.job.prompt

    @property
    def seq(self) -> SequenceText:
        return self.job.seq


class QueueFull(RuntimeError):
    """More jobs wait than the engine's ``max_waiting``."""


class Engine:
    """The scheduler thread and the context it owns.

    The context has ``slots`` sequences of up to ``n_ctx_slot`` tokens each in one
    unified KV cache of ``slots * n_ctx_slot`` cells, so sequences never compete for
    room: a sequence that reaches ``n_ctx_slot`` tokens ends with "length".

    A slot keeps its sequence's KV cache after a job, and a new job goes to the free
    slot whose cache shares the longest prefix with its prompt (the least recently used
    one on a tie): only the rest of the prompt is decoded (``seq.cached_tokens``).
    With ``speculative``, each generating sequence drafts tokens from the n-grams of its
    own history, or from ``draft_model`` (draft-simple: a context of that model holds
    every slot's sequence as the target does, mirroring each decode; the slots draft
    together), with llama.cpp's common_speculative, one state per slot. The drafts go
    into the same decode, and each slot's sampler keeps what it would have sampled
    anyway (``core.sample_and_accept_n``), so replies do not change.
    At most ``max_waiting`` jobs wait for a slot (None: no bound). A job past its
    ``deadline`` ends with :class:`RequestTimeout` (checked before each decode: jobs share
    one time limit and wait in order, so the running ones always expire first).
    """

    def __init__(self, model: core.Model, *, slots: int, n_ctx_slot: int, n_batch: int, n_threads: int,
                 max_waiting: int | None = None, metrics: Metrics | None = None,
                 adapters: Sequence[core.LoraAdapter] = (), speculative: SpeculativeOptions | None = None,
                 draft_model: core.Model | None = None) -> None:
        if speculative is None and draft_model is not None:
            raise ValueError("a draft model is used only by the 'draft-simple' speculative type")
        if not 1 <= slots <= min(n_batch, core.max_parallel_sequences()):
            raise ValueError(f"slots must be in [1, {min(n_batch, core.max_parallel_sequences())}], got {slots}")
        params = core.ContextParams()
        params.n_ctx = slots * n_ctx_slot
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, params.n_ubatch)
        params.n_seq_max = slots
        params.kv_unified = True  # one decode over all sequences (split KV streams would split it)
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = False  # keep ctx.perf() counters (decode time; bench/ measures around it)
        self.ctx = core.Context(model, params)
        self.vocab = model.vocab
        self.n_ctx_slot = n_ctx_slot
        self._batch = core.Batch(n_batch, 0, 1)
        self._slots: list[_Slot | None] = [None] * slots
        self._kept: list[list[int]] = [[] for _ in range(slots)]  # the KV cache of each free slot
        self._kept_lora: list[LoraSet] = [() for _ in range(slots)]  # the adapters that cache was made under
        # The media chunks each slot's cache holds: first position -> (chunk id, positions).
        self._kept_media: list[dict[int, tuple[str | None, int]]] = [{} for _ in range(slots)]
        self.adapters = list(adapters)
        self._lora: LoraSet = ()  # the adapters set on the context now
        self._used: list[int] = [0] * slots  # when each slot last took a job (a counter)
        self._reusable = can_reuse_prefix(model)
        self.speculative = speculative
        try:
            self._spec = None if speculative is None else BatchSpeculation(speculative, self.ctx, params, draft_model)
        except BaseException:
            self.ctx.close()
            raise
        self.max_waiting = max_waiting
        self.metrics = metrics or Metrics()
        self._waiting: deque[Job] = deque()
        self._actions: deque[SlotAction] = deque()  # slot actions waiting for their slot to be free
        self._ready: list[SlotAction] = []  # taken by _admit, run next (their slots reserved meanwhile)
        self._stopping = False
        self._drain_by: float | None = None  # time.monotonic() by which running jobs must end (drain)
        self._wake = threading.Condition()
        self._outbox = _Outbox()
        self._finished = self._cancelled = self._tokens = self._decodes = self._peak = 0
        self._prompt_tokens = self._cached_tokens = self._admitted = 0
        self._thread = threading.Thread(target=self._run, name="llamanb-engine", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._stopping or self._drain_by is not None:
                job.sampler.close()
                raise ShuttingDown("the server is shutting down")
            if self.max_waiting is not None and len(self._waiting) >= self.max_waiting:
                job.sampler.close()
                raise QueueFull(f"{len(self._waiting)} requests are already waiting for a slot")
            self._waiting.append(job)
            self._wake.notify()

    def submit_action(self, action: SlotAction) -> None:
        if not 0 <= action.slot < len(self._slots):
            raise ValueError(f"no slot has id {action.slot}; this server has ids 0 to {len(self._slots) - 1}")
        with self._wake:
            if self._stopping or self._drain_by is not None:
                raise ShuttingDown("the server is shutting down")
            self._actions.append(action)
            self._wake.notify()

    def drain(self, grace: float) -> None:
        """Begin a graceful stop: refuse new jobs, end waiting ones, and give running
        ones ``grace`` seconds to finish before they end with :class:`ShuttingDown`.
        Takes no lock, so a signal handler may call it."""
        if self._drain_by is None:
            self._drain_by = time.monotonic() + grace

    def close(self) -> None:
        """Stop the thread (live and waiting jobs fail) and free the context."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()
        if self._spec is not None:
            self._spec.close()
        self.ctx.close()

    @property
    def alive(self) -> bool:
        """False once the engine stopped (shut down, or failed)."""
        return self._thread.is_alive() and not self._stopping

    def stats(self) -> EngineStats:
        # Under the lock that frees slots: a snapshot never shows a slot freed but its
        # job not yet counted.
        with self._wake:
            return EngineStats(
                slots=len(self._slots), busy=sum(s is not None for s in self._slots),
                waiting=len(self._waiting), finished=self._finished, cancelled=self._cancelled,
                tokens=self._tokens, decodes=self._decodes, peak_parallel=self._peak,
                prompt_tokens=self._prompt_tokens, cached_tokens=self._cached_tokens,
            )

    def slot_states(self) -> list[dict[str, object]]:
        """What each slot holds (a snapshot read without stopping the engine)."""
        out: list[dict[str, object]] = []
        for i, slot in enumerate(list(self._slots)):
            out.append({"id": i, "n_ctx": self.n_ctx_slot, "is_processing": slot is not None,
                        "n_cached": slot.pos if slot is not None else len(self._kept[i]),
                        "n_decoded": len(slot.job.seq.tokens) if slot is not None else 0,
                        "lora": [{"id": k, "scale": v} for k, v in
                                 (slot.job.lora if slot is not None else self._kept_lora[i])]})
        return out

    # -- the engine thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            while self._admit():
                self._run_actions()
                self._step()
                self._outbox.flush()
        except BaseException as error:  # a bug: fail every job rather than hang them
            self._shutdown(RuntimeError(f"the engine stopped: {error!r}"))
            raise
        self._shutdown(ShuttingDown("the server is shutting down"))

    def _admit(self) -> bool:
        """Wait for work, then move waiting jobs into free slots. False: stop."""
        with self._wake:
            while not self._stopping and not self._waiting and not any(self._slots) and not self._actions:
                self._wake.wait()
            if self._stopping:
                return False
            if self._actions:  # slot actions first, so that a stream of jobs does not keep their slots
                self._take_ready_actions()
            if self._drain_by is not None:
                left, self._waiting = list(self._waiting), deque()
                for job in left:
                    self._end(job, Finished(error=ShuttingDown("the server is shutting down")))
            while self._waiting and self._free_slots():
                job = self._waiting.popleft()
                if job.cancelled:
                    self._end(job, Finished(cancelled=True))
                elif job.seq.done:  # max_tokens=0: nothing to generate
                    self._end(job, Finished())
                else:
                    self._place(job)
        return True

    def _place(self, job: Job) -> None:
        """Put ``job`` in the free slot whose kept cache shares most of its prompt, and
        cut that cache back to the shared prefix."""
        free = self._free_slots()
        if job.media is not None:
            self._place_media(job, free)
            return
        reuse = self._reusable and job.cache_prompt
        # A cache made under other adapters holds other keys and values: not reusable.
        shared = {i: common_prefix(self._kept[i], job.prompt) if reuse and self._kept_lora[i] == job.lora else 0
                  for i in free}
        i = max(free, key=lambda k: (shared[k], -self._used[k]))
        keep = min(shared[i], len(job.prompt) - 1)  # decode at least one token: its logits
        if keep < len(self._kept[i]) and (keep == 0 or not self.ctx.memory_seq_rm(i, keep, -1)):
            self.ctx.memory_seq_rm(i, -1, -1)
            keep = 0
        self._kept[i] = []
        self._kept_media[i] = {}  # a text prompt never holds media: its prefix ends before any
        self._admitted += 1
        self._used[i] = self._admitted
        self._prompt_tokens += len(job.prompt)
        self._cached_tokens += keep
        job.seq.cached_tokens = keep
        self._kept_lora[i] = job.lora
        slot = self._slots[i] = _Slot(job, job.prompt[keep:], pos=keep)
        if self._spec is not None:
            self._spec.start(i, slot, keep)

    def _take_ready_actions(self) -> None:
        """Move the actions whose slot is free to ``_ready`` (one per slot), under the lock."""
        for action in list(self._actions):
            if self._slots[action.slot] is None and all(a.slot != action.slot for a in self._ready):
                self._actions.remove(action)
                self._ready.append(action)

    def _free_slots(self) -> list[int]:
        """Slots a job may take: free, and not reserved by a slot action about to run."""
        reserved = {a.slot for a in self._ready}
        return [i for i, s in enumerate(self._slots) if s is None and i not in reserved]

    def _run_actions(self) -> None:
        if not self._ready:
            return
        ready, self._ready = self._ready, []
        for action in ready:
            try:
                action.resolve(self._slot_action(action))
            except Exception as error:  # any failure is this action's: the engine goes on
                action.resolve(error)

    def _slot_action(self, action: SlotAction) -> dict[str, object]:
        """Runs on the engine thread, the slot free. The shapes are llama-server's."""
        i, start = action.slot, time.perf_counter()
        if action.kind == "erase":
            erased = len(self._kept[i])
            self._forget(i)
            return {"id_slot": i, "n_erased": erased}
        assert action.path is not None
        if action.kind == "save":
            if self._kept_media[i]:
                raise ValueError(f"slot {i} holds image or audio chunks, which a state file cannot name")
            written = self.ctx.state_seq_save_file(action.path, i, self._kept[i])
            _write_lora_record(action.path, self._kept_lora[i])
            return {"id_slot": i, "filename": os.path.basename(action.path), "n_saved": len(self._kept[i]),
                    "n_written": written, "timings": {"save_ms": (time.perf_counter() - start) * 1000}}
        lora = _read_lora_record(action.path)
        self._forget(i)
        try:
            tokens = self.ctx.state_seq_load_file(action.path, i, self.n_ctx_slot)
        except BaseException:
            self.ctx.memory_seq_rm(i, -1, -1)  # whatever a failed load left
            raise
        self._kept[i] = tokens
        self._kept_lora[i] = lora
        return {"id_slot": i, "filename": os.path.basename(action.path), "n_restored": len(tokens),
                "n_read": os.path.getsize(action.path),
                "timings": {"restore_ms": (time.perf_counter() - start) * 1000}}

    def _forget(self, i: int) -> None:
        """Free slot ``i`` keeps nothing (its cache, and its draft side's, are empty)."""
        self.ctx.memory_seq_rm(i, -1, -1)
        self._kept[i] = []
        self._kept_media[i] = {}
        self._kept_lora[i] = ()
        if self._spec is not None:
            self._spec.clear(i)

    def _place_media(self, job: Job, free: list[int]) -> None:
        """Put a job with media in the free slot whose cache holds most of it (text
        token by token, images and audio by chunk id: a follow-up about the same image
        does not encode it again). The chunks it does not hold but the last are
        evaluated now, media encoded by libmtmd (the other slots wait meanwhile); the
        last, text, decodes with the batch."""
        assert job.media is not None
        chunks = [job.media.chunks[k] for k in range(len(job.media.chunks))]
        texts = [c.tokens.tolist() if c.type == core.ChunkType.TEXT else [] for c in chunks]
        try:
            reuse = self._reusable and job.cache_prompt
            held = {k: held_prefix(self._kept[k], self._kept_media[k], chunks, texts)
                    if reuse and self._kept_lora[k] == job.lora else (0, 0, 0) for k in free}
        except ValueError as error:
            self._end(job, Finished(error=error))
            return
        i = max(free, key=lambda k: (held[k][0], -self._used[k]))
        keep, start, offset = held[i]
        if keep < len(self._kept[i]) and (keep == 0 or not self.ctx.memory_seq_rm(i, keep, -1)):
            self.ctx.memory_seq_rm(i, -1, -1)
            keep, start, offset = 0, 0, 0
        if self._spec is not None:
            self._spec.clear(i)  # media does not speculate; its slot's draft side starts over
        keys = list(self._kept[i][:keep])  # per position: text tokens, MEDIA for media (what _kept holds)
        media = {p: v for p, v in self._kept_media[i].items() if p + v[1] <= keep}
        self._kept[i] = []
        self._kept_media[i] = {}
        self._admitted += 1
        self._used[i] = self._admitted
        self._prompt_tokens += job.media.chunks.n_tokens
        self._cached_tokens += keep
        self._kept_lora[i] = job.lora
        pos = keep
        try:
            if job.lora != self._lora:
                self.ctx.set_adapters_lora([(self.adapters[k], scale) for k, scale in job.lora])
                self._lora = job.lora
            mctx = job.media.projector.context
            for k in range(start, len(chunks) - 1):
                if chunks[k].type == core.ChunkType.TEXT:
                    tokens = texts[k][offset if k == start else 0:]
                    for at in range(0, len(tokens), self._batch.capacity):
                        part = tokens[at:at + self._batch.capacity]
                        self._batch.clear()
                        self._batch.add_sequence(part, pos, i, False)
                        self.ctx.decode(self._batch)
                        pos += len(part)
                    keys += tokens
                else:
                    media[pos] = (chunks[k].id, chunks[k].n_pos)
                    pos = mctx.eval_chunk(self.ctx, chunks[k], pos, i, 0, False)
                    keys += [MEDIA] * chunks[k].n_pos
        except Exception as error:
            self.ctx.memory_seq_rm(i, -1, -1)
            self._end(job, Finished(error=error))
            return
        last = texts[-1][offset if start == len(chunks) - 1 else 0:]
        job.prompt = keys + last
        job.media_held = media
        job.seq.cached_tokens = keep
        self._slots[i] = _Slot(job, last, pos=pos)

    def _step(self) -> None:
        now = time.monotonic()
        draining = self._drain_by is not None and now >= self._drain_by
        for i, slot in enumerate(self._slots):
            if slot is not None and draining:
                self._free(i, Finished(error=ShuttingDown("the server is shutting down: the reply was cut short")))
            elif slot is not None and slot.job.cancelled:
                self._free(i, Finished(cancelled=True))
            elif slot is not None and (timeout := slot.job.expired(now)) is not None:
                self._free(i, Finished(error=timeout))
        live = [(i, s) for i, s in enumerate(self._slots) if s is not None]
        if not live:
            return
        live = self._lora_group(live)
        drafts = None if self._spec is None else self._spec.drafts(live, self._batch.capacity, self.n_ctx_slot)
        fill_batch(self._batch, live, drafts)
        try:
            self.ctx.decode(self._batch)
        except (core.LlamaError, ValueError, IndexError) as error:
            # Prompts are validated before they get here; should a decode still fail,
            # the sequences in it fail, and the engine goes on with new ones.
            for i, _ in live:
                self._free(i, Finished(error=error))
            return
        if self._spec is not None:
            self._spec.mirror(self._batch, live)
        for _, slot in live:
            slot.last_decode = self._decodes
        self._decodes += 1
        sampled = [(i, s) for i, s in live if s.row >= 0]
        self._peak = max(self._peak, len(sampled))
        for i, slot in sampled:
            try:
                self._sample(i, slot)
            except Exception as error:  # this sequence only (e.g. a grammar dead end)
                self._free(i, Finished(error=error))

    def _lora_group(self, live: list[tuple[int, _Slot]]) -> list[tuple[int, _Slot]]:
        """The sequences of this step's decode: those under the adapter set of the
        sequence that waited longest (all of them when they share one set), with that
        set made the context's."""
        if not self.adapters:  # the common case, every step: all jobs run on the base model
            return live
        lora = min(live, key=lambda item: item[1].last_decode)[1].job.lora
        if lora != self._lora:
            self.ctx.set_adapters_lora([(self.adapters[k], scale) for k, scale in lora])
            self._lora = lora
        if all(s.job.lora == lora for _, s in live):
            return live
        return [(i, s) for i, s in live if s.job.lora == lora]

    def _sample(self, i: int, slot: _Slot) -> None:
        job, seq = slot.job, slot.job.seq
        if slot.draft:
            assert self._spec is not None
            steps, taken = self._spec.accept(i, slot, job.sampler, self.n_ctx_slot)
            for step in steps:
                self._outbox.put(job, step)
            self._tokens += taken
        else:
            for step in seq.advance(self.ctx, job.sampler, slot.row, room_left=slot.pos < self.n_ctx_slot):
                self._outbox.put(job, step)
        self._tokens += 1
        now = time.monotonic()
        if job.last_token:
            self.metrics.token_seconds.observe(now - job.last_token)
        else:
            self.metrics.ttft_seconds.observe(now - job.submitted)
        job.last_token = now
        if seq.done:
            self._free(i, Finished())
        else:
            slot.pending = seq.to_decode

    def _free(self, i: int, finished: Finished) -> None:
        """End slot ``i``'s job; the slot keeps what its KV cache holds (the prompt and
        the reply but its last token), unless the job failed."""
        slot = self._slots[i]
        if slot is None:
            return
        if (finished.error is None or isinstance(finished.error, RequestTimeout)) and self._reusable:
            self._kept[i] = [*slot.job.prompt, *slot.job.seq.tokens][:slot.pos]
            self._kept_media[i] = {p: v for p, v in slot.job.media_held.items() if p + v[1] <= slot.pos}
            if self._spec is not None and not slot.speculates:
                self._spec.clear(i)
        else:
            self._forget(i)
        with self._wake:  # the slot is free and its job counted in one step (see stats)
            self._slots[i] = None
            self._end(slot.job, finished)

    def _end(self, job: Job, finished: Finished) -> None:
        job.sampler.close()
        with self._wake:
            if finished.cancelled:
                self._cancelled += 1
            else:
                self._finished += 1
            if isinstance(finished.error, RequestTimeout):
                self.metrics.timed_out += 1
        self._outbox.put(job, finished)

    def _shutdown(self, error: Exception) -> None:
        for i in range(len(self._slots)):
            self._free(i, Finished(error=error))
        with self._wake:
            self._stopping = True
            left, self._waiting = list(self._waiting), deque()
        for job in left:
            self._end(job, Finished(error=error))
        with self._wake:
            actions, self._actions = [*self._ready, *self._actions], deque()
            self._ready = []
        for action in actions:
            action.resolve(ShuttingDown("the server is shutting down"))
        self._outbox.flush()


LORA_RECORD_SUFFIX = ".lora.json"


def _lora_record_path(state_path: str) -> str:
    return state_path + LORA_RECORD_SUFFIX


def _write_lora_record(state_path: str, lora: LoraSet) -> None:
    """The adapters a saved cache was made under, beside its state file (llama.cpp's
    file does not record them): a restored cache is then reused only by requests under
    the same adapters. No adapters: no record."""
    record = _lora_record_path(state_path)
    if lora:
        with open(record, "w", encoding="utf-8") as f:
            json.dump([[adapter, scale] for adapter, scale in lora], f)
    elif os.path.exists(record):
        os.remove(record)


def _read_lora_record(state_path: str) -> LoraSet:
    record = _lora_record_path(state_path)
    if not os.path.exists(record):
        return ()
    try:
        with open(record, encoding="utf-8") as f:
            pairs = json.load(f)
        return tuple((int(adapter), float(scale)) for adapter, scale in pairs)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the LoRA record beside the state file is not valid: {error}") from None
