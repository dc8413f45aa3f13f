"""Continuous batching: many requests as parallel sequences of one context.

One background thread owns the context. Each round it admits waiting jobs into free
sequence slots, then submits one decode holding the next token of every generating
sequence plus as much waiting prompt as fits in ``n_batch``, and samples every
sequence that has an output from its row. A finished or abandoned sequence frees its
slot at once, so the next waiting job starts on the following round.

Jobs talk to the asyncio event loop only through ``loop.call_soon_threadsafe``; the
core releases the GIL during decode and sampling, so the loop keeps serving HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .. import core
from ..batch import fill_batch
from ..generation import SequenceText, Step


@dataclass(frozen=True)
class Finished:
    """The last event of a job: ``error`` if it failed, ``cancelled`` if dropped."""

    error: Exception | None = None
    cancelled: bool = False


Event = Step | Finished


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
    # Written by the event loop, read by the engine: a plain flag is enough (GIL).
    cancelled: bool = False

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

    def send(self, event: Event) -> None:
        """Called on the engine thread."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the event loop is closed: nobody is listening
            self.cancelled = True


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


@dataclass(eq=False)
class _Slot:
    """A job occupying a sequence id (its slot index)."""

    job: Job
    pending: list[int]  # tokens still to decode: the prompt, then the last sampled token
    pos: int = 0  # tokens of this sequence in the KV cache
    row: int = -1  # batch row this sequence samples from after the decode, or -1


class Engine:
    """The scheduler thread and the context it owns.

    The context has ``slots`` sequences of up to ``n_ctx_slot`` tokens each in one
    unified KV cache of ``slots * n_ctx_slot`` cells, so sequences never compete for
    room: a sequence that reaches ``n_ctx_slot`` tokens ends with "length".
    """

    def __init__(self, model: core.Model, *, slots: int, n_ctx_slot: int, n_batch: int, n_threads: int) -> None:
        if not 1 <= slots <= min(n_batch, core.max_parallel_sequences()):
            raise ValueError(f"slots must be in [1, {min(n_batch, core.max_parallel_sequences())}], got {slots}")
        params = core.ContextParams()
        params.n_ctx = slots * n_ctx_slot
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, params.n_ubatch)
        params.n_seq_max = slots
        params.kv_unified = True  # one decode over all sequences (split KV streams would split it)
        params.n_threads = params.n_threads_batch = n_threads
        self.ctx = core.Context(model, params)
        self.vocab = model.vocab
        self.n_ctx_slot = n_ctx_slot
        self._batch = core.Batch(n_batch, 0, 1)
        self._slots: list[_Slot | None] = [None] * slots
        self._waiting: deque[Job] = deque()
        self._stopping = False
        self._wake = threading.Condition()
        self._finished = self._cancelled = self._tokens = self._decodes = self._peak = 0
        self._thread = threading.Thread(target=self._run, name="llamanb-engine", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._stopping:
                job.sampler.close()
                raise RuntimeError("the engine is shut down")
            self._waiting.append(job)
            self._wake.notify()

    def close(self) -> None:
        """Stop the thread (live and waiting jobs fail) and free the context."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()
        self.ctx.close()

    @property
    def alive(self) -> bool:
        """False once the engine stopped (shut down, or failed)."""
        return self._thread.is_alive() and not self._stopping

    def stats(self) -> EngineStats:
        with self._wake:
            waiting = len(self._waiting)
        return EngineStats(
            slots=len(self._slots), busy=sum(s is not None for s in self._slots), waiting=waiting,
            finished=self._finished, cancelled=self._cancelled, tokens=self._tokens,
            decodes=self._decodes, peak_parallel=self._peak,
        )

    # -- the engine thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            while self._admit():
                self._step()
        except BaseException as error:  # a bug: fail every job rather than hang them
            self._shutdown(RuntimeError(f"the engine stopped: {error!r}"))
            raise
        self._shutdown(RuntimeError("the server is shutting down"))

    def _admit(self) -> bool:
        """Wait for work, then move waiting jobs into free slots. False: stop."""
        with self._wake:
            while not self._stopping and not self._waiting and not any(self._slots):
                self._wake.wait()
            if self._stopping:
                return False
            for i in range(len(self._slots)):
                while self._slots[i] is None and self._waiting:
                    job = self._waiting.popleft()
                    if job.cancelled:
                        self._end(job, Finished(cancelled=True))
                    elif job.seq.done:  # max_tokens=0: nothing to generate
                        self._end(job, Finished())
                    else:
                        self._slots[i] = _Slot(job, list(job.prompt))
        return True

    def _step(self) -> None:
        for i, slot in enumerate(self._slots):
            if slot is not None and slot.job.cancelled:
                self._free(i, Finished(cancelled=True))
        live = [(i, s) for i, s in enumerate(self._slots) if s is not None]
        if not live:
            return
        fill_batch(self._batch, live)
        try:
            self.ctx.decode(self._batch)
        except (core.LlamaError, ValueError, IndexError) as error:
            # Prompts are validated before they get here; should a decode still fail,
            # the sequences in it fail, and the engine goes on with new ones.
            for i, _ in live:
                self._free(i, Finished(error=error))
            return
        self._decodes += 1
        sampled = [(i, s) for i, s in live if s.row >= 0]
        self._peak = max(self._peak, len(sampled))
        for i, slot in sampled:
            try:
                self._sample(i, slot)
            except Exception as error:  # this sequence only (e.g. a grammar dead end)
                self._free(i, Finished(error=error))

    def _sample(self, i: int, slot: _Slot) -> None:
        job, seq = slot.job, slot.job.seq
        for step in seq.advance(self.ctx, job.sampler, slot.row, room_left=slot.pos < self.n_ctx_slot):
            job.send(step)
        self._tokens += 1
        if seq.done:
            self._free(i, Finished())
        else:
            slot.pending = seq.to_decode

    def _free(self, i: int, finished: Finished) -> None:
        slot = self._slots[i]
        if slot is None:
            return
        self._slots[i] = None
        self.ctx.memory_seq_rm(i, -1, -1)
        self._end(slot.job, finished)

    def _end(self, job: Job, finished: Finished) -> None:
        job.sampler.close()
        if finished.cancelled:
            self._cancelled += 1
        else:
            self._finished += 1
        job.send(finished)

    def _shutdown(self, error: Exception) -> None:
        for i in range(len(self._slots)):
            self._free(i, Finished(error=error))
        with self._wake:
            self._stopping = True
            left, self._waiting = list(self._waiting), deque()
        for job in left:
            self._end(job, Finished(error=error))
