"""Hostile chat templates are errors, not crashes, hangs or OOM kills (patch 0004 to
llama.cpp's Jinja engine), while every real template still renders long conversations.

Templates come from model files and from users (``Llama(chat_template=...)``,
``llamanb serve --chat-template``). Before the patch, each template below killed the
process: a stack overflow (SIGSEGV), the kernel's OOM killer, or no end in sight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llamanb.chat import ChatOptions, ChatTemplate

TEMPLATES = Path(__file__).resolve().parents[1] / "vendor" / "llama.cpp" / "models" / "templates"

HOSTILE = {
    "endless recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "deep parentheses": "{{ " + "(" * 20000 + "1" + ")" * 20000 + " }}",
    "deep negation": "{{ " + "not " * 20000 + "1 }}",
    "deep blocks": "{% if true %}" * 5000 + "x" + "{% endif %}" * 5000,
    "huge range": "{% for i in range(100000000) %}x{% endfor %}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "huge repetition": "{{ 'a' * 3000000000 }}",
    "list doubling": "{% set x = [1] %}{% for i in range(40) %}{% set x = x + x %}{% endfor %}{{ x | length }}",
    "string doubling": "{% set s = 'ab' %}{% for i in range(60) %}{% set s = s ~ s %}{% endfor %}{{ s | length }}",
    "replace doubling": "{% set s = 'ab' %}{% for i in range(60) %}{% set s = s.replace('a', 'aa') %}{% endfor %}{{ s }}",
}

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_templates_raise(name: str) -> None:
    with pytest.raises(ValueError, match="too deep|too long|too much|nests|range"):
        ChatTemplate(HOSTILE[name]).render(MESSAGES)


def test_bounded_recursion_still_works() -> None:
    source = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}x{% endmacro %}{{ f(100) }}"
    assert ChatTemplate(source).render(MESSAGES) == "x" * 101


def test_a_template_syntax_error_keeps_its_message() -> None:
    with pytest.raises(ValueError, match="Unexpected token"):
        ChatTemplate("{% for %}")


def test_an_empty_template_is_refused() -> None:
    # Found by the chat_template mutation fuzzer: llama.cpp read "" as "the model's
    # template" and, given none, aborted (GGML_ASSERT(model != nullptr)).
    with pytest.raises(ValueError, match="empty"):
        ChatTemplate("")


def test_every_real_template_renders_a_long_conversation() -> None:
    """400 turns with tools: far below the limits for every template llama.cpp ships."""
    turns = []
    for i in range(200):
        turns += [
            {"role": "user", "content": f"Question {i}: what is {i} + {i}?"},
            {"role": "assistant", "content": f"It is {2 * i}."},
        ]
    conversation = [{"role": "system", "content": "Answer briefly."}, *turns, {"role": "user", "content": "Thanks."}]
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{k}",
                "description": "A tool.",
                "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
            },
        }
        for k in range(20)
    ]
    rendered = 0
    for path in sorted(TEMPLATES.glob("*.jinja")):
        template = ChatTemplate(path.read_text(encoding="utf-8"), bos_token="<s>", eos_token="</s>")
        try:
            prompt = template.render(conversation, ChatOptions(tools=tools))
        except ValueError as err:
            assert not any(word in str(err) for word in ("too deep", "too long", "too much")), (path.name, err)
            continue  # a template that refuses this conversation shape (e.g. strict role order)
        assert "Question 199" in prompt, path.name
        rendered += 1
    assert rendered >= 55, rendered
