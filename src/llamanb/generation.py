"""Generating one sequence: prompt handling, the token loop, finish reasons, results."""

from __future__ import annotations

import math
import operator
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, SupportsIndex

from . import core
from .logprobs import TokenLogprob, token_logprob
from .sampling import SamplingKwargs, SamplingParams, resolve_sampling
from .sequence_cache import SequenceCache
from .stop_strings import StopMatcher
from .utf8 import PieceDecoder

if TYPE_CHECKING:
    from .media import MediaPrompt

FinishReason = Literal["stop", "length", "tool_calls"]
Prompt = str | Sequence[int]
"""Text (special-token markup such as ``<|im_start|>`` is parsed) or token ids."""

CHUNK_MS = 25.0
"""How long the C++ token loop runs before it hands its tokens to Python: a stream shows
text at most this late, and a stop string wastes at most this much decoding."""


@dataclass(frozen=True)
class Completion:
    """The result of a generation.

    ``finish_reason`` is "stop" (an end-of-generation token or a stop string, neither
    of which is in ``text``), "length" (``max_tokens`` reached, or the context is
    full) or, for a chat reply that calls tools, "tool_calls". ``logprobs`` has one entry per token in ``tokens`` when requested.
    With speculative decoding, ``drafted_tokens`` counts the tokens drafted and
    ``accepted_tokens`` those the target kept (both None without speculation).
    """

    text: str
    tokens: list[int] = field(repr=False)
    finish_reason: FinishReason
    prompt_tokens: int
    logprobs: list[TokenLogprob] | None = field(default=None, repr=False)
    drafted_tokens: int | None = None
    accepted_tokens: int | None = None

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Step:
    """What one sampled token released: text that is safe to show (possibly empty:
    held back as a partial character or a possible stop string), the token (None for
    the final flush or the echoed prompt) and its log-probabilities when requested."""

    text: str
    token: int | None = None
    logprob: TokenLogprob | None = None


@dataclass(frozen=True)
class GenerateOptions:
    """The per-call options that are not sampling. ``preserved_tokens``: special
    tokens whose text the output keeps (a chat format's tool-call markup)."""

    max_tokens: int | None = 256
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    echo: bool = False
    preserved_tokens: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0 (or None: until the context is full), got {self.max_tokens}")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError(f"logprobs must be >= 0 (the number of top tokens), got {self.logprobs}")
        if isinstance(self.stop, str):
            raise TypeError("stop must be a sequence of strings; wrap a single string in a list")

    @staticmethod
    def of(
        max_tokens: int | None, stop: Sequence[str] | str | None, logprobs: int | None, echo: bool
    ) -> GenerateOptions:
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return GenerateOptions(max_tokens, stops, logprobs, echo)


class GenerateKwargs(SamplingKwargs, total=False):
    """The keyword options of every generating call: the :class:`SamplingParams`
    fields, ``sampling`` (the base those override), ``max_tokens`` (None: until the end
    of generation or a full context; the default is the method's) and ``stop``
    (strings that end the text, left out of it; one string counts as one stop)."""

    sampling: SamplingParams | None
    max_tokens: int | None
    stop: Sequence[str] | None


class CompletionKwargs(GenerateKwargs, total=False):
    """:class:`GenerateKwargs` of the text-completion calls, plus ``logprobs=n`` (each
    token's top ``n``) and ``echo`` (the prompt in front of the text)."""

    logprobs: int | None
    echo: bool


# The GenerateKwargs that are not sampling fields (those go to SamplingParams, which rejects unknown names).
_GENERATE_NAMES = frozenset(GenerateKwargs.__annotations__) - frozenset(SamplingKwargs.__annotations__)


def resolve_options(
    kwargs: GenerateKwargs, max_tokens: int | None, seed: int | None, *, logprobs: int | None = None, echo: bool = False
) -> tuple[GenerateOptions, SamplingParams]:
    """A call's options and sampling from its keywords; ``max_tokens`` is the calling
    method's default, ``seed`` the ``Llama``'s (for a sampling without one).
    ``logprobs`` and ``echo`` come apart, as the calls spell them differently (chat has
    no echo, OpenAI's chat says ``logprobs=True, top_logprobs=n``); every other key
    left in ``kwargs`` is a sampling field (an unknown name raises TypeError)."""
    options = GenerateOptions.of(kwargs.get("max_tokens", max_tokens), kwargs.get("stop"), logprobs, echo)
    overrides: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _GENERATE_NAMES}
    return options, resolve_sampling(kwargs.get("sampling"), overrides, seed)


