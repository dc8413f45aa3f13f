"""The server engine's per-slot speculation: n-grams (``--spec-type``) and a draft model
(``--model-draft``, draft-simple). The replies of plain decoding, in fewer decodes, with
two conversations drafting side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llamanb
from llamanb import SpeculativeOptions
from llamanb.server import ServerConfig
from llamanb.server.engine import Engine

from .draft_pair import q8_target
from .engine_jobs import run_greedy_jobs
from .test_speculative import CODE, PATTERN, assert_same_tokens

SPEC = SpeculativeOptions(("ngram-simple",), draft_max=8, draft_min=0, ngram_size=3)
DRAFT = SpeculativeOptions(("draft-simple",), draft_max=4, draft_min=0)


@pytest.fixture(scope="module")
def q8_llm() -> Iterator[llamanb.Llama]:
    """The Q8_0 target; the default Q4_1 model drafts for it (same vocabulary)."""
    with llamanb.Llama(q8_target(), n_ctx=1024, n_threads=2) as llm:
        yield llm


@pytest.fixture(scope="module")
def draft_model() -> Iterator[llamanb.core.Model]:
    from llamanb.loading import ModelOptions, open_model

    model = open_model(llamanb.default_model(), ModelOptions())
    yield model
    model.close()


def draft_engine(q8_llm: llamanb.Llama, draft_model: llamanb.core.Model, slots: int) -> Engine:
    return Engine(q8_llm.model, slots=slots, n_ctx_slot=512, n_batch=512, n_threads=2, speculative=DRAFT,
                  draft_model=draft_model)


@pytest.mark.parametrize("prompt", [PATTERN, CODE], ids=["pattern", "code"])
@pytest.mark.parametrize("kind", ["ngram", "draft-model"])
def test_replies_match_plain_decoding_in_fewer_decodes(llm: llamanb.Llama, q8_llm: llamanb.Llama,
                                                       draft_model: llamanb.core.Model, kind: str,
                                                       prompt: str) -> None:
    if kind == "ngram":
        engine = Engine(llm.model, slots=2, n_ctx_slot=512, n_batch=512, n_threads=2, speculative=SPEC)
    else:
        engine, llm = draft_engine(q8_llm, draft_model, slots=2), q8_llm
    try:
        (seq,) = run_greedy_jobs(engine, llm, [prompt], 48)
        stats = engine.stats()
    finally:
        engine.close()
    llm.reset()
    want = llm.generate(prompt, max_tokens=48, temperature=0)
    assert_same_tokens(llm, prompt, want.tokens, seq.tokens)
    assert seq.finish_reason == want.finish_reason
    assert seq.drafted_tokens is not None and seq.accepted_tokens is not None
    assert 0 <= seq.accepted_tokens <= seq.drafted_tokens
    # The repetition is drafted and kept, and so is most of what the Q4_1 draft of its
    # own Q8_0 target proposes: fewer decodes than tokens.
    if prompt == PATTERN or kind == "draft-model":
        assert seq.accepted_tokens > 0 and stats.decodes < len(seq.tokens)
    else:  # never more decodes than plain decoding's (the prompt's, then one per token)
        assert stats.decodes <= len(seq.tokens)


def test_two_slots_draft_side_by_side(llm: llamanb.Llama) -> None:
    """Both conversations draft from their own history in shared decodes. (Their tokens
    are compared alone, above: in a batch with another sequence a greedy near-tie may
    round the other way, speculation or not.)"""
    engine = Engine(llm.model, slots=2, n_ctx_slot=512, n_batch=512, n_threads=2, speculative=SPEC)
    try:
        seqs = run_greedy_jobs(engine, llm, [PATTERN, CODE], 48)
        stats = engine.stats()
    finally:
        engine.close()
    for seq in seqs:
        assert seq.finish_reason in ("length", "stop") and seq.tokens
        assert seq.accepted_tokens is not None and seq.drafted_tokens is not None
        assert 0 <= seq.accepted_tokens <= seq.drafted_tokens
    assert seqs[0].accepted_tokens is not None and seqs[0].accepted_tokens > 0  # the pattern's drafts
    assert stats.peak_parallel == 2
    assert stats.decodes <= max(len(s.tokens) for s in seqs)  # shared decodes, none extra


def test_a_slot_reused_after_a_stop_starts_clean(llm: llamanb.Llama) -> None:
    """A reply cut by max_tokens mid-draft leaves the slot's cache as plain decoding
    would: the next job on that slot, reusing its prefix, gets plain decoding's reply."""
    engine = Engine(llm.model, slots=1, n_ctx_slot=512, n_batch=512, n_threads=2, speculative=SPEC)
    try:
        (first,) = run_greedy_jobs(engine, llm, [PATTERN], 21)
        assert len(first.tokens) == 21
        (second,) = run_greedy_jobs(engine, llm, [PATTERN], 40, cache_prompt=True)
        assert second.cached_tokens > 0
    finally:
        engine.close()
    llm.reset()
    want = llm.generate(PATTERN, max_tokens=40, temperature=0)
    assert_same_tokens(llm, PATTERN, want.tokens, second.tokens)


