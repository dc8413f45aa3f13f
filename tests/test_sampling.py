"""SamplingParams and per-call options on the real model: every knob reaches the
C++ sampler chain, constrained output is valid, and bad values fail clearly."""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from typing import Any

import jsonschema
import pytest

import llamanb
from llamanb import core
from llamanb.sampling import SamplingKwargs

PROMPT = "The capital of France is"
REPEATS = "the cat the cat the cat the cat the cat"


def test_kwargs_mirror_the_dataclass() -> None:
    assert set(SamplingKwargs.__annotations__) == {f.name for f in dataclasses.fields(llamanb.SamplingParams)}


def test_sampling_object_and_kwargs_agree(llm: llamanb.Llama) -> None:
    by_kwargs = llm.generate(PROMPT, max_tokens=8, temperature=0.9, top_k=20, seed=7)
    by_object = llm.generate(PROMPT, max_tokens=8, sampling=llamanb.SamplingParams(temperature=0.9, top_k=20, seed=7))
    assert by_kwargs.tokens == by_object.tokens
    # Keywords override the object's fields.
    greedy = llm.generate(PROMPT, max_tokens=8, temperature=0)
    overridden = llm.generate(
        PROMPT, max_tokens=8, sampling=llamanb.SamplingParams(temperature=1.5, seed=3), temperature=0
    )
    assert overridden.tokens == greedy.tokens


@pytest.mark.parametrize(
    "extra",
    [
        {"typical_p": 0.7},
        {"mirostat": 1},
        {"mirostat": 2, "mirostat_tau": 3.0},
        {"xtc_probability": 0.5, "xtc_threshold": 0.05},
        {"repeat_penalty": 1.3, "frequency_penalty": 0.5, "presence_penalty": 0.5},
        {"dry_multiplier": 0.8},
    ],
)
def test_samplers_are_seeded_and_reproducible(llm: llamanb.Llama, extra: dict[str, Any]) -> None:
    a = llm.generate(PROMPT, max_tokens=10, temperature=0.9, seed=11, **extra)
    b = llm.generate(PROMPT, max_tokens=10, temperature=0.9, seed=11, **extra)
    assert a.tokens == b.tokens and len(a.tokens) > 0


def test_logit_bias_bans_and_forces(llm: llamanb.Llama) -> None:
    greedy = llm.generate(PROMPT, max_tokens=2, temperature=0)
    first = greedy.tokens[0]
    banned = llm.generate(PROMPT, max_tokens=2, temperature=0, logit_bias={first: -math.inf})
    assert banned.tokens[0] != first
    forced_id = llm.tokenize(" banana", add_special=False)[0]
    forced = llm.generate(PROMPT, max_tokens=1, temperature=0, logit_bias={forced_id: 100.0})
    assert forced.tokens == [forced_id]


def test_penalties_break_repetition(llm: llamanb.Llama) -> None:
    def most_common_share(tokens: list[int]) -> float:
        return collections.Counter(tokens).most_common(1)[0][1] / len(tokens)

    plain = llm.generate(REPEATS, max_tokens=12, temperature=0)
    assert "the cat the cat" in plain.text  # the greedy model loops...
    for knob in ({"presence_penalty": 5.0}, {"repeat_penalty": 2.0}, {"dry_multiplier": 0.8}):
        varied = llm.generate(REPEATS, max_tokens=12, temperature=0, **knob)  # type: ignore[arg-type]
        assert varied.tokens != plain.tokens, knob  # ...and each penalty (primed by the prompt) breaks it
        assert most_common_share(varied.tokens) < most_common_share(plain.tokens), knob


def test_xtc_removes_the_top_choice(llm: llamanb.Llama) -> None:
    greedy_first = llm.generate(PROMPT, max_tokens=1, temperature=0).tokens[0]
    # With probability 1, XTC drops every candidate above the threshold but the least likely.
    xtc = llm.generate(PROMPT, max_tokens=1, temperature=0.5, seed=1, xtc_probability=1.0, xtc_threshold=0.01)
    assert xtc.tokens[0] != greedy_first


