"""issue 31's items, each on the real model: llama-cpp-python's semantics in llamanb.compat."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import llamanb.compat as compat
from llamanb.compat import Llama, LlamaDiskCache, LlamaGrammar, LlamaRAMCache, LlamaState, StoppingCriteriaList

from .conftest import VOCAB_DIR


@pytest.fixture(scope="module")
def llm(model_path: Path) -> Iterator[Llama]:
    with Llama(model_path=str(model_path), n_ctx=512, n_threads=2, verbose=False, seed=1337) as llama:
        yield llama


def _text(out: object) -> str:
    assert isinstance(out, dict)
    text: str = out["choices"][0]["text"]
    return text


def test_seed_advances_and_state_restores_it(llm: Llama) -> None:
    grammar = LlamaGrammar.from_string("root ::= [0-9] [0-9] [0-9] [0-9]")
    llm.set_seed(1337)
    state = llm.save_state()
    draws = [
        _text(llm("Pick a number:", max_tokens=6, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, grammar=grammar))
        for _ in range(3)
    ]
    assert len(set(draws)) > 1  # each call draws its seed from the last one
    llm.load_state(state)  # the state carries the seed: the same sequence again
    again = _text(llm("Pick a number:", max_tokens=6, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, grammar=grammar))
    assert again == draws[0]


def test_vocab_only_and_detokenize_bos_rule() -> None:
    spm = Llama(model_path=str(VOCAB_DIR / "ggml-vocab-llama-spm.gguf"), vocab_only=True, verbose=False)
    ids = spm.tokenize(b"Hello World")
    assert ids == [1, 15043, 2787]
    assert spm.detokenize(ids) == b"Hello World"  # after BOS: as tokenized
    assert spm.detokenize(ids[1:]) == b" Hello World"  # a continuation keeps its space
    assert spm.detokenize([2787], prev_tokens=[1, 15043]) == b" World"
    with pytest.raises(RuntimeError, match="vocab_only"):
        spm("Hello", max_tokens=1)
    spm.close()


def test_unsupported_options_raise_naming_the_alternative(model_path: Path) -> None:
    with pytest.raises(NotImplementedError, match="gguf"):
        Llama(model_path=str(model_path), verbose=False, kv_overrides={"x": 1})
    with pytest.raises(NotImplementedError, match="split_mode"):
        Llama(model_path=str(model_path), verbose=False, tensor_split=[0.5, 0.5])
    with pytest.raises(NotImplementedError, match="tokenizer"):
        Llama(model_path=str(model_path), verbose=False, tokenizer=object())


def test_tuning_options_reach_the_context(model_path: Path) -> None:
    with Llama(
        model_path=str(model_path),
        n_ctx=256,
        n_batch=128,
        n_ubatch=64,
        n_threads=2,
        verbose=False,
        flash_attn=False,
        type_k=1,
        type_v=1,
        rope_freq_base=20000.0,
    ) as llama:
        ctx = llama.ctx
        assert ctx.n_ubatch == 64 and ctx.n_batch == 128


def test_chatml_function_calling_and_functions(model_path: Path) -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    with Llama(
        model_path=str(model_path), n_ctx=1024, n_threads=2, verbose=False, chat_format="chatml-function-calling"
    ) as llama:
        out = llama.create_chat_completion(
            [{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[{"type": "function", "function": tool}],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=64,
            temperature=0,
        )
        assert isinstance(out, dict)
        calls = out["choices"][0]["message"].get("tool_calls")
        assert calls and calls[0]["function"]["name"] == "get_weather"
        legacy = llama.create_chat_completion(
            [{"role": "user", "content": "Weather in Rome?"}],
            functions=[tool],
            function_call={"name": "get_weather"},
            max_tokens=64,
            temperature=0,
        )
        assert isinstance(legacy, dict)
        message = legacy["choices"][0]["message"]
        assert message.get("function_call", {}).get("name") == "get_weather"


def test_unpooled_embeddings_one_vector_per_token(model_path: Path) -> None:
    with Llama(model_path=str(model_path), n_threads=2, verbose=False, embedding=True) as llama:
        rows = llama.embed("Hello world again")
        assert len(rows) == len(llama.tokenize(b"Hello world again")) and len(rows[0]) == llama.n_embd()
    with Llama(model_path=str(model_path), n_threads=2, verbose=False, embedding=True, pooling_type=1) as mean:
        vector = mean.embed("Hello world again")
        assert len(vector) == mean.n_embd() and isinstance(vector[0], float)


def test_logprobs_offsets_and_echo(llm: Llama) -> None:
    prompt = "The capital of France is"
    out = llm(prompt, max_tokens=4, temperature=0, logprobs=2)
    assert isinstance(out, dict)
    lp = out["choices"][0]["logprobs"]
    assert lp is not None and lp["text_offset"][0] == len(prompt)
    echo = llm(prompt, max_tokens=4, temperature=0, logprobs=2, echo=True)
    assert isinstance(echo, dict)
    elp = echo["choices"][0]["logprobs"]
    n_prompt = len(llm.tokenize(prompt.encode())) - (1 if llm.tokenize(b"x")[0] == llm.token_bos() else 0)
    assert elp is not None and elp["text_offset"][0] == 0 and elp["token_logprobs"][0] is None
    assert len(elp["tokens"]) == n_prompt + len(lp["tokens"])
    assert "".join(elp["tokens"]) == echo["choices"][0]["text"]
    assert all(v is not None and v <= 0 for v in elp["token_logprobs"][1:])


def test_low_level_eval_sample_generate(llm: Llama) -> None:
    tokens = llm.tokenize(b"The quick brown fox")
    llm.reset()
    llm.eval(tokens)
    assert llm.n_tokens == len(tokens) and llm.input_ids.tolist() == tokens
    first = llm.sample(temp=0.0)
    gen = llm.generate(tokens, temp=0.0)
    got = [next(gen) for _ in range(3)]
    gen.close()
    assert got[0] == first
    assert llm.scores.shape == (llm.n_tokens, llm.n_vocab())


def test_stopping_criteria_suffix_and_cache(llm: Llama) -> None:
    seen: list[int] = []

    def after_two(input_ids: npt.NDArray[np.intc], logits: npt.NDArray[np.single]) -> bool:
        seen.append(len(input_ids))
        return len(seen) > 2

    out = llm("Once upon a time", max_tokens=16, temperature=0, stopping_criteria=StoppingCriteriaList([after_two]))
    assert isinstance(out, dict) and out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["completion_tokens"] <= 3
    cache = LlamaRAMCache()
    llm.set_cache(cache)
    try:
        llm("Once upon a time", max_tokens=2, temperature=0)
        assert cache.cache_size > 0 and llm.tokenize(b"Once upon a time") in cache
    finally:
        llm.set_cache(None)
    filled = llm("def add(a, b):", suffix="\n    return c", max_tokens=4, temperature=0)
    assert isinstance(filled, dict)


def test_pickle_tokenizer_version_and_alias(model_path: Path, llm: Llama) -> None:
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.n_ctx() == llm.n_ctx() and copy.tokenize(b"hi") == llm.tokenize(b"hi")
    copy.close()
    assert llm.tokenizer().decode(llm.tokenizer().encode("Hello")) == "Hello"
    assert compat.__version__ == "0.3.36"
    saved = {k: v for k, v in sys.modules.items() if k == "llama_cpp" or k.startswith("llama_cpp.")}
    try:
        compat.install_as_llama_cpp()
        import llama_cpp
        import llama_cpp.llama_types

        assert llama_cpp.Llama is Llama and llama_cpp.__version__ == "0.3.36"
        assert llama_cpp.llama_types.ChatCompletionRequestUserMessage(role="user", content="x")["role"] == "user"
    finally:
        for k in [k for k in sys.modules if k == "llama_cpp" or k.startswith("llama_cpp.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_disk_cache_serves_another_instance(model_path: Path, llm: Llama, tmp_path: Path) -> None:
    """LlamaDiskCache: a completion's state lands in a file; a new cache over the same
    folder, set on another Llama, loads it (once) and completes as a fresh context does."""
    prompt = "The quick brown fox"
    tokens = llm.tokenize(prompt.encode())
    llm.reset()
    fresh = llm(prompt, max_tokens=4, temperature=0)
    assert isinstance(fresh, dict)
    llm.set_cache(LlamaDiskCache(tmp_path / "states"))
    try:
        llm(prompt, max_tokens=4, temperature=0)
    finally:
        llm.set_cache(None)
    files = list((tmp_path / "states").glob("*.state"))
    assert len(files) == 1
    reopened = LlamaDiskCache(tmp_path / "states")
    assert tokens in reopened and reopened.cache_size == files[0].stat().st_size
    assert llm.tokenize(b"A different prompt") not in reopened
    state = reopened[tokens]
    assert isinstance(state, LlamaState) and state.input_ids[: len(tokens)].tolist() == tokens
    assert state.n_tokens == len(tokens) + fresh["usage"]["completion_tokens"] - 1
    with Llama(model_path=str(model_path), n_ctx=512, n_threads=2, verbose=False) as other:
        loads: list[int] = []
        load_state = other.load_state

        def counting(s: LlamaState) -> None:
            loads.append(s.n_tokens)
            load_state(s)

        other.load_state = counting  # type: ignore[method-assign]
        other.set_cache(reopened)
        again = other(prompt, max_tokens=4, temperature=0)
        assert loads == [state.n_tokens]
        assert isinstance(again, dict) and again["choices"][0]["text"] == fresh["choices"][0]["text"]
    small = LlamaDiskCache(tmp_path / "small", capacity_bytes=1)  # every state is over capacity: evicted
    small[tokens] = state
    assert list((tmp_path / "small").glob("*.state")) == [] and tokens not in small
    with pytest.raises(KeyError):
        small[tokens]


def test_create_chat_completion_openai_v1(llm: Llama) -> None:
    """The openai package's own types, whole and streamed, with create_chat_completion's content."""
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    messages = [{"role": "user", "content": "Name a color."}]
    plain = llm.create_chat_completion(messages, max_tokens=8, temperature=0)
    typed = llm.create_chat_completion_openai_v1(messages, max_tokens=8, temperature=0)
    assert isinstance(plain, dict) and isinstance(typed, ChatCompletion)
    assert typed.choices[0].message.role == "assistant"
    assert typed.choices[0].message.content == plain["choices"][0]["message"]["content"]
    assert typed.usage is not None and typed.usage.completion_tokens == plain["usage"]["completion_tokens"]
    chunks = list(llm.create_chat_completion_openai_v1(messages, max_tokens=8, temperature=0, stream=True))
    assert chunks and all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == typed.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_old_options_and_params_structs(model_path: Path) -> None:
    """n_parts/f16_kv (older llama-cpp-python options LangChain passes) are carried out or
    refused; context_params/model_params (LlamaIndex reads n_ctx there) say what was applied."""
    with pytest.raises(NotImplementedError, match="n_parts"):
        Llama(model_path=str(model_path), verbose=False, n_parts=2)
    with Llama(
        model_path=str(model_path), n_ctx=300, n_batch=64, n_threads=2, verbose=False, n_parts=-1, f16_kv=False, seed=-1
    ) as f32:
        params = f32.context_params
        assert params.type_k == params.type_v == 0  # GGML_TYPE_F32
        assert params.n_ctx == f32.n_ctx() == f32.ctx.n_ctx >= 300 and params.n_batch == 64 and params.n_threads == 2
        assert f32.model_params.n_gpu_layers == 0 and not f32.model_params.vocab_only
        assert f32("The capital of France is", max_tokens=3, temperature=0)["choices"][0]["text"]  # type: ignore[index]
    with Llama(model_path=str(model_path), n_ctx=256, n_threads=2, verbose=False, f16_kv=True) as f16:
        assert f16.context_params.type_k == f16.context_params.type_v == 1  # GGML_TYPE_F16, llama.cpp's default
