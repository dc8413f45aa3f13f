"""llamanb.compat.Llama runs llama-cpp-python programs: the README examples with only
the import changed, plus the rest of the common surface."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import numpy.typing as npt
import pytest

from llamanb.compat import Llama, LlamaGrammar, LlamaPromptLookupDecoding, LogitsProcessorList

from .test_speculative import PATTERN

README_PROGRAM = """
from llamanb.compat import Llama   # was: from llama_cpp import Llama
import json, sys

llm = Llama(
      model_path=sys.argv[1],
      # n_gpu_layers=-1, # Uncomment to use GPU acceleration
      seed=1337, # Uncomment to set a specific seed
      n_ctx=2048, # Uncomment to increase the context window
      n_threads=2,
      verbose=False,
)
output = llm(
      "Q: Name the planets in the solar system? A: ", # Prompt
      max_tokens=32, # Generate up to 32 tokens, set to None to generate up to the end of the context window
      stop=["Q:", "\\n"], # Stop generating just before the model would generate a new question
      echo=True # Echo the prompt back in the output
) # Generate a completion, can also call create_completion
print(json.dumps(output))

chat = llm.create_chat_completion(
      messages = [
          {"role": "system", "content": "You are an assistant who perfectly describes images."},
          {"role": "user", "content": "Describe this image in detail please."}
      ],
      max_tokens=24,
)
print(json.dumps(chat))
"""


def test_readme_program(model_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", README_PROGRAM, str(model_path)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # verbose=False: llama.cpp's log stays out of the way
    completion, chat = (json.loads(line) for line in proc.stdout.splitlines())
    assert completion["object"] == "text_completion"
    text = completion["choices"][0]["text"]
    assert text.startswith("Q: Name the planets in the solar system? A: ")
    assert "\n" not in text and "Q:" not in text[3:]
    assert completion["choices"][0]["finish_reason"] in ("stop", "length")
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant" and chat["choices"][0]["message"]["content"]


@pytest.fixture(scope="module")
def compat(model_path: Path) -> Iterator[Llama]:
    # pooling_type=1 (mean): pooled vectors; SmolLM2 itself declares no pooling (per-token vectors)
    with Llama(
        model_path=str(model_path), n_ctx=1024, n_threads=2, verbose=False, embedding=True, pooling_type=1
    ) as llm:
        yield llm


def test_streaming_completion(compat: Llama) -> None:
    pieces = []
    for chunk in compat("The capital of France is", max_tokens=12, temperature=0, stream=True):
        assert isinstance(chunk, dict)
        pieces.append(chunk["choices"][0]["text"])
    full = compat("The capital of France is", max_tokens=12, temperature=0)
    assert isinstance(full, dict)
    assert "".join(pieces) == full["choices"][0]["text"] and "Paris" in full["choices"][0]["text"]


def test_json_mode_with_schema(compat: Llama) -> None:
    schema = {"type": "object", "properties": {"team_name": {"type": "string"}}, "required": ["team_name"]}
    out = compat.create_chat_completion(
        messages=[
            {"role": "system", "content": "You are a helpful assistant that outputs in JSON."},
            {"role": "user", "content": "Who won the world series in 2020"},
        ],
        response_format={"type": "json_object", "schema": schema},
        temperature=0,
        max_tokens=64,
    )
    assert isinstance(out, dict)
    content = out["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content or ""), schema)


def test_grammar_object(compat: Llama) -> None:
    grammar = LlamaGrammar.from_string('root ::= "yes" | "no"')
    out = compat("Is water wet? Answer yes or no:", grammar=grammar, max_tokens=4, temperature=0)
    assert isinstance(out, dict) and out["choices"][0]["text"] in ("yes", "no")
    schema = LlamaGrammar.from_json_schema(json.dumps({"type": "integer", "minimum": 1, "maximum": 9}))
    num = compat("Pick a digit:", grammar=schema, max_tokens=4, temperature=0)
    assert isinstance(num, dict) and 1 <= int(num["choices"][0]["text"]) <= 9


def test_embeddings(compat: Llama) -> None:
    one = compat.create_embedding("Hello, world!")
    many = compat.create_embedding(["Hello, world!", "Goodbye, world!"])
    assert len(one["data"]) == 1 and len(many["data"]) == 2
    assert np.allclose(one["data"][0]["embedding"], many["data"][0]["embedding"], atol=1e-4)
    vector = compat.embed("Hello, world!")
    assert isinstance(vector, list) and len(vector) == compat.n_embd() and isinstance(vector[0], float)
    assert np.allclose(vector, one["data"][0]["embedding"], atol=1e-4)  # unnormalized, as llama-cpp-python
    rows, count = compat.embed(["a", "b c"], normalize=True, return_count=True)
    assert len(rows) == 2 and count == 3
    assert np.isclose(np.linalg.norm(rows[1]), 1.0, atol=1e-5)


def test_tokens_as_bytes(compat: Llama) -> None:
    ids = compat.tokenize(b"Hello, world!")
    assert all(isinstance(t, int) for t in ids)
    assert compat.detokenize(ids) == b"Hello, world!"
    assert compat.tokenize(b"<|im_start|>", special=True) == [compat.token_bos()]
    assert len(compat.tokenize(b"<|im_start|>", special=False)) > 1
    assert compat.n_ctx() == 1024 and compat.n_vocab() == 49152 and compat.token_eos() == 2


def test_state_reset_and_seed(compat: Llama) -> None:
    compat("Once upon a time", max_tokens=4, temperature=0)
    assert compat.n_tokens > 0
    state = compat.save_state()
    assert state.n_tokens == len(state.input_ids) and state.llama_state_size == len(state.llama_state)
    expected = compat("Once upon a time", max_tokens=8, temperature=0)
    compat.reset()
    assert compat.n_tokens == 0
    compat.load_state(state)
    assert compat.n_tokens == state.n_tokens
    again = compat("Once upon a time", max_tokens=8, temperature=0)
    assert isinstance(again, dict) and isinstance(expected, dict)
    assert again["choices"][0]["text"] == expected["choices"][0]["text"]
    a = compat("Once upon a time", max_tokens=8, temperature=1.0, seed=5)
    b = compat("Once upon a time", max_tokens=8, temperature=1.0, seed=5)
    assert isinstance(a, dict) and isinstance(b, dict)
    assert a["choices"][0]["text"] == b["choices"][0]["text"]


def test_defaults_and_max_tokens_none(model_path: Path) -> None:
    with Llama(model_path=str(model_path), n_threads=2, verbose=False) as llm:
        assert llm.n_ctx() == 512  # llama-cpp-python's default
        out = llm.create_chat_completion(messages=[{"role": "user", "content": "Say hi."}], temperature=0)
        assert isinstance(out, dict) and out["choices"][0]["finish_reason"] == "stop"  # max_tokens=None: to the end
        with pytest.raises(RuntimeError, match="embedding=True"):
            llm.create_embedding("x")


def test_constructor_options(model_path: Path) -> None:
    with Llama(
        model_path=str(model_path),
        n_ctx=256,
        n_threads=2,
        verbose=False,
        use_mmap=True,
        use_mlock=False,
        n_ubatch=128,
        flash_attn=False,
        chat_format="chatml",
    ) as llm:
        assert llm.n_ctx() == 256 and llm.chat_format == "chatml"
    with pytest.raises(TypeError, match="unexpected keyword"):
        Llama(model_path=str(model_path), n_threads=2, verbose=False, no_such_option=1)
    with pytest.raises(ValueError, match="chat_format"):
        Llama(model_path=str(model_path), verbose=False, chat_format="klingon")


def test_prompt_lookup_decoding(model_path: Path, compat: Llama) -> None:
    """llama-cpp-python's draft_model=LlamaPromptLookupDecoding(...): the same greedy
    completion, with llama.cpp's n-gram drafts verified along the way. The prompt stops
    inside the repeating pattern, so that the greedy reply continues it on every CPU (with
    AMX's kernels, a prompt ending on a full stop got a reply that held nothing to draft)."""
    prompt = PATTERN
    with Llama(
        model_path=str(model_path),
        n_ctx=512,
        n_threads=2,
        verbose=False,
        draft_model=LlamaPromptLookupDecoding(num_pred_tokens=8),
    ) as llm:
        assert llm._llm.speculative is not None and llm._llm.speculative.types == ("ngram-simple",)
        got = llm(prompt, max_tokens=32, temperature=0)
        run = llm._llm.generate(prompt, max_tokens=32, temperature=0)
    want = compat(prompt, max_tokens=32, temperature=0)
    assert isinstance(got, dict) and isinstance(want, dict)
    assert got["choices"][0]["text"] == want["choices"][0]["text"]
    assert run.drafted_tokens is not None and run.accepted_tokens is not None and run.accepted_tokens > 0
    with pytest.raises(NotImplementedError, match="LlamaPromptLookupDecoding"):
        Llama(model_path=str(model_path), verbose=False, draft_model=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 1"):
        LlamaPromptLookupDecoding(num_pred_tokens=0)


def test_logits_processor(compat: Llama) -> None:
    """llama-cpp-python's logits_processor: each function sees the tokens so far and the
    whole vocabulary's scores, and what it returns is what gets sampled."""
    prompt = "The weather today is"
    n_prompt = len(compat.tokenize(prompt.encode(), add_bos=True))
    yes = compat.tokenize(b" yes", add_bos=False)[0]
    seen: list[tuple[int, int]] = []

    def only_yes(input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        seen.append((len(input_ids), scores.shape[0]))
        out = np.full_like(scores, -np.inf)
        out[yes] = 0.0
        return out

    def untouched(input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        return scores

    out = compat(
        prompt, max_tokens=4, temperature=0.9, seed=3, logits_processor=LogitsProcessorList([untouched, only_yes])
    )
    assert isinstance(out, dict) and out["choices"][0]["text"] == " yes" * 4
    n_vocab = compat.n_vocab()
    assert seen == [(n_prompt + k, n_vocab) for k in range(4)]  # the prompt, then each accepted token
    # Streamed chat takes one function too; an identity processor changes nothing.
    ask = [{"role": "user", "content": "Name a color."}]
    plain = compat.create_chat_completion(ask, max_tokens=8, temperature=0)
    same = compat.create_chat_completion(ask, max_tokens=8, temperature=0, logits_processor=untouched)
    assert isinstance(plain, dict) and isinstance(same, dict)
    assert same["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    with pytest.raises(ValueError, match="must return"):
        compat(prompt, max_tokens=2, logits_processor=lambda ids, scores: scores[:10])
    with pytest.raises(TypeError, match="logits_processor"):
        compat(prompt, max_tokens=2, logits_processor=42)  # type: ignore[arg-type]


def test_unsupported_call_options(compat: Llama) -> None:
    with pytest.raises(ValueError, match="not both"):
        compat.create_chat_completion([{"role": "user", "content": "x"}], functions=[], tools=[])


def test_verbose_logs_to_stderr(model_path: Path) -> None:
    program = textwrap.dedent(f"""
        from llamanb.compat import Llama
        llm = Llama(model_path={str(model_path)!r}, n_ctx=128, n_threads=2)  # verbose=True by default
        llm("Hi", max_tokens=1)
        llm.close()
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "llama_model_loader" in proc.stderr and "llama_context" in proc.stderr


def test_training_context(model_path: Path) -> None:
    with Llama(model_path=str(model_path), n_ctx=0, n_threads=2, verbose=False) as llm:
        assert llm.n_ctx() == 8192