def test_gbnf_grammar(llm: llamanb.Llama) -> None:
    out = llm.generate(
        "Is the sky blue? Answer:", max_tokens=8, temperature=0.8, seed=5, grammar='root ::= " " ("yes" | "no") "."'
    )
    assert out.text in (" yes.", " no.")
    assert out.finish_reason == "stop"  # the grammar is complete: only end-of-generation remains


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "hobbies": {"type": "array", "items": {"enum": ["chess", "music", "hiking"]}, "maxItems": 3},
        "email": {"type": ["string", "null"], "maxLength": 30},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer", "minimum": -5, "maximum": 5},
                "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
            },
            "required": ["value", "next"],
        }
    },
    "$ref": "#/$defs/node",
}
EVENT = {
    "type": "object",
    "properties": {
        "when": {"type": "string", "format": "date"},
        "ok": {"type": "boolean"},
        "score": {"type": "number"},
        "kind": {"const": "meeting"},
    },
    "required": ["when", "ok", "score", "kind"],
}


@pytest.mark.parametrize(
    ("schema", "prompt"),
    [
        (PERSON, "Write one example as JSON: "),
        # Left alone, the tiny model nests forever (the grammar allows it); an example ends it
        # (with llama.cpp's grammar, which allows newlines, "Another:" nested past 120 tokens).
        (TREE, 'Linked list as JSON. Example: {"value": 1, "next": {"value": 2, "next": null}}\nA shorter one: '),
        (EVENT, "Write one example as JSON: "),
    ],
    ids=["person", "recursive", "formats"],
)
def test_json_schema_output_validates(llm: llamanb.Llama, schema: dict[str, Any], prompt: str) -> None:
    for seed in (1, 2):
        out = llm.generate(prompt, max_tokens=120, temperature=0.7, seed=seed, json_schema=schema)
        assert out.finish_reason == "stop", out.text
        jsonschema.validate(json.loads(out.text), schema)
    # A schema given as JSON text works the same.
    assert (
        llm.generate(prompt, max_tokens=120, temperature=0.7, seed=1, json_schema=json.dumps(schema)).text
        == llm.generate(prompt, max_tokens=120, temperature=0.7, seed=1, json_schema=schema).text
    )


