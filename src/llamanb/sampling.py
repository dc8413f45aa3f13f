"""Sampling recipes: one typed description turned into a llama.cpp sampler chain.

Every generating call takes a :class:`SamplingParams` (``sampling=``) and/or its
fields as keyword arguments (:class:`SamplingKwargs`); keywords override the object.
The chain runs in C++ (``core.Sampler``); nothing here touches logits, but for the
Python ``logits_processors`` it may start with (logits_processor.py).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypedDict

from . import core
from .logits_processor import LogitsProcessor, LogitsProcessors

JsonSchema = Mapping[str, Any] | bool | str
"""A JSON Schema as a dict, a boolean schema, or JSON text."""


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. Defaults follow llama.cpp's own tools.

    ``temperature <= 0`` means greedy decoding (penalties, ``logit_bias`` and
    grammars still apply). ``seed=None`` draws a fresh random seed for every
    generation. Zero/neutral values turn a sampler off: ``top_k=0``, ``top_p=1``,
    ``min_p=0``, ``typical_p=1``, ``repeat_penalty=1``, ``dry_multiplier=0``,
    ``xtc_probability=0``, ``mirostat=0``; ``penalty_last_n``/``dry_penalty_last_n``
    count tokens back (DRY's -1: the whole context). ``grammar`` (GBNF) and ``json_schema``
    constrain the output; give at most one of them. With ``grammar_trigger_patterns``
    (regexes) or ``grammar_trigger_tokens`` the grammar is lazy, as llama.cpp's tool-call
    grammars are: it applies from the first trigger on. ``grammar_prefill`` tokens go
    through the grammar before the first sampled one (a chat's generation prompt).
    ``logits_processors`` are Python functions ``(input_ids, scores) -> scores`` over the
    whole vocabulary (llama-cpp-python's), run first on every token: Python per token.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    seed: int | None = None
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    penalty_last_n: int = 64
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    logit_bias: Mapping[int, float] | None = None
    grammar: str | None = None
    json_schema: JsonSchema | None = None
    grammar_trigger_patterns: tuple[str, ...] = ()
    grammar_trigger_tokens: tuple[int, ...] = ()
    grammar_prefill: tuple[int, ...] = ()
    logits_processors: tuple[LogitsProcessor, ...] = ()

    def __post_init__(self) -> None:
        _check(math.isfinite(self.temperature), "temperature must be finite", self.temperature)
        _check(0.0 <= self.top_p <= 1.0, "top_p must be in [0, 1]", self.top_p)
        _check(0.0 <= self.min_p <= 1.0, "min_p must be in [0, 1]", self.min_p)
        _check(0.0 < self.typical_p <= 1.0, "typical_p must be in (0, 1]", self.typical_p)
        _check(self.repeat_penalty > 0.0, "repeat_penalty must be > 0", self.repeat_penalty)
        _check(self.penalty_last_n >= 0, "penalty_last_n must be >= 0", self.penalty_last_n)
        _check(self.dry_multiplier >= 0.0, "dry_multiplier must be >= 0", self.dry_multiplier)
        _check(self.dry_base >= 1.0, "dry_base must be >= 1", self.dry_base)
        _check(self.dry_allowed_length >= 1, "dry_allowed_length must be >= 1", self.dry_allowed_length)
        _check(self.dry_penalty_last_n >= -1, "dry_penalty_last_n must be >= -1", self.dry_penalty_last_n)
        _check(0.0 <= self.xtc_probability <= 1.0, "xtc_probability must be in [0, 1]", self.xtc_probability)
        _check(0.0 <= self.xtc_threshold <= 1.0, "xtc_threshold must be in [0, 1]", self.xtc_threshold)
        _check(self.mirostat in (0, 1, 2), "mirostat must be 0 (off), 1 or 2", self.mirostat)
        _check(
            self.mirostat_tau > 0.0 and self.mirostat_eta > 0.0,
            "mirostat_tau and mirostat_eta must be > 0",
            (self.mirostat_tau, self.mirostat_eta),
        )
        if self.seed is not None:
            _check(0 <= self.seed < core.DEFAULT_SEED, f"seed must be in [0, {core.DEFAULT_SEED})", self.seed)
        if isinstance(self.dry_sequence_breakers, str):
            raise TypeError("dry_sequence_breakers must be a sequence of strings, not one string")
        if self.grammar is not None and self.json_schema is not None:
            raise ValueError("give either grammar or json_schema, not both")
        if (
            self.grammar_trigger_patterns or self.grammar_trigger_tokens or self.grammar_prefill
        ) and self.grammar_text() is None:
            raise ValueError("grammar triggers and prefill need a grammar or json_schema")
        if not isinstance(self.logits_processors, tuple):
            object.__setattr__(self, "logits_processors", tuple(self.logits_processors))
        if not all(callable(p) for p in self.logits_processors):
            raise TypeError("logits_processors must be callables (input_ids, scores) -> scores")
        if self.json_schema is not None:
            self.grammar_text()  # convert now (once): fail here, not at the first token, on a bad schema

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def replace(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed; unknown names raise TypeError."""
        unknown = set(changes) - _FIELDS
        if unknown:
            raise TypeError(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
        if "json_schema" in changes:
            return dataclasses.replace(self, **changes)
        # The same schema: a copy keeps its converted grammar (converting costs as much
        # again), with the fields set as the frozen dataclass's own __init__ sets them.
        params = copy.copy(self)
        for name, value in changes.items():
            object.__setattr__(params, name, value)
        params.__post_init__()
        return params

    def grammar_text(self) -> str | None:
        """The GBNF grammar constraining the output (``json_schema`` converted), or None."""
        return self.grammar if self.json_schema is None else self._schema_grammar

    @cached_property
    def _schema_grammar(self) -> str:
        """``json_schema`` as GBNF, converted once (not a field: copies carry it over)."""
        from .json_schema import json_schema_to_grammar  # on first use: keeps imports light

        assert self.json_schema is not None
        schema = json.loads(self.json_schema) if isinstance(self.json_schema, str) else self.json_schema
        return json_schema_to_grammar(schema)

    def build(self, vocab: core.Vocab, history: Sequence[int] = ()) -> core.Sampler:
        """A fresh sampler chain for one generation.

        ``history`` (the prompt) primes the repetition and DRY penalties, as llama.cpp's
        server does. Order follows llama.cpp's defaults: bias, grammar, penalties, DRY,
        top-k, typical, top-p, min-p, XTC, temperature, then the draw.
        """
        chain = core.Sampler.chain()
        try:
            self._fill(chain, vocab, history)
        except BaseException:
            chain.close()
            raise
        return chain

    def _fill(self, chain: core.Sampler, vocab: core.Vocab, history: Sequence[int]) -> None:
        if self.logits_processors:
            processors = LogitsProcessors(self.logits_processors, history, vocab.n_tokens)
            chain.add(core.Sampler.from_python(processors, "logits_processors"))
        if self.logit_bias:
            n_vocab = vocab.n_tokens
            for token in self.logit_bias:
                if not 0 <= token < n_vocab:
                    raise ValueError(f"logit_bias token {token} is out of range [0, {n_vocab})")
            chain.add(core.Sampler.logit_bias(vocab, [(t, float(b)) for t, b in self.logit_bias.items()]))
        grammar = self.grammar_text()
        if grammar is not None:
            # First, so that later truncation never leaves only tokens the grammar forbids.
            chain.add(self._grammar_sampler(vocab, grammar))
        if self.repeat_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0:
            if self.penalty_last_n > 0:
                penalties = core.Sampler.penalties(
                    self.penalty_last_n, self.repeat_penalty, self.frequency_penalty, self.presence_penalty
                )
                _prime(penalties, history[-self.penalty_last_n :])
                chain.add(penalties)
        if self.dry_multiplier > 0.0 and self.dry_penalty_last_n != 0:
            # llama.cpp's sampler reads -1 as 0 (off); its tools mean "the context": the model's.
            last_n = self.dry_penalty_last_n if self.dry_penalty_last_n > 0 else vocab.model.n_ctx_train
            dry = core.Sampler.dry(
                vocab,
                self.dry_multiplier,
                self.dry_base,
                self.dry_allowed_length,
                last_n,
                list(self.dry_sequence_breakers),
            )
            _prime(dry, history)
            chain.add(dry)
        seed = core.DEFAULT_SEED if self.seed is None else self.seed
        if self.greedy:
            chain.add(core.Sampler.greedy())
        elif self.mirostat == 1:
            chain.add(core.Sampler.temp(self.temperature))
            chain.add(core.Sampler.mirostat(vocab, seed, self.mirostat_tau, self.mirostat_eta, 100))
        elif self.mirostat == 2:
            chain.add(core.Sampler.temp(self.temperature))
            chain.add(core.Sampler.mirostat_v2(seed, self.mirostat_tau, self.mirostat_eta))
        else:
            if self.top_k > 0:
                chain.add(core.Sampler.top_k(self.top_k))
            if self.typical_p < 1.0:
                chain.add(core.Sampler.typical(self.typical_p))
            if self.top_p < 1.0:
                chain.add(core.Sampler.top_p(self.top_p))
            if self.min_p > 0.0:
                chain.add(core.Sampler.min_p(self.min_p))
            if self.xtc_probability > 0.0:
                chain.add(core.Sampler.xtc(self.xtc_probability, self.xtc_threshold, 1, seed))
            chain.add(core.Sampler.temp(self.temperature))
            chain.add(core.Sampler.dist(seed))

    def _grammar_sampler(self, vocab: core.Vocab, grammar: str) -> core.Sampler:
        patterns, tokens = list(self.grammar_trigger_patterns), list(self.grammar_trigger_tokens)
        if patterns or tokens:
            return core.Sampler.grammar_lazy_patterns(vocab, grammar, "root", patterns, tokens)
        sampler = core.Sampler.grammar(vocab, grammar)
        try:
            _prime(sampler, self.grammar_prefill)
        except BaseException:
            sampler.close()
            raise
        return sampler


class SamplingKwargs(TypedDict, total=False):
    """The fields of :class:`SamplingParams` as keyword arguments (``**kwargs``)."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float
    seed: int | None
    typical_p: float
    repeat_penalty: float
    frequency_penalty: float
    presence_penalty: float
    penalty_last_n: int
    dry_multiplier: float
    dry_base: float
    dry_allowed_length: int
    dry_penalty_last_n: int
    dry_sequence_breakers: tuple[str, ...]
    xtc_probability: float
    xtc_threshold: float
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    logit_bias: Mapping[int, float] | None
    grammar: str | None
    json_schema: JsonSchema | None
    grammar_trigger_patterns: tuple[str, ...]
    grammar_trigger_tokens: tuple[int, ...]
    grammar_prefill: tuple[int, ...]
    logits_processors: tuple[LogitsProcessor, ...]


_FIELDS = frozenset(f.name for f in dataclasses.fields(SamplingParams))


def resolve_sampling(
    sampling: SamplingParams | None, overrides: Mapping[str, Any], default_seed: int | None = None
) -> SamplingParams:
    """``sampling`` (or the defaults) with keyword ``overrides`` applied; a missing seed
    falls back to ``default_seed`` (the ``Llama``'s)."""
    params = (sampling or SamplingParams()).replace(**overrides)
    if params.seed is None and default_seed is not None:
        params = params.replace(seed=default_seed)
    return params


def _prime(sampler: core.Sampler, history: Sequence[int]) -> None:
    for token in history:
        sampler.accept(token)


def _check(ok: bool, message: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")
