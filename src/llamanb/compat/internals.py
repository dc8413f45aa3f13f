"""``llama_cpp._internals``: the handles behind ``Llama._model`` and ``Llama._ctx``, over
llamanb's core objects (``.model`` / ``.ctx`` are those objects)."""

from __future__ import annotations

from collections.abc import Sequence

from .. import core
from .tokenizer import detokenize


class LlamaModel:
    """A loaded model (``.model``: the :class:`llamanb.core.Model`, None once closed)."""

    def __init__(self, *, path_model: str, params: core.ModelParams | None = None, verbose: bool = True) -> None:
        self.model: core.Model | None = core.Model(path_model, params or core.ModelParams())

    @classmethod
    def of(cls, model: core.Model) -> LlamaModel:
        self = cls.__new__(cls)
        self.model = model
        return self

    def _open(self) -> core.Model:
        if self.model is None:
            raise RuntimeError("the model is closed")
        return self.model

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None

    def n_ctx_train(self) -> int:
        return self._open().n_ctx_train

    def n_embd(self) -> int:
        return self._open().n_embd

    def n_vocab(self) -> int:
        return self._open().vocab.n_tokens

    def token_bos(self) -> int:
        return self._open().vocab.bos

    def token_eos(self) -> int:
        return self._open().vocab.eos

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]:
        ids: list[int] = self._open().vocab.tokenize(text.decode("utf-8", errors="ignore"), add_bos, special).tolist()
        return ids

    def detokenize(self, tokens: Sequence[int], special: bool = False) -> bytes:
        return detokenize(self._open().vocab, tokens, None, special)

    def metadata(self) -> dict[str, str]:
        return self._open().meta


class LlamaContext:
    """A context (``.ctx``: the :class:`llamanb.core.Context`; None for a vocab-only
    model, which llama.cpp gives no context)."""

    def __init__(self, *, model: LlamaModel, params: core.ContextParams | None = None, verbose: bool = True) -> None:
        self.model = model
        self.ctx: core.Context | None = core.Context(model._open(), params or core.ContextParams())

    @classmethod
    def of(cls, ctx: core.Context | None, model: core.Model) -> LlamaContext:
        self = cls.__new__(cls)
        self.model = LlamaModel.of(model)
        self.ctx = ctx
        return self

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None

    def n_ctx(self) -> int:
        return 0 if self.ctx is None else self.ctx.n_ctx

    def kv_cache_seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        return self.ctx is not None and self.ctx.memory_seq_rm(seq_id, p0, p1)
