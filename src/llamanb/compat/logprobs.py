"""Completion logprobs in llama-cpp-python's shape: ``text_offset`` counts from the start
of the prompt text (the returned text's start without ``echo``), and with ``echo`` the
prompt tokens come first, the first of them with no logprob (nothing predicts it)."""

from __future__ import annotations

from collections.abc import Sequence

from .. import core
from ..logprobs import TokenLogprob, token_logprob
from ..openai_types import CompletionLogprobs


def prompt_logprobs(
    ctx: core.Context, vocab: core.Vocab, tokens: Sequence[int], n_top: int, start: int
) -> list[TokenLogprob]:
    """Logprobs of ``tokens[1:]`` from one pass whose rows from ``start`` on have outputs
    (the caller decoded ``tokens[start:]`` with logits for every row)."""
    rows = ctx.get_logits(copy=True)
    return [token_logprob(vocab, rows[i - 1 - start], tokens[i], n_top) for i in range(max(start, 0) + 1, len(tokens))]


def completion_logprobs(tokens: Sequence[TokenLogprob], start: int, echo_first_text: str | None) -> CompletionLogprobs:
    """The ``logprobs`` object: ``echo_first_text`` is the text of the prompt's first
    token with ``echo`` (listed, with null logprobs), None without."""
    offsets: list[int] = []
    texts: list[str] = []
    values: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    offset = start
    if echo_first_text is not None:
        offsets.append(offset)
        texts.append(echo_first_text)
        values.append(None)
        tops.append(None)
        offset += len(echo_first_text)
    for lp in tokens:
        offsets.append(offset)
        texts.append(lp.text)
        values.append(lp.logprob)
        top = {t.text: t.logprob for t in lp.top}
        top[lp.text] = lp.logprob  # llama-cpp-python always lists the chosen token
        tops.append(top)
        offset += len(lp.text)
    return {"text_offset": offsets, "token_logprobs": values, "tokens": texts, "top_logprobs": tops}