class SequenceText:
    """One sequence's output: samples its tokens, turns them into text, decides when
    it ends, and keeps the text released so far (``text``)."""

    def __init__(self, vocab: core.Vocab, options: GenerateOptions) -> None:
        self.vocab = vocab
        self.options = options
        self.prompt_tokens = 0
        self.cached_tokens = 0  # prompt tokens whose KV state was reused, not evaluated
        self.drafted_tokens: int | None = None  # speculative decoding's counts (None: not used)
        self.accepted_tokens: int | None = None
        self.tokens: list[int] = []
        self.logprobs: list[TokenLogprob] | None = [] if options.logprobs is not None else None
        self.finish_reason: FinishReason = "length"
        self.done = options.max_tokens == 0
        # How long the C++ token loop runs before its tokens come back (see CHUNK_MS).
        self.chunk_ms = CHUNK_MS
        self.echoed = ""  # the prompt text heading ``text`` (with ``echo``)
        self._texts: list[str] = []
        self._last_token: int | None = None
        self._decoder = PieceDecoder()
        self._matcher = StopMatcher(options.stop)

    @property
    def text(self) -> str:
        """The text released so far, after the echoed prompt."""
        return self.echoed + "".join(self._texts)

    @property
    def to_decode(self) -> list[int]:
        """The tokens to decode before the next :meth:`advance`: the one sampled last
        (none once the sequence is done)."""
        return [] if self.done or self._last_token is None else [self._last_token]

    @property
    def stop_string(self) -> str | None:
        """The stop string that ended the sequence, if one did."""
        return self._matcher.matched

    def echo_prompt(self, prompt_text: str) -> list[Step]:
        """Record the echoed prompt (it heads ``text``) and return its step; none
        without ``echo``. Called before the first token is sampled."""
        if not self.options.echo:
            return []
        self.echoed = prompt_text
        return [Step(prompt_text)]

    def advance(self, ctx: core.Context, sampler: core.Sampler, row: int, room_left: bool) -> list[Step]:
        """Sample from output ``row`` of ``ctx``'s last decode and take the token; when
        the sequence goes on but there is no ``room_left`` to decode that token, end it
        with "length". The one per-token step of every generation loop."""
        return self.take(sampler.sample(ctx, row), ctx, row, room_left)

    def take(self, token: int, ctx: core.Context, row: int, room_left: bool) -> list[Step]:
        """:meth:`advance` for a token already sampled from output ``row`` of ``ctx``
        (speculative decoding samples several rows of one decode at once)."""
        n_top = self.options.logprobs
        logprob = None if n_top is None else token_logprob(self.vocab, ctx.get_logits_ith(row), token, n_top)
        self._last_token = token
        steps = [self.push(token, logprob)]
        if not self.done and not room_left:
            steps.append(self.finish_length())
        return steps

    def push(self, token: int, logprob: TokenLogprob | None = None) -> Step:
        """Take one sampled token; afterwards ``done`` says whether the sequence ended."""
        if self.vocab.is_eog(token):
            return self._release(Step(self._finish("stop")))
        self.tokens.append(token)
        if self.logprobs is not None and logprob is not None:
            self.logprobs.append(logprob)
        piece = self.vocab.token_to_piece(token, 0, token in self.options.preserved_tokens)
        text = self._matcher.feed(self._decoder.feed(piece))
        if self._matcher.stopped:
            self.done, self.finish_reason = True, "stop"
        elif self.options.max_tokens is not None and len(self.tokens) >= self.options.max_tokens:
            text += self._finish("length")
        return self._release(Step(text, token, logprob))

    def unwatched(self) -> None:
        """Nobody reads the text before the end: the token loop may run to the end in
        C++, unless stop strings need checking (they waste at most CHUNK_MS)."""
        if not self.options.stop:
            self.chunk_ms = math.inf

    def finish_length(self) -> Step:
        """End because the context is full."""
        return self._release(Step(self._finish("length")))

    def _finish(self, reason: FinishReason) -> str:
        """End the sequence; the text held back until now."""
        self.done, self.finish_reason = True, reason
        tail = self._matcher.feed(self._decoder.flush()) + self._matcher.flush()
        if self._matcher.stopped:
            self.finish_reason = "stop"
        return tail

    def _release(self, step: Step) -> Step:
        if step.text:
            self._texts.append(step.text)
        return step

    def completion(self) -> Completion:
        """The result (of what ran so far, if the sequence is not done)."""
        return Completion(
            self.text,
            self.tokens,
            self.finish_reason,
            self.prompt_tokens,
            self.logprobs,
            self.drafted_tokens,
            self.accepted_tokens,
        )


