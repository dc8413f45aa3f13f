"""``Llama``: one model and one context, with generation, streaming and tokenization."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from . import core
from .models import default_model
from .sampling import SamplingParams
from .text import PieceDecoder, StopMatcher

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Completion:
    """The result of :meth:`Llama.generate`."""

    text: str
    tokens: list[int] = field(repr=False)
    finish_reason: FinishReason
    prompt_tokens: int


@dataclass
class _Generation:
    """Mutable state of one generation, shared by the token loop and its callers."""

    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    finish_reason: FinishReason = "length"


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Llama:
    """A GGUF model with an inference context.

    >>> with Llama() as llm:                       # the default SmolLM2-135M model
    ...     print(llm.generate("Paris is", max_tokens=8, temperature=0).text)

    ``verbose=False`` silences llama.cpp's log (a process-wide setting); errors are
    still reported in exception messages. One ``Llama`` serves one generation at
    a time: calls from other threads wait their turn.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_batch: int = 512,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int | None = None,
        verbose: bool = False,
    ) -> None:
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
        if n_batch < 1:
            raise ValueError(f"n_batch must be >= 1, got {n_batch}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if verbose:
            core.log_to_stderr()
        else:
            core.log_disable()
        path = Path(model_path) if model_path is not None else default_model()
        model_params = core.ModelParams()
        model_params.n_gpu_layers = n_gpu_layers
        self.model = core.Model(path, model_params)
        threads = n_threads or _default_threads()
        ctx_params = core.ContextParams()
        ctx_params.n_ctx = n_ctx
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = min(n_batch, ctx_params.n_ubatch)
        ctx_params.n_threads = threads
        ctx_params.n_threads_batch = threads
        try:
            self.context = core.Context(self.model, ctx_params)
        except BaseException:
            self.model.close()
            raise
        self.vocab = self.model.vocab
        self.seed = seed
        self._lock = threading.Lock()
        self._owner: int | None = None

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Free the context and the model. Idempotent."""
        self.context.close()
        self.model.close()

    @property
    def closed(self) -> bool:
        return self.context.closed

    def __enter__(self) -> Llama:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"n_ctx={self.n_ctx}"
        return f"<llamanb.Llama {self.model.path!r} {state}>"

    @property
    def n_ctx(self) -> int:
        return self.context.n_ctx

    # -- tokens ---------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of ``text``. ``add_special`` adds BOS/EOS as the model wants;
        ``parse_special`` turns special-token text (``<|im_start|>``) into tokens."""
        ids: list[int] = self.vocab.tokenize(text, add_special, parse_special).tolist()
        return ids

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        """Text of ``tokens``; ``special`` renders special tokens as text."""
        data = self.vocab.detokenize(list(tokens), False, special)
        return data.decode("utf-8", errors="replace")

    # -- generation -----------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        """Complete ``prompt``. ``finish_reason`` is "stop" (end-of-generation token or
        a stop string, which is not included in ``text``) or "length" (``max_tokens``
        reached, or the context is full). Special-token text in ``prompt`` (such as
        ``<|im_start|>``) is parsed as those tokens, as llama.cpp's tools do; use
        :meth:`chat` for untrusted user text. ``temperature=0`` is greedy and deterministic;
        otherwise ``seed`` (or the ``Llama``'s seed) makes sampling reproducible."""
        sampling = self._sampling(temperature, top_k, top_p, min_p, seed)
        state = _Generation(prompt_tokens=0)
        text = "".join(self._stream(prompt, max_tokens, sampling, stop or (), state))
        return Completion(text, state.tokens, state.finish_reason, state.prompt_tokens)

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Like :meth:`generate`, yielding text pieces as they are produced.

        Pieces never split a UTF-8 character and never contain (part of) a stop
        string; joined, they equal ``generate(...).text`` for the same arguments."""
        sampling = self._sampling(temperature, top_k, top_p, min_p, seed)
        return self._stream(prompt, max_tokens, sampling, stop or (), _Generation(prompt_tokens=0))

    def _sampling(self, temperature: float, top_k: int, top_p: float, min_p: float, seed: int | None) -> SamplingParams:
        return SamplingParams(temperature, top_k, top_p, min_p, seed if seed is not None else self.seed)

    def _stream(
        self,
        prompt: str,
        max_tokens: int,
        sampling: SamplingParams,
        stop: Sequence[str],
        state: _Generation,
    ) -> Iterator[str]:
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        # Like llama.cpp's own tools, the prompt may spell special tokens (chat markup).
        prompt_ids = self.tokenize(prompt, add_special=True, parse_special=True)
        state.prompt_tokens = len(prompt_ids)
        with self._turn():
            n_ctx = self.context.n_ctx
            if not prompt_ids:
                raise ValueError("the prompt is empty and the model adds no BOS token")
            if len(prompt_ids) >= n_ctx:
                raise ValueError(
                    f"prompt is {len(prompt_ids)} tokens but the context holds {n_ctx}; "
                    "use a larger n_ctx or a shorter prompt"
                )
            self._prefill(prompt_ids)
            sampler = sampling.build()
            decoder = PieceDecoder()
            matcher = StopMatcher(stop)
            n_past = len(prompt_ids)
            try:
                for _ in range(max_tokens):
                    token = sampler.sample(self.context, -1)
                    if self.vocab.is_eog(token):
                        state.finish_reason = "stop"
                        break
                    state.tokens.append(token)
                    text = matcher.feed(decoder.feed(self.vocab.token_to_piece(token, 0, False)))
                    if text:
                        yield text
                    if matcher.stopped:
                        state.finish_reason = "stop"
                        return
                    if n_past >= n_ctx:
                        break  # context full: finish with "length"
                    self.context.decode_tokens([token])
                    n_past += 1
                tail = matcher.feed(decoder.flush()) + matcher.flush()
                if matcher.stopped:
                    state.finish_reason = "stop"
                if tail:
                    yield tail
            finally:
                sampler.close()

    def _prefill(self, tokens: list[int]) -> None:
        self.context.memory_clear(True)
        step = self.context.n_batch
        for start in range(0, len(tokens), step):
            self.context.decode_tokens(tokens[start : start + step])

    def _turn(self) -> _Turn:
        return _Turn(self)


class _Turn:
    """Holds a Llama for one generation. Other threads wait; the same thread
    starting a second generation while a stream is unfinished gets an error
    instead of a deadlock."""

    def __init__(self, llama: Llama) -> None:
        self._llama = llama

    def __enter__(self) -> None:
        llama = self._llama
        if llama._owner == threading.get_ident():
            raise RuntimeError(
                "this thread has an unfinished stream() on this Llama; "
                "exhaust it or call its close() before generating again"
            )
        llama._lock.acquire()
        llama._owner = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self._llama._owner = None
        self._llama._lock.release()