def test_draft_model_two_slots_and_a_reused_slot(q8_llm: llamanb.Llama, draft_model: llamanb.core.Model) -> None:
    """Two slots draft together (one draft decode for both); then a job that reuses a
    slot's cached prefix drafts from a draft context that holds the same prefix."""
    engine = draft_engine(q8_llm, draft_model, slots=2)
    try:
        seqs = run_greedy_jobs(engine, q8_llm, [PATTERN, CODE], 40)
        stats = engine.stats()
        (again,) = run_greedy_jobs(engine, q8_llm, [PATTERN], 48, cache_prompt=True)
    finally:
        engine.close()
    for seq in seqs:
        assert seq.accepted_tokens is not None and seq.accepted_tokens > 0
    assert stats.peak_parallel == 2
    assert stats.decodes <= max(len(s.tokens) for s in seqs)
    assert again.cached_tokens > 0 and again.accepted_tokens is not None and again.accepted_tokens > 0
    q8_llm.reset()
    want = q8_llm.generate(PATTERN, max_tokens=48, temperature=0)
    assert_same_tokens(q8_llm, PATTERN, want.tokens, again.tokens)


def test_draft_model_errors(q8_llm: llamanb.Llama, draft_model: llamanb.core.Model) -> None:
    with pytest.raises(ValueError, match="needs a draft model"):
        Engine(q8_llm.model, slots=1, n_ctx_slot=256, n_batch=256, n_threads=2, speculative=DRAFT)
    with pytest.raises(ValueError, match="only by the 'draft-simple'"):
        Engine(q8_llm.model, slots=1, n_ctx_slot=256, n_batch=256, n_threads=2, speculative=SPEC,
               draft_model=draft_model)


@pytest.mark.parametrize("kind", ["ngram", "draft-model"])
def test_served_over_http(model_path: Path, llm: llamanb.Llama, q8_llm: llamanb.Llama, kind: str) -> None:
    import httpx

    from .fuzz.serve import running_server

    if kind == "ngram":
        config = ServerConfig(model=model_path, parallel=2, n_ctx=1024, n_threads=2, speculative=SPEC)
    else:
        config = ServerConfig(model=q8_target(), parallel=2, n_ctx=1024, n_threads=2, speculative=DRAFT,
                              draft_model=model_path)
        llm = q8_llm
    with running_server(config) as (url, api):
        body = {"model": api.backend.model_id, "prompt": PATTERN, "max_tokens": 40, "temperature": 0}
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        out = response.json()
        assert api.backend.engine.speculative == config.speculative
    llm.reset()
    want = llm.generate(PATTERN, max_tokens=40, temperature=0)
    assert out["choices"][0]["text"] == want.text
    assert out["usage"]["completion_tokens"] == len(want.tokens)