class Run:
    """One generation in progress: iterate it for :class:`Step`s (it holds the
    ``Llama`` meanwhile); :meth:`completion` gives the result once it is done."""

    def __init__(self, seq: SequenceText, steps: Generator[Step, None, None]) -> None:
        self.seq = seq
        self._steps = steps

    def __iter__(self) -> Generator[Step, None, None]:
        try:
            yield from self._steps
        finally:
            self._steps.close()

    def texts(self) -> Generator[str, None, None]:
        """The non-empty text pieces."""
        steps = iter(self)
        try:
            for step in steps:
                if step.text:
                    yield step.text
        finally:
            steps.close()

    def finish(self) -> Completion:
        """Run to the end; the result."""
        self.seq.unwatched()
        for _ in self:
            pass
        return self.completion()

    def completion(self) -> Completion:
        """The result (of what ran so far, if the run was abandoned)."""
        return self.seq.completion()

    def close(self) -> None:
        self._steps.close()


def encode_prompt(vocab: core.Vocab, prompt: Prompt, n_ctx: int) -> tuple[list[int], str]:
    """Token ids and text of ``prompt``, checked to leave room in a context of ``n_ctx``."""
    if isinstance(prompt, str):
        # Like llama.cpp's own tools, the prompt may spell special tokens (chat markup).
        ids: list[int] = vocab.tokenize(prompt, True, True).tolist()
        text = prompt
    else:
        ids = [_token_id(t) for t in prompt]
        text = vocab.detokenize(ids, False, True).decode("utf-8", errors="replace")
    if not ids:
        raise ValueError("the prompt is empty and the model adds no BOS token")
    if len(ids) >= n_ctx:
        raise ValueError(
            f"prompt is {len(ids)} tokens but the context holds {n_ctx}; use a larger n_ctx or a shorter prompt"
        )
    return ids, text


def _token_id(token: object) -> int:
    if isinstance(token, bool) or not isinstance(token, SupportsIndex):
        raise TypeError(f"a token prompt must hold integer token ids, got {token!r}")
    return operator.index(token)


def run(
    cache: SequenceCache, vocab: core.Vocab, prompt: Prompt | MediaPrompt, sampling: SamplingParams, seq: SequenceText
) -> Generator[Step, None, None]:
    """Generate ``seq`` from ``prompt`` in sequence 0 of ``cache``'s context, reusing
    the cached prefix. Yields one :class:`Step` per sampled token. A prompt with
    media (a chat's image or audio) counts its media tokens as prompt tokens."""
    ctx = cache.context
    n_ctx = ctx.n_ctx  # read once: the loop below runs per token
    if isinstance(prompt, (str, Sequence)):
        media = None
        ids, text = encode_prompt(vocab, prompt, n_ctx)
        seq.prompt_tokens = len(ids)
    else:
        media = prompt
        ids, text = prompt.text_tokens, prompt.text
        seq.prompt_tokens = prompt.chunks.n_tokens
        if prompt.n_pos >= n_ctx:
            raise ValueError(
                f"prompt is {prompt.n_pos} positions (text and media) but the context holds {n_ctx}; "
                "use a larger n_ctx or a shorter prompt"
            )
    yield from seq.echo_prompt(text)
    if seq.done:
        return
    sampler = sampling.build(vocab, ids)
    try:
        seq.cached_tokens = cache.prefill(ids) if media is None else cache.prefill_media(media)
        if seq.options.logprobs is None and cache.automatic_positions:
            yield from _run_in_chunks(cache, sampler, seq, n_ctx)
            return
        # Per token from Python: logprobs read each token's logits; M-RoPE media place
        # text at explicit positions.
        while True:
            yield from seq.advance(ctx, sampler, -1, room_left=len(cache.tokens) < n_ctx)
            if seq.done:
                return
            cache.extend(seq.to_decode)
    finally:
        sampler.close()


def _run_in_chunks(
    cache: SequenceCache, sampler: core.Sampler, seq: SequenceText, n_ctx: int
) -> Generator[Step, None, None]:
    """The loop of :func:`run` in C++ (sample, accept, decode; core.fast.sample_and_decode),
    a chunk of tokens per call, each then taken here in order: the same tokens, text
    and finish as one token at a time. Tokens decoded after a stop string stay in the
    cache (as generated text, they are simply not reused by a different next prompt)."""
    pending: list[int] = []
    while True:
        held = len(cache.tokens) + len(pending)  # held once pending is decoded
        # The j-th token sampled is decoded (unless last) at position held + j < n_ctx.
        limit = n_ctx - held + 1
        if seq.options.max_tokens is not None:
            limit = min(limit, seq.options.max_tokens - len(seq.tokens))
        tokens = cache.sample_and_extend(sampler, pending, limit, seq.chunk_ms)
        for j, token in enumerate(tokens):
            yield from seq.take(token, cache.context, -1, room_left=held + j < n_ctx)
            if seq.done:
                return
        pending = seq.to_decode
