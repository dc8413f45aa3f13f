"""Typed programs against the generation, chat, embedding and OpenAI APIs; `mypy --strict`
must accept them as is (and reject misuse, see the comments)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

import llamanb
from llamanb.compat import Llama as CompatLlama
from llamanb.openai_types import CreateChatCompletionResponse, CreateChatCompletionStreamResponse


def sampled(llm: llamanb.Llama) -> list[llamanb.TokenLogprob] | None:
    params = llamanb.SamplingParams(temperature=0.7, top_k=20, repeat_penalty=1.1, seed=1)
    out = llm.generate("Hi", sampling=params, max_tokens=8, min_p=0.1, logit_bias={2: -5.0}, logprobs=2)
    return out.logprobs


def constrained(llm: llamanb.Llama) -> str:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    return llm.generate("JSON:", json_schema=schema, temperature=0).text


def chatting(llm: llamanb.Llama) -> Iterator[str]:
    messages: list[llamanb.Message] = [{"role": "user", "content": "Hi"}]
    reply: llamanb.ChatCompletion = llm.chat(messages, max_tokens=16)
    yield reply.text
    for delta in llm.chat_stream(messages, temperature=0):
        yield delta.content


def calling_tools(llm: llamanb.Llama) -> list[llamanb.ToolCall]:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[llamanb.Message] = [{"role": "user", "content": "Weather in Paris?"}]
    reply = llm.chat(messages, tools=tools, tool_choice="required", reasoning="none")
    assert reply.finish_reason in ("tool_calls", "length")
    pieces = [d.tool_calls for d in llm.chat_stream(messages, tools=tools, tool_choice="required")]
    assert all(isinstance(c, llamanb.ToolCallDelta) for p in pieces for c in p)
    return list(reply.message.tool_calls)


def batched(llm: llamanb.Llama) -> list[str]:
    prompts: list[llamanb.Prompt] = ["a", llm.tokenize("b")]
    return [c.text for c in llm.generate_batch(prompts, max_tokens=4, max_parallel=2)]


async def streamed(llm: llamanb.Llama) -> str:
    pieces = [p async for p in llm.astream("Hi", max_tokens=4)]
    done: llamanb.Completion = await llm.agenerate("Hi", max_tokens=4)
    return "".join(pieces) + done.text


def vectors(llm: llamanb.Llama) -> npt.NDArray[np.float32]:
    return llm.embed(["a", "b"], pooling="mean", batch_size=8) + llamanb.embed(llm, "c")


def openai_shapes(llm: llamanb.Llama) -> str | None:
    response: CreateChatCompletionResponse = llm.create_chat_completion([{"role": "user", "content": "Hi"}])
    chunks: Iterator[CreateChatCompletionStreamResponse] = llm.create_chat_completion(
        [{"role": "user", "content": "Hi"}], stream=True
    )
    first = next(chunks)["choices"][0]["delta"].get("content")
    text: str = llm.create_completion("Hi", max_tokens=2)["choices"][0]["text"]
    return response["choices"][0]["message"]["content"] or first or text


def compat(path: str) -> list[int]:
    llm = CompatLlama(model_path=path, n_ctx=256, verbose=False)
    return llm.tokenize(b"hello")


def main() -> None:
    with llamanb.Llama(llamanb.default_model(), n_ctx=512) as llm:
        print(sampled(llm), constrained(llm), list(chatting(llm)), batched(llm))
        print(asyncio.run(streamed(llm)), vectors(llm).shape, openai_shapes(llm))


def processed(llm: llamanb.Llama) -> str:
    def no_eos(input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        scores[2] = -np.inf
        return scores

    params = llamanb.SamplingParams(temperature=0, logits_processors=(no_eos,))
    return llm.generate("Hi", sampling=params, max_tokens=4).text + llm.generate("Hi", logits_processors=(no_eos,)).text


def adapted(path: str) -> str:
    with llamanb.Llama(path, lora=[("adapter.gguf", 0.5)]) as llm:
        assert all(scale == 0.5 for _, scale in llm.adapters)
        return llm.generate("Hi", max_tokens=4).text