def test_json_schema_greedy_object(llm: llamanb.Llama) -> None:
    out = llm.generate("A person as JSON:", max_tokens=80, temperature=0, json_schema=PERSON)
    value = json.loads(out.text)
    jsonschema.validate(value, PERSON)
    assert isinstance(value["name"], str) and 0 <= value["age"] <= 120


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"top_p": 1.5}, ValueError),
        ({"min_p": -0.1}, ValueError),
        ({"typical_p": 0.0}, ValueError),
        ({"repeat_penalty": 0.0}, ValueError),
        ({"penalty_last_n": -2}, ValueError),
        ({"dry_base": 0.5}, ValueError),
        ({"xtc_probability": 2.0}, ValueError),
        ({"mirostat": 3}, ValueError),
        ({"seed": -1}, ValueError),
        ({"temperature": math.nan}, ValueError),
        ({"grammar": 'root ::= "a"', "json_schema": {}}, ValueError),
        ({"json_schema": {"type": "string", "pattern": "^a+$"}}, ValueError),
        ({"dry_sequence_breakers": "\n"}, TypeError),
        ({"logits_processors": (42,)}, TypeError),
    ],
)
def test_bad_sampling_values(bad: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        llamanb.SamplingParams(**bad)


def test_logits_processors_run_first_on_the_whole_vocabulary(llm: llamanb.Llama) -> None:
    # A list is kept as a tuple (the dataclass stays hashable); logit_bias runs after the
    # processors, on what they return.
    banned = llm.generate(PROMPT, max_tokens=1, temperature=0).tokens[0]  # the greedy first token

    def ban(ids: Any, scores: Any) -> Any:
        assert len(scores) == llm.vocab.n_tokens
        scores[banned] = -math.inf
        return scores

    params = llamanb.SamplingParams(temperature=0, logits_processors=[ban])
    assert params.logits_processors == (ban,) and hash(params)
    out = llm.generate(PROMPT, max_tokens=24, sampling=params)
    assert out.tokens and banned not in out.tokens


def test_bad_call_arguments(llm: llamanb.Llama) -> None:
    with pytest.raises(TypeError, match="unknown sampling parameter"):
        llm.generate(PROMPT, temprature=0.5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_tokens"):
        llm.generate(PROMPT, max_tokens=-1)
    with pytest.raises(ValueError, match="logprobs"):
        llm.generate(PROMPT, logprobs=-1)
    with pytest.raises(ValueError, match="out of range"):
        llm.generate(PROMPT, logit_bias={10**9: 1.0})
    with pytest.raises(ValueError, match="grammar|parse"):
        llm.generate(PROMPT, grammar="root ::= (((")
    with pytest.raises(TypeError, match="integer token ids"):
        llm.generate(["a", "b"])  # type: ignore[list-item]
    with pytest.raises(IndexError):
        llm.generate([10**9])
    with pytest.raises(ValueError, match="empty"):
        llm.generate([])


def test_token_prompt_equals_text_prompt(llm: llamanb.Llama) -> None:
    by_text = llm.generate(PROMPT, max_tokens=8, temperature=0)
    by_tokens = llm.generate(llm.tokenize(PROMPT), max_tokens=8, temperature=0)
    assert by_text.tokens == by_tokens.tokens and by_text.text == by_tokens.text
    assert by_tokens.prompt_tokens == len(llm.tokenize(PROMPT))


def test_echo(llm: llamanb.Llama) -> None:
    plain = llm.generate(PROMPT, max_tokens=6, temperature=0)
    echoed = llm.generate(PROMPT, max_tokens=6, temperature=0, echo=True)
    assert echoed.text == PROMPT + plain.text
    assert "".join(llm.stream(PROMPT, max_tokens=6, temperature=0, echo=True)) == echoed.text
    assert llm.generate(PROMPT, max_tokens=0, echo=True).text == PROMPT


def test_logprobs(llm: llamanb.Llama) -> None:
    out = llm.generate(PROMPT, max_tokens=6, temperature=0, logprobs=3)
    assert out.logprobs is not None and len(out.logprobs) == len(out.tokens)
    for token, lp in zip(out.tokens, out.logprobs):
        assert lp.token == token and lp.logprob <= 0.0
        assert len(lp.top) == 3
        assert [t.logprob for t in lp.top] == sorted((t.logprob for t in lp.top), reverse=True)
        assert lp.top[0].token == token  # greedy picks the most likely token
        assert math.isclose(lp.logprob, lp.top[0].logprob)
        assert sum(math.exp(t.logprob) for t in lp.top) <= 1.0 + 1e-6
    assert out.logprobs[0].text == " Paris"
    assert llm.generate(PROMPT, max_tokens=3, temperature=0).logprobs is None
    only_chosen = llm.generate(PROMPT, max_tokens=2, temperature=0, logprobs=0)
    assert only_chosen.logprobs is not None and all(lp.top == () for lp in only_chosen.logprobs)


def test_logprobs_match_the_logits(llm: llamanb.Llama, model: core.Model) -> None:
    import numpy as np

    out = llm.generate(PROMPT, max_tokens=1, temperature=0, logprobs=1)
    assert out.logprobs is not None
    params = core.ContextParams()
    params.n_ctx = 128
    with core.Context(model, params) as ctx:
        ctx.decode_tokens(llm.tokenize(PROMPT))
        logits = ctx.get_logits_ith(-1, copy=True).astype(np.float64)
    expected = logits[out.tokens[0]] - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    assert math.isclose(out.logprobs[0].logprob, expected, abs_tol=1e-3)


def test_stop_strings_across_tokens(llm: llamanb.Llama) -> None:
    full = llm.generate(PROMPT, max_tokens=24, temperature=0).text
    words = full.split()
    stop = f"{words[1]} {words[2]}"  # spans several tokens
    out = llm.generate(PROMPT, max_tokens=24, temperature=0, stop=["never-appears", stop])
    assert out.finish_reason == "stop" and out.text == full[: full.index(stop)]
    pieces = list(llm.stream(PROMPT, max_tokens=24, temperature=0, stop=[stop]))
    assert "".join(pieces) == out.text and not any(stop in p for p in pieces)
    assert llm.generate(PROMPT, max_tokens=24, temperature=0, stop=words[1]).text == full[: full.index(words[1])]


def test_max_tokens_none_runs_to_end_of_generation(llm: llamanb.Llama) -> None:
    chat = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"
    out = llm.generate(chat, max_tokens=None, temperature=0)
    assert out.finish_reason == "stop" and 0 < len(out.tokens) < 200


@pytest.mark.parametrize("prompt", ["The three primary colors are", "def fib(n):", "Once upon a time"])
def test_greedy_fast_path_picks_llama_cpps_greedy_token(model: core.Model, prompt: str) -> None:
    """A chain that is only greedy samples by argmax over the logits (no candidate
    array); at every step it picks what llama.cpp's greedy sampler picks from the full
    candidate array of the same logits."""
    import numpy as np

    params = core.ContextParams()
    params.n_ctx, params.n_threads, params.n_threads_batch = 256, 2, 2
    with core.Context(model, params) as ctx:
        fast = core.Sampler.chain()
        fast.add(core.Sampler.greedy())
        reference = core.Sampler.greedy()
        ctx.decode_tokens(model.vocab.tokenize(prompt, True, False).tolist())
        n = model.vocab.n_tokens
        for _ in range(48):
            logits = np.array(ctx.get_logits_ith(-1))
            candidates = core.TokenDataArray(np.arange(n, dtype=np.int32), logits)
            reference.apply(candidates)
            token = fast.sample(ctx, -1)
            assert token == int(candidates.ids[candidates.selected]) == int(np.argmax(logits))
            ctx.decode_tokens([token])
        fast.close()
        reference.close()


def test_a_repetition_with_max_below_min_is_refused(model: core.Model) -> None:
    """Patch 0005: llama.cpp's GBNF parser expanded {5,2} until memory ran out."""
    with pytest.raises(ValueError, match="grammar"):
        core.Sampler.grammar(model.vocab, 'root ::= "a" [ \\t]{5,2}', "root")
    core.Sampler.grammar(model.vocab, 'root ::= "a" [ \\t]{2,5}', "root").close()


# -- the top-k fast path: a chain that starts with top-k (k <= 128) gets only the
# candidates top-k can keep instead of the whole vocabulary; every test compares it
# with llama.cpp's own apply over the full candidate array (what llama_sampler_sample
# does), step by step, with the chain's state (dist's RNG) carried along.


def _chain(*samplers: core.Sampler) -> core.Sampler:
    chain = core.Sampler.chain()
    for s in samplers:
        chain.add(s)
    return chain


def _reference_sample(reference: core.Sampler, logits: Any) -> int:
    """llama_sampler_sample's steps: apply the chain to all candidates, accept its choice."""
    import numpy as np

    candidates = core.TokenDataArray(np.arange(len(logits), dtype=np.int32), np.asarray(logits, dtype=np.float32))
    reference.apply(candidates)
    assert 0 <= candidates.selected < len(candidates)
    token = int(candidates.ids[candidates.selected])
    reference.accept(token)
    return token


def _rng_in_lockstep(a: core.Sampler, b: core.Sampler) -> None:
    """The last samplers (dist) of chains a and b draw the same numbers from here on:
    picks from 1000 equally likely candidates agree ten times in a row."""
    import numpy as np

    for _ in range(10):
        picks = []
        for chain in (a, b):
            flat = core.TokenDataArray(np.arange(1000, dtype=np.int32), np.zeros(1000, dtype=np.float32))
            dist = chain.get(chain.n - 1)
            dist.apply(flat)
            picks.append(flat.selected)
        assert picks[0] == picks[1]


# (top_k, top_p, min_p, temperature): the facade's default, extremes, and k around the
# 128 limit of the fast path (129: llama.cpp's bucket sort, the full array).
CHAIN_PARAMS = [
    (40, 0.95, 0.05, 0.8),
    (40, 1.0, 0.0, 1.5),
    (2, 0.5, 0.0, 2.0),
    (128, 0.99, 0.01, 1.2),
    (129, 0.95, 0.05, 1.0),
]


@pytest.mark.parametrize("seed", [1, 12345])
@pytest.mark.parametrize("params", CHAIN_PARAMS)
def test_top_k_chain_samples_as_llama_cpp_does(
    model: core.Model, params: tuple[int, float, float, float], seed: int
) -> None:
    """The same token as llama.cpp's llama_sampler_sample path at every step of a real
    generation, and the chains' RNGs in lockstep at the end."""
    import numpy as np

    k, top_p, min_p, temp = params
    sampling = llamanb.SamplingParams(top_k=k, top_p=top_p, min_p=min_p, temperature=temp, seed=seed)
    ctx_params = core.ContextParams()
    ctx_params.n_ctx, ctx_params.n_threads, ctx_params.n_threads_batch = 256, 2, 2
    with core.Context(model, ctx_params) as ctx:
        fast, reference = sampling.build(model.vocab), sampling.build(model.vocab)
        assert fast.get(0).name == "top-k"
        ctx.decode_tokens(model.vocab.tokenize("Once upon a time", True, False).tolist())
        tokens = []
        for _ in range(40):
            expected = _reference_sample(reference, np.array(ctx.get_logits_ith(-1)))
            token = fast.sample(ctx, -1)
            assert token == expected
            tokens.append(token)
            ctx.decode_tokens([token])
        assert len(set(tokens)) > 5  # it sampled, not looped on one token
        _rng_in_lockstep(fast, reference)
        fast.close()
        reference.close()


def _tied_logits(rng: Any, n: int, kind: str) -> Any:
    import numpy as np

    if kind == "grid":  # values on a 0.5 grid: every logit ties with hundreds of others
        return (np.round(rng.normal(size=n) * 4) / 2).astype(np.float32)
    if kind == "few":  # three values only
        return rng.choice(np.array([-1.0, 0.0, 2.5], dtype=np.float32), size=n)
    if kind == "ascending":  # every logit gets into the running top k
        return np.sort(rng.normal(size=n)).astype(np.float32)
    if kind == "equal":
        return np.zeros(n, dtype=np.float32)
    if kind == "special":  # NaN and infinities in the tail, ties at +inf
        x = (np.round(rng.normal(size=n) * 4) / 2).astype(np.float32)
        x[rng.choice(np.arange(200, n), size=50, replace=False)] = np.nan
        x[rng.choice(np.arange(200, n), size=5, replace=False)] = np.inf
        x[rng.choice(np.arange(200, n), size=500, replace=False)] = -np.inf
        return x
    assert kind == "nan_head"  # a NaN among the first k: the full array is used
    x = rng.normal(size=n).astype(np.float32)
    x[0] = np.nan
    return x


@pytest.mark.parametrize("kind", ["grid", "few", "ascending", "equal", "special", "nan_head"])
@pytest.mark.parametrize("k", [1, 3, 40, 128])
def test_top_k_fast_path_keeps_llama_cpps_ties(kind: str, k: int) -> None:
    """Logits full of ties (and NaN, infinities): the same tokens as llama.cpp over all
    candidates, so the kept tokens and their order (std::partial_sort's) are the same."""
    import numpy as np

    rng = np.random.default_rng(k * 100 + len(kind))
    for seed in (3, 4):
        for temp in (0.7, 3.0):
            fast = _chain(
                core.Sampler.top_k(k), core.Sampler.top_p(0.9), core.Sampler.temp(temp), core.Sampler.dist(seed)
            )
            reference = _chain(
                core.Sampler.top_k(k), core.Sampler.top_p(0.9), core.Sampler.temp(temp), core.Sampler.dist(seed)
            )
            for _ in range(12):
                logits = _tied_logits(rng, 49152, kind)
                assert fast.sample_logits(logits) == _reference_sample(reference, logits)
            _rng_in_lockstep(fast, reference)
            fast.close()
            reference.close()


def test_top_k_fast_path_with_more_samplers_after_it(model: core.Model) -> None:
    """Whatever follows top-k (penalties with their history, greedy) sees the very same
    candidates; small vocabularies (k close to n) too."""
    import numpy as np

    rng = np.random.default_rng(5)
    for n in (41, 200, 49152):
        fast = _chain(core.Sampler.top_k(40), core.Sampler.penalties(8, 1.3, 0.1, 0.1), core.Sampler.greedy())
        reference = _chain(core.Sampler.top_k(40), core.Sampler.penalties(8, 1.3, 0.1, 0.1), core.Sampler.greedy())
        for _ in range(40):
            logits = (np.round(rng.normal(size=n) * 3) / 3).astype(np.float32)
            logits[rng.integers(0, 30, size=3)] += 4.0  # a few tokens that win often, for the penalties
            assert fast.sample_logits(logits) == _reference_sample(reference, logits)
        fast.close()
        reference.close()


def test_sample_logits_checks_its_input() -> None:
    import numpy as np

    greedy = core.Sampler.greedy()
    assert greedy.sample_logits(np.array([0.0, 3.0, 1.0], dtype=np.float32)) == 1
    with pytest.raises(ValueError):
        greedy.sample_logits(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="selected no token"):
        core.Sampler.top_k(2).sample_logits(np.zeros(10, dtype=np.float32))
    greedy.close()
    with pytest.raises(core.ClosedError):
        greedy.sample_logits(np.zeros(3, dtype=np.float32))


def test_a_python_sampler_named_greedy_is_not_taken_for_greedy() -> None:
    """The shortcuts recognise llama.cpp's own samplers, not their names."""
    import numpy as np

    class Last:
        def apply(self, candidates: core.TokenDataArray) -> None:
            candidates.selected = len(candidates) - 1

    chain = _chain(core.Sampler.from_python(Last(), "greedy"))
    assert chain.sample_logits(np.array([5.0, 0.0, 1.0], dtype=np.float32)) == 2
    chain.close()
