"""The fuzz targets: each takes one input (bytes) and may raise any Python exception;
only a crash, a sanitizer report or a hang is a finding."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from llamanb import core

_SCRATCH = Path(os.environ.get("LLAMANB_FUZZ_TMP") or tempfile.gettempdir()) / f"llamanb-fuzz-{os.getpid()}.gguf"
EXPECTED = (Exception,)  # every Python exception is a clean refusal


def _as_file(data: bytes) -> Path:
    _SCRATCH.write_bytes(data)
    return _SCRATCH


def gguf_reader(data: bytes) -> None:
    """Our mmapped GGUF reader: metadata, tensor infos, every tensor's bytes."""
    with core.gguf.GGUFFile(_as_file(data)) as f:
        f.metadata
        for name, *_ in f.tensors:
            np.asarray(f.tensor_data(name)).sum()


def vocab(data: bytes) -> None:
    """llama.cpp's loader with vocab_only, then the tokenizer both ways."""
    params = core.ModelParams()
    params.vocab_only = True
    with core.Model(_as_file(data), params) as model:
        v = model.vocab
        ids = v.tokenize("Hello <|im_start|> wörld 123 \n\t", True, True)
        v.detokenize(ids, False, True)
        for t in range(min(v.n_tokens, 300)):
            v.token_to_piece(t, 0, True)
        model.chat_template()


def model(data: bytes) -> None:
    """The loader with tensors, a context, and one small decode."""
    with core.Model(_as_file(data)) as m:
        params = core.ContextParams()
        params.n_ctx = 64
        params.n_batch = 16
        params.n_threads = params.n_threads_batch = 1
        with core.Context(m, params) as ctx:
            n = m.vocab.n_tokens
            ctx.decode_tokens([t % n for t in (1, 5, 9)])
            ctx.get_logits_ith(-1, copy=True)


@cache
def _vocab() -> core.Vocab:
    from llamanb.models import default_model

    params = core.ModelParams()
    params.vocab_only = True
    return core.Model(default_model(), params).vocab


def _apply(sampler: core.Sampler) -> None:
    n = _vocab().n_tokens
    logits = np.linspace(-1, 1, n, dtype=np.float32)
    cand = core.TokenDataArray(np.arange(n, dtype=np.int32), logits)
    sampler.apply(cand)


def grammar(data: bytes) -> None:
    """A GBNF grammar from a user: parsed by llama.cpp, then applied once."""
    text = data.decode("utf-8", errors="replace")
    _apply(core.Sampler.grammar(_vocab(), text, "root"))


def json_schema(data: bytes) -> None:
    """A JSON schema from a user (its $ref graphs among the seeds): llamanb's check and
    llama.cpp's converter to GBNF (json_schema_to_grammar), then llama.cpp's parser."""
    from llamanb.json_schema import json_schema_to_grammar

    schema = json.loads(data.decode("utf-8", errors="replace"))
    _apply(core.Sampler.grammar(_vocab(), json_schema_to_grammar(schema), "root"))


def chat_template(data: bytes) -> None:
    """A Jinja chat template from a model file or a user, rendered by llama.cpp's chat engine."""
    from llamanb.chat import ChatTemplate
    from llamanb.chat_prompt import encode_chat

    template = ChatTemplate(data.decode("utf-8", errors="replace"), bos_token="<s>", eos_token="</s>")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi <|im_end|>"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
    ]
    encode_chat(_vocab(), template, messages, tools=[{"type": "function", "function": {"name": "f"}}])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "gguf_reader": gguf_reader,
    "vocab": vocab,
    "model": model,
    "grammar": grammar,
    "json_schema": json_schema,
    "chat_template": chat_template,
}
