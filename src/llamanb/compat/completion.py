"""Completions and chat completions of :class:`llamanb.compat.Llama` in llama-cpp-python's
shape: echo, logprobs counted as it counts them, fill-in-the-middle ``suffix``, and
the state cache (``Llama.set_cache``) around each call."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .. import core, openai_api
from ..chat import ChatOptions, Message
from ..generation import GenerateOptions
from ..logprobs import TokenLogprob
from ..openai_types import (
    CompletionLogprobs,
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
)
from ..sampling import SamplingParams
from ..sequence_cache import common_prefix
from .logprobs import completion_logprobs, prompt_logprobs

if TYPE_CHECKING:
    from .llama import Llama


@dataclass(frozen=True)
class Request:
    """A completion's own options (sampling aside)."""

    prompt: str | list[int]
    suffix: str | None
    max_tokens: int | None
    logprobs: int | None
    echo: bool
    stop: str | list[str] | None
    model: str
    spm_infill: bool


def max_tokens_of(max_tokens: int | None) -> int | None:
    # llama-cpp-python: None or <= 0 means "until the context is full".
    return None if max_tokens is None or max_tokens <= 0 else max_tokens


def prompt_tokens(llama: Llama, request: Request) -> tuple[list[int], str | None]:
    """The prompt's tokens, and the suffix text to append when the model has no
    fill-in-the-middle tokens (llama-cpp-python's fallback)."""
    vocab = llama._vocab
    prompt, suffix = request.prompt, request.suffix
    fim = (vocab.fim_pre, vocab.fim_suf, vocab.fim_mid)
    if suffix is None or not isinstance(prompt, str) or min(fim) < 0:
        if isinstance(prompt, str):
            return llama.tokenize(prompt.encode(), add_bos=True, special=True), suffix
        return list(prompt), suffix
    pre, suf, mid = fim
    head = [pre] + llama.tokenize(prompt.encode(), add_bos=False)
    tail = [suf] + llama.tokenize(suffix.encode(), add_bos=False)
    if request.spm_infill:  # suffix first, as SPM-style infill models were trained
        head, tail = tail, head
    bos = [vocab.bos] if vocab.add_bos and vocab.bos >= 0 else []
    return bos + head + tail + [mid], None


def _prompt_text(llama: Llama, request: Request, tokens: Sequence[int]) -> str:
    if isinstance(request.prompt, str):
        return request.prompt
    return llama.detokenize(tokens).decode("utf-8", errors="ignore")


def _use_cache(llama: Llama, tokens: list[int]) -> None:
    """Load the cached state sharing the longest prefix with ``tokens`` when it beats
    what the context holds (llama-cpp-python's rule)."""
    if llama.cache is None:
        return
    try:
        state = llama.cache[tokens]
    except KeyError:
        return
    held = common_prefix(llama.input_ids.tolist(), tokens)
    if common_prefix(state.input_ids[: state.n_tokens].tolist(), tokens) > held:
        llama.load_state(state)


def _score_prompt(llama: Llama, tokens: list[int], n_top: int) -> list[TokenLogprob]:
    """Logprobs of each prompt token after the first, from one pass over the prompt with
    every row's logits (the context then holds the prompt, for the generation to reuse)."""
    cache = llama._cache
    cache.clear()
    ctx, step = llama._context, llama._context.n_batch
    out: list[TokenLogprob] = []
    last: Any = None
    for start in range(0, len(tokens), step):
        chunk = tokens[start : start + step]
        batch = core.Batch(len(chunk))
        batch.add_sequence(chunk, start, 0, False)
        for i in range(len(chunk)):
            batch.set_logits(i, True)
        try:
            ctx.decode(batch)
        except BaseException:
            cache.clear()
            raise
        cache.tokens.extend(chunk)
        if last is not None:  # the first token of this chunk, predicted by the last row before it
            from ..logprobs import token_logprob

            out.append(token_logprob(llama._vocab, last, chunk[0], n_top))
        out += prompt_logprobs(ctx, llama._vocab, tokens[start : start + len(chunk)], n_top, 0)
        last = ctx.get_logits_ith(len(chunk) - 1).copy()
    return out


