"""Detokenizing as llama-cpp-python does, and its ``LlamaTokenizer``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import core

if TYPE_CHECKING:
    from .llama import Llama


def detokenize(
    vocab: core.Vocab, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None, special: bool = False
) -> bytes:
    """The pieces of ``tokens`` joined. SentencePiece vocabularies (Llama 1/2, Mistral)
    put a space in front of each word; after a BOS the first one is dropped (the text
    as it was tokenized), without BOS it stays (a continuation). With ``prev_tokens``
    the bytes are those ``tokens`` add after them."""
    tokens = list(tokens)
    if prev_tokens is not None:
        before = detokenize(vocab, prev_tokens, None, special)
        whole = detokenize(vocab, [*prev_tokens, *tokens], None, special)
        return (
            whole[len(before) :]
            if whole.startswith(before)
            else b"".join(vocab.token_to_piece(t, 0, special) for t in tokens)
        )
    out = b"".join(vocab.token_to_piece(t, 0, special) for t in tokens)
    if tokens and tokens[0] == vocab.bos and out.startswith(b" "):
        return out[1:]
    return out


class LlamaTokenizer:
    """``llama_cpp.LlamaTokenizer``: the model's own tokenizer."""

    def __init__(self, llama: Llama) -> None:
        self._llama = llama

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> list[int]:
        return self._llama.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(
        self, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None, special: bool = False
    ) -> bytes:
        return self._llama.detokenize(tokens, prev_tokens=prev_tokens, special=special)

    def encode(self, text: str, add_bos: bool = True, special: bool = True) -> list[int]:
        return self.tokenize(text.encode("utf-8", errors="ignore"), add_bos=add_bos, special=special)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.detokenize(tokens).decode("utf-8", errors="ignore")

    @classmethod
    def from_ggml_file(cls, path: str) -> LlamaTokenizer:
        from .llama import Llama

        return cls(Llama(model_path=path, vocab_only=True, verbose=False))
