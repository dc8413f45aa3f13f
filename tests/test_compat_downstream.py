"""Real downstream code on llamanb: LangChain's ``LlamaCpp`` and ``ChatLlamaCpp``
(``langchain-community``) and LlamaIndex's ``LlamaCPP`` (``llama-index-llms-llama-cpp``),
unchanged, after ``llamanb.compat.install_as_llama_cpp()``: completion, streaming and chat
on the real default model, each checked against llamanb.compat's own answer.

Install them with ``pip install 'llamanb[downstream]'`` and then
``pip install --no-deps llama-index-llms-llama-cpp`` (its metadata requires
llama-cpp-python, the package this replaces; ``make downstream`` does both). A test
whose package is not installed is skipped, saying which one.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llamanb.compat as compat

PROMPT = "The capital of France is"
QUESTION = "What is the capital of France? Answer in one word."
INSTALL = "pip install 'llamanb[downstream]' && pip install --no-deps llama-index-llms-llama-cpp"


def _require(module: str, package: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        pytest.skip(f"{package} is not installed ({INSTALL})")


@pytest.fixture(autouse=True, scope="module")
def llama_cpp_alias() -> Iterator[None]:
    """``import llama_cpp`` gives llamanb.compat for this module's tests, then the
    modules registered before (none, or another test's) come back."""
    saved = {k: v for k, v in sys.modules.items() if k == "llama_cpp" or k.startswith("llama_cpp.")}
    compat.install_as_llama_cpp()
    try:
        yield
    finally:
        for name in [k for k in sys.modules if k == "llama_cpp" or k.startswith("llama_cpp.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def _completion_text(client: compat.Llama, prompt: str, **params: Any) -> str:
    out = client.create_completion(prompt, **params)
    assert isinstance(out, dict)
    text: str = out["choices"][0]["text"]
    return text


def test_langchain_llamacpp_completion_and_streaming(model_path: Path) -> None:
    _require("langchain_community", "langchain-community")
    from langchain_community.llms import LlamaCpp

    llm = LlamaCpp(
        model_path=str(model_path), n_ctx=512, n_threads=2, max_tokens=12, temperature=0.0, seed=1337, verbose=False
    )
    client = llm.client
    assert isinstance(client, compat.Llama)  # LangChain's own `from llama_cpp import Llama` got llamanb's
    text = llm.invoke(PROMPT)
    assert isinstance(text, str) and text.strip()
    # the same greedy completion, asked of the client with LangChain's default parameters
    assert text == _completion_text(
        client, PROMPT, max_tokens=12, temperature=0.0, top_p=0.95, top_k=40, repeat_penalty=1.1, stop=[]
    )
    chunks = list(llm.stream(PROMPT))
    assert len(chunks) > 1 and "".join(chunks) == text  # token by token, the same text
    stopped = llm.invoke(PROMPT, stop=[text.strip().split()[0]])
    assert text.strip().split()[0] not in stopped and text.startswith(stopped)
    assert llm.get_num_tokens(PROMPT) == len(client.tokenize(PROMPT.encode()))
    client.close()


def test_langchain_chat_llamacpp(model_path: Path) -> None:
    _require("langchain_community", "langchain-community")
    from langchain_community.chat_models import ChatLlamaCpp
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

    chat = ChatLlamaCpp(
        model_path=str(model_path), n_ctx=1024, n_threads=2, max_tokens=16, temperature=0.0, seed=1337, verbose=False
    )
    assert isinstance(chat.client, compat.Llama)
    messages = [SystemMessage(content="You are a terse assistant."), HumanMessage(content=QUESTION)]
    reply = chat.invoke(messages)
    assert isinstance(reply, AIMessage) and isinstance(reply.content, str) and reply.content.strip()
    direct = chat.client.create_chat_completion(
        [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": QUESTION}],
        max_tokens=16,
        temperature=0.0,
        top_p=0.95,
        top_k=40,
        repeat_penalty=1.1,
        stop=[],
    )
    assert isinstance(direct, dict) and reply.content == direct["choices"][0]["message"]["content"]
    assert "paris" in reply.content.lower()  # SmolLM2-135M-Instruct knows this one
    chunks = list(chat.stream(messages))
    assert len(chunks) > 1 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == reply.content
    reasons = [c.response_metadata["finish_reason"] for c in chunks if "finish_reason" in c.response_metadata]
    assert reasons == [direct["choices"][0]["finish_reason"]]  # once, from the last chunk compat streamed
    chat.client.close()


def test_llamaindex_llamacpp_complete_stream_and_chat(model_path: Path) -> None:
    _require("llama_index.core", "llama-index-core")
    _require("llama_index.llms.llama_cpp", "llama-index-llms-llama-cpp")
    from llama_index.core.llms import ChatMessage, MessageRole
    from llama_index.llms.llama_cpp import LlamaCPP

    llm = LlamaCPP(
        model_path=str(model_path),
        temperature=0.0,
        max_new_tokens=12,
        context_window=1024,
        model_kwargs={"n_threads": 2, "seed": 1337},
        verbose=False,
    )
    client = llm._model
    assert isinstance(client, compat.Llama)
    assert llm.metadata.context_window == 1024 == client.context_params.n_ctx
    done = llm.complete(PROMPT)
    assert done.text.strip()
    # LlamaIndex's default completion_to_prompt wraps the prompt in a system prompt
    assert done.text == _completion_text(client, llm.completion_to_prompt(PROMPT), max_tokens=12, temperature=0.0)
    pieces = list(llm.stream_complete(PROMPT))
    assert len(pieces) > 1 and pieces[-1].text == done.text
    assert "".join(p.delta or "" for p in pieces) == done.text
    messages = [ChatMessage(role=MessageRole.USER, content=QUESTION)]
    reply = llm.chat(messages)
    assert reply.message.role == MessageRole.ASSISTANT and reply.message.content
    assert reply.message.content == _completion_text(
        client, llm.messages_to_prompt(messages), max_tokens=12, temperature=0.0
    )
    streamed = list(llm.stream_chat(messages))
    assert streamed and streamed[-1].message.content == reply.message.content
    client.close()