def _echo_logprobs(llama: Llama, tokens: list[int], scored: list[TokenLogprob]) -> tuple[str, list[TokenLogprob]]:
    """The echoed prompt's first listed token's text (its logprob is null, as OpenAI's)
    and the prompt entries after it: a leading BOS is left out, as llama-cpp-python."""
    skip = 1 if tokens and tokens[0] == llama.token_bos() and len(tokens) > 1 else 0
    first = llama.detokenize([tokens[skip]], special=True).decode("utf-8", errors="replace")
    return first, scored[skip:]


def run(
    llama: Llama, request: Request, params: SamplingParams, stream: bool
) -> CreateCompletionResponse | Iterator[CreateCompletionStreamResponse]:
    tokens, suffix_text = prompt_tokens(llama, request)
    if llama._llm is None:
        raise RuntimeError("this Llama was loaded with vocab_only=True: it cannot generate")
    prompt_text = _prompt_text(llama, request, tokens)
    _use_cache(llama, tokens)
    echoed: tuple[str, list[TokenLogprob]] | None = None
    if request.echo and request.logprobs is not None:
        echoed = _echo_logprobs(llama, tokens, _score_prompt(llama, tokens, request.logprobs))
    options = GenerateOptions.of(max_tokens_of(request.max_tokens), request.stop, request.logprobs, False)
    started = llama._llm.start(tokens, options=options, sampling=params)
    llama._requires_eval = True
    if stream:
        return _stream(llama, request, tokens, started, prompt_text, suffix_text, echoed)
    result = started.finish()
    _save(llama, tokens, result.tokens)
    text = (prompt_text if request.echo else "") + result.text + (suffix_text or "")
    logprobs: CompletionLogprobs | None = None
    if request.logprobs is not None:
        generated = result.logprobs or []
        if echoed is not None:
            logprobs = completion_logprobs([*echoed[1], *generated], 0, echoed[0])
        else:
            logprobs = completion_logprobs(generated, len(prompt_text), None)
    return {
        "id": f"cmpl-{uuid.uuid4()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": result.finish_reason}],
        "usage": openai_api.usage(started.seq),
    }


def _save(llama: Llama, tokens: list[int], completion_tokens: Sequence[int]) -> None:
    if llama.cache is not None:
        llama.cache[tokens + list(completion_tokens)] = llama.save_state()


def _stream(
    llama: Llama,
    request: Request,
    tokens: list[int],
    started: Any,
    prompt_text: str,
    suffix_text: str | None,
    echoed: tuple[str, list[TokenLogprob]] | None,
) -> Iterator[CreateCompletionStreamResponse]:
    chunks = openai_api.CompletionChunks(started.seq, request.model)
    if request.echo:
        logprobs = None if echoed is None else completion_logprobs(echoed[1], 0, echoed[0])
        yield chunks._chunk(prompt_text, logprobs, None)
    for step in started:
        for chunk in chunks.step(step):
            lp = chunk["choices"][0]["logprobs"]
            if lp is not None:  # llama-cpp-python counts from the start of the prompt
                lp["text_offset"] = [o + len(prompt_text) for o in lp["text_offset"]]
            yield chunk
    if suffix_text:
        yield chunks._chunk(suffix_text, None, None)
    yield from chunks.end()
    _save(llama, tokens, started.seq.tokens)


def chat(
    llama: Llama,
    messages: Sequence[Message],
    chat_options: ChatOptions,
    options: GenerateOptions,
    params: SamplingParams,
    model: str,
    stream: bool,
    legacy: bool,
) -> CreateChatCompletionResponse | Iterator[CreateChatCompletionStreamResponse]:
    if llama._llm is None:
        raise RuntimeError("this Llama was loaded with vocab_only=True: it cannot generate")
    started = llama._llm.start_chat(messages, chat=chat_options, options=options, sampling=params)
    llama._requires_eval = True
    if stream:
        return openai_api.chat_chunks(started.seq, started.reply, started.run, model)
    started.run.finish()
    response = openai_api.chat_completion(started.seq, started.reply, model)
    choice: dict[str, Any] = cast(dict[str, Any], response["choices"][0])
    calls = choice["message"].get("tool_calls")
    if legacy and calls:  # the older API's reply: the first call as function_call too
        choice["message"]["function_call"] = calls[0]["function"]
        choice["finish_reason"] = "function_call"
    return response
