"""A small typed program against llamanb; `mypy --strict` must accept it as is."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

import llamanb
from llamanb import core
from llamanb.core.mtmd import default_marker


def complete(llm: llamanb.Llama, prompt: str) -> tuple[str, llamanb.FinishReason]:
    result: llamanb.Completion = llm.generate(prompt, max_tokens=16, temperature=0.0, stop=["\n"])
    return result.text, result.finish_reason


def pieces(llm: llamanb.Llama, prompt: str) -> Iterator[str]:
    yield from llm.stream(prompt, max_tokens=8, seed=7)


def first_logits(model: core.Model, tokens: list[int]) -> npt.NDArray[np.float32]:
    params = core.ContextParams()
    params.n_ctx = 256
    with core.Context(model, params) as ctx:
        ctx.decode_tokens(tokens)
        return ctx.get_logits_ith(-1, copy=True)


def vocab_facts(model: core.Model) -> dict[str, int]:
    vocab: core.Vocab = model.vocab
    ids: npt.NDArray[np.int32] = vocab.tokenize("hello", add_special=False)
    return {"n_tokens": vocab.n_tokens, "eos": vocab.eos, "first": int(ids[0])}


def sampler_chain(vocab: core.Vocab) -> core.Sampler:
    chain = core.Sampler.chain()
    chain.add(core.Sampler.top_k(40))
    chain.add(core.Sampler.grammar(vocab, 'root ::= "a"'))
    chain.add(core.Sampler.dist(core.DEFAULT_SEED))
    return chain


def main() -> None:
    with llamanb.Llama(llamanb.default_model(), n_ctx=512) as llm:
        text, reason = complete(llm, "Hello")
        print(text, reason, "".join(pieces(llm, "Hi")))
        print(vocab_facts(llm.model), first_logits(llm.model, llm.tokenize("Hi")).shape)
        sampler_chain(llm.vocab).close()
    try:
        llamanb.Llama("missing.gguf")
    except (FileNotFoundError, llamanb.ModelLoadError) as err:
        print(err)


def template_source(model: core.Model) -> str:
    # What is not llama.h is typed in core's submodules too.
    templates: core.common.ChatTemplates = core.common.ChatTemplates.from_model(model)
    return templates.source() + default_marker()


if __name__ == "__main__":
    main()
