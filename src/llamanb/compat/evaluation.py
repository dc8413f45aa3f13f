"""The low-level half of ``llama_cpp.Llama``: the tokens evaluated into the context,
their logits (``scores``), sampling and generating from them, the saved state and the
seed. :class:`llamanb.compat.Llama` is built on it; the constructor sets what it reads."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import core
from ..llama import Llama as _Llama
from ..logits_processor import LogitsProcessor
from ..sampling import SamplingParams
from ..sequence_cache import SavedState, SequenceCache, common_prefix
from .grammar import LlamaGrammar
from .processors import StoppingCriteria, as_processors, stopping_processor
from .state import LlamaState

Grammar = LlamaGrammar | str | None


class Evaluation:
    """Evaluating, sampling and state, as ``llama_cpp.Llama``'s methods of those names."""

    _llm: _Llama | None  # None for a vocab_only load
    _model: core.Model
    _vocab: core.Vocab
    _logits_all: bool
    _requires_eval: bool  # the context's last logits are not from a live decode
    _rows: dict[int, npt.NDArray[np.single]]  # logits rows kept for ``scores``
    _seed: int
    n_batch: int
    last_n_tokens_size: int

    # -- the context ------------------------------------------------------------

    @property
    def _context(self) -> core.Context:
        if self._llm is None:
            raise RuntimeError("this Llama was loaded with vocab_only=True: it has no context to evaluate with")
        return self._llm.context

    @property
    def _cache(self) -> SequenceCache:
        if self._llm is None:
            raise RuntimeError("this Llama was loaded with vocab_only=True: it has no context to evaluate with")
        return self._llm._cache

    @property
    def _ctx(self) -> Any:
        from .internals import LlamaContext

        return LlamaContext.of(self._llm.context if self._llm is not None else None, self._model)

    @property
    def ctx(self) -> core.Context:
        return self._context

    # -- the evaluated tokens and their logits ----------------------------------

    @property
    def n_tokens(self) -> int:
        """Tokens evaluated into the context (kept for reuse by the next call)."""
        return 0 if self._llm is None else len(self._cache.tokens)

    @n_tokens.setter
    def n_tokens(self, value: int) -> None:
        if not self._cache.truncate(value):
            self._rows.clear()
        self._requires_eval = True

    @property
    def input_ids(self) -> npt.NDArray[np.intc]:
        return np.array(self._cache.tokens if self._llm is not None else [], dtype=np.intc)

    @property
    def _input_ids(self) -> npt.NDArray[np.intc]:
        return self.input_ids

    @property
    def scores(self) -> npt.NDArray[np.single]:
        """Logits rows of the evaluated tokens, shape (n_tokens, n_vocab): every row with
        ``logits_all=True``, else the last one only (the others are zero)."""
        out = np.zeros((self.n_tokens, self._vocab.n_tokens), dtype=np.single)
        for i, row in self._rows.items():
            if i < len(out):
                out[i] = row
        if len(out) and not self._requires_eval and not self._rows.get(len(out) - 1) is not None:
            out[-1] = self._context.get_logits_ith(-1)
        return out

    _scores = scores

    def eval(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` after the first :attr:`n_tokens` held tokens."""
        cache = self._cache
        cache.truncate(len(cache.tokens))
        tokens = list(tokens)
        if not self._logits_all:
            cache.extend(tokens)
        else:
            for start in range(0, len(tokens), self.n_batch):
                chunk = tokens[start : start + self.n_batch]
                n_past = len(cache.tokens)
                batch = core.Batch(len(chunk))
                batch.add_sequence(chunk, n_past, 0, False)
                for i in range(len(chunk)):
                    batch.set_logits(i, True)
                try:
                    self._context.decode(batch)
                except BaseException:
                    cache.clear()
                    raise
                cache.tokens.extend(chunk)
                rows = self._context.get_logits(copy=True)
                self._rows.update({n_past + i: rows[i] for i in range(len(chunk))})
        self._requires_eval = False

    def sample(
        self,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_eta: float = 0.1,
        mirostat_tau: float = 5.0,
        penalize_nl: bool = True,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
        grammar: Grammar = None,
        idx: int | None = None,
    ) -> int:
        """One token sampled from the logits of position ``idx`` (the last by default)."""
        if self.n_tokens == 0:
            raise RuntimeError("sample() needs evaluated tokens: call eval() first")
        params = self._sampling(
            temp,
            top_k,
            top_p,
            min_p,
            typical_p,
            frequency_penalty,
            presence_penalty,
            repeat_penalty,
            self._seed,
            mirostat_mode,
            mirostat_tau,
            mirostat_eta,
            grammar,
            None,
            logits_processor,
            None,
        )
        sampler = params.build(self._vocab, self._cache.tokens)
        try:
            return sampler.sample(self._context, -1 if idx is None else idx - self.n_tokens)
        finally:
            sampler.close()

    def generate(
        self,
        tokens: Sequence[int],
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        reset: bool = True,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        penalize_nl: bool = True,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None,
        stopping_criteria: StoppingCriteria | Sequence[StoppingCriteria] | None = None,
        grammar: Grammar = None,
    ) -> Iterator[int]:
        """Tokens sampled one by one after ``tokens`` (which reuse the held prefix). Send
        a list of tokens into the generator to evaluate them after the one yielded."""
        params = self._sampling(
            temp,
            top_k,
            top_p,
            min_p,
            typical_p,
            frequency_penalty,
            presence_penalty,
            repeat_penalty,
            self._seed,
            mirostat_mode,
            mirostat_tau,
            mirostat_eta,
            grammar,
            None,
            logits_processor,
            stopping_criteria,
        )
        return self._generate(list(tokens), params, reset, stopping_criteria is not None)

    def _generate(self, tokens: list[int], params: SamplingParams, reset: bool, criteria: bool) -> Iterator[int]:
        cache = self._cache
        history = list(tokens)
        if reset and cache.tokens:
            prefix = common_prefix(cache.tokens, tokens)
            if prefix == len(tokens) == len(cache.tokens) and not self._requires_eval:
                tokens, reset = [], False  # the prompt is held and its logits are live
            else:
                keep = prefix - 1 if prefix == len(tokens) else prefix  # re-evaluate one for fresh logits
                if keep > 0 and cache.truncate(keep):
                    tokens, reset = tokens[keep:], False
        if reset:
            self.reset()
        sampler = params.build(self._vocab, history)
        try:
            while True:
                if tokens:
                    self.eval(tokens)
                token = sampler.sample(self._context, -1)
                if criteria and self._vocab.is_eog(token):
                    return  # the stopping criteria said so (their processor leaves only EOS)
                more = yield token
                tokens = [token, *(more or ())]
        finally:
            sampler.close()

    def reset(self) -> None:
        """Forget the evaluated tokens."""
        if self._llm is not None:
            self._llm.reset()
        self._rows.clear()
        self._requires_eval = True

    # -- state ----------------------------------------------------------------

    def save_state(self) -> LlamaState:
        state = self._llm.save_state() if self._llm is not None else SavedState((), b"")
        return LlamaState(
            np.array(state.tokens, dtype=np.intc),
            self.scores,
            len(state.tokens),
            state.data,
            len(state.data),
            self._seed,
        )

    def load_state(self, state: LlamaState) -> None:
        tokens = tuple(int(t) for t in state.input_ids[: state.n_tokens])
        if self._llm is not None:
            self._llm.load_state(SavedState(tokens, state.llama_state))
        self._rows = {i: row for i, row in enumerate(state.scores[: state.n_tokens]) if row.any()}
        self._seed = state.seed
        self._requires_eval = True  # as llama-cpp-python: restored logits are not sampled from directly

    def set_seed(self, seed: int) -> None:
        self._seed = seed

    def _next_seed(self, seed: int | None) -> int:
        """llama-cpp-python's rule: a call's ``seed``, else one drawn from the last seed."""
        self.set_seed(seed if seed is not None else random.Random(self._seed).randint(0, 2**32))
        return self._seed

    # -- sampling options ---------------------------------------------------------

    def _sampling(
        self,
        temperature: float,
        top_k: int,
        top_p: float,
        min_p: float,
        typical_p: float,
        frequency_penalty: float,
        presence_penalty: float,
        repeat_penalty: float,
        seed: int,
        mirostat_mode: int,
        mirostat_tau: float,
        mirostat_eta: float,
        grammar: Grammar,
        logit_bias: Mapping[int | str, float] | None,
        logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None,
        stopping_criteria: StoppingCriteria | Sequence[StoppingCriteria] | None,
    ) -> SamplingParams:
        processors = as_processors(logits_processor)
        if stopping_criteria is not None:
            processors += (stopping_processor(stopping_criteria, self._vocab),)
        seed %= 2**32  # llama-cpp-python hands it to a uint32_t
        return SamplingParams(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            seed=None if seed == core.DEFAULT_SEED else seed,
            typical_p=typical_p,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            penalty_last_n=self.last_n_tokens_size,
            mirostat=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            grammar=grammar.grammar if isinstance(grammar, LlamaGrammar) else grammar,
            logit_bias={int(k): float(v) for k, v in logit_bias.items()} if logit_bias else None,
            logits_processors=processors,
        )
