"""Hardening round 3: inputs that crashed the process. Each runs in a fresh interpreter
(tests/support/isolated.py), so that a crash fails its test instead of the suite, and each is
bounded in time. The same inputs over HTTP, and the heavy requests defined here, go to
``llamanb serve`` in tests/test_llama_server_hostile.py."""

from __future__ import annotations

from pathlib import Path

from .support.isolated import run_isolated

N = 10_000  # $ref hops: ~0.9 MB of flat JSON, which no nesting check sees


def ref_chain(n: int) -> dict[str, object]:
    """A flat chain of ``n`` $refs ending in a string: every hop was one C++ stack frame."""
    defs: dict[str, object] = {f"a{i}": {"$ref": f"#/$defs/a{i + 1}"} for i in range(n)}
    defs[f"a{n}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/a0"}


def test_a_ref_chain_is_an_error_not_a_crash() -> None:
    """Finding 1, core: llama.cpp's JSON-schema code recursed once per $ref hop (patch
    0008 bounds every walk at 512 levels). A chain built backwards (each target built
    before the ref to it) keeps the build shallow: it converts."""
    out = run_isolated(
        f"""
        import json
        from llamanb import core
        from tests.test_hostile_input import ref_chain
        chain = ref_chain({N})
        try:
            core.common.json_schema_to_grammar(json.dumps(chain))
        except ValueError as e:
            print("ValueError:", str(e).splitlines()[-1])
        deep = {{"$defs": chain["$defs"], "anyOf": [{{"$ref": f"#/$defs/a{{i}}"}} for i in range({N}, {N} - 400, -1)]}}
        print("backwards:", "root ::=" in core.common.json_schema_to_grammar(json.dumps(deep)))
    """,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ValueError: JSON schema nests deeper than 512 levels (counting $ref hops)" in out.stdout
    assert "backwards: True" in out.stdout


def test_nested_groups_and_rule_chains_are_errors_not_crashes(model_path: Path) -> None:
    """Finding 3: a GBNF grammar of 100,000 nested groups, or a chain of 100,000 rules,
    overflowed the stack in llama.cpp's parser and its left-recursion check (patch 0009:
    groups nest at most 1024 deep, the check follows at most 4096 rules). Grammars just
    inside the bounds still work."""
    out = run_isolated(
        f"""
        from llamanb import core
        core.log_disable()
        params = core.ModelParams()
        params.vocab_only = True
        vocab = core.Model({str(model_path)!r}, params).vocab
        def grammar(text):
            try:
                core.Sampler.grammar(vocab, text).close()
                return "ok"
            except ValueError:
                return "ValueError"
        groups = lambda n: "root ::= " + "(" * n + '"a"' + ")" * n
        chain = lambda n: "root ::= r0\\n" + "".join(f"r{{i}} ::= r{{i + 1}}\\n" for i in range(n)) + f'r{{n}} ::= "a"\\n'
        print(grammar(groups(100_000)), grammar(chain(100_000)), grammar(groups(1000)), grammar(chain(3000)))
    """,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ValueError", "ValueError", "ok", "ok"]


HEAVY = "<|im_end|>" * 20_000  # special-token text tokenizes in quadratic time in llama.cpp


HEAVY_CHAT = [{"role": "user", "content": HEAVY}]
HEAVY_REQUESTS: list[tuple[str, dict[str, object]]] = [
    ("/tokenize", {"content": HEAVY, "parse_special": True, "with_pieces": True}),
    ("/v1/chat/completions", {"model": "m", "messages": HEAVY_CHAT, "max_tokens": 1}),
    ("/v1/chat/completions", {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}] * 20_000}),
    ("/v1/completions", {"model": "m", "prompt": HEAVY, "max_tokens": 1}),
    ("/v1/rerank", {"model": "m", "query": HEAVY[:50_000], "documents": ["a"] * 50}),
    ("/v1/embeddings", {"model": "m", "input": [HEAVY[:20_000]] * 20}),
    ("/v1/messages/count_tokens", {"model": "m", "messages": HEAVY_CHAT}),
]
