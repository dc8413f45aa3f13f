"""``llama_cpp.llama_chat_format``: chat formats by name, Jinja chat formatters and chat
completion handlers.

The named formats run as llama.cpp's built-in templates through its chat engine (tools
included); ``chatml-function-calling`` is ChatML with the tools in llama.cpp's generic
JSON tool-call format. Formats registered with :func:`register_chat_format` (Python
formatters, as llama-cpp-python's) run as a completion of the prompt they return.
Jinja templates render with llama.cpp's own Jinja engine, not the jinja2 package."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..chat import ChatTemplate, Message, ToolChoice
from ..openai_types import CreateChatCompletionResponse, CreateCompletionResponse

if TYPE_CHECKING:
    from .llama import Llama
    from .processors import StoppingCriteriaList

# llama-cpp-python chat_format names → llama.cpp built-in template names.
TEMPLATES = {
    "chatml": "chatml",
    "chatml-function-calling": "chatml",
    "llama-2": "llama2",
    "llama-3": "llama3",
    "mistral-instruct": "mistral-v1",
    "gemma": "gemma",
    "phi3": "phi3",
    "zephyr": "zephyr",
    "vicuna": "vicuna",
    "openchat": "openchat",
}


@dataclass
class ChatFormatterResponse:
    """A formatted prompt: what to complete, and where to stop."""

    prompt: str
    stop: str | list[str] | None = None
    stopping_criteria: StoppingCriteriaList | None = None
    added_special: bool = False


class ChatFormatter(Protocol):
    def __call__(self, *, messages: Sequence[Message], **kwargs: Any) -> ChatFormatterResponse: ...


class LlamaChatCompletionHandler(Protocol):
    def __call__(self, *, llama: Llama, messages: Sequence[Message], **kwargs: Any) -> Any: ...


class LlamaChatCompletionHandlerRegistry:
    """Chat completion handlers by format name (llama-cpp-python's registry, one per
    process as there: :func:`register_chat_format` adds to it)."""

    def __init__(self) -> None:
        self._handlers: dict[str, LlamaChatCompletionHandler] = {}

    def register_chat_completion_handler(
        self, name: str, handler: LlamaChatCompletionHandler, overwrite: bool = False
    ) -> None:
        if not overwrite and name in self._handlers:
            raise ValueError(
                f"Formatter with name '{name}' is already registered. Use `overwrite=True` to overwrite it."
            )
        self._handlers[name] = handler

    def unregister_chat_handler(self, name: str) -> None:
        if name not in self._handlers:
            raise ValueError(f"No formatter registered under the name '{name}'.")
        del self._handlers[name]

    def get_chat_completion_handler_by_name(self, name: str) -> LlamaChatCompletionHandler:
        try:
            return self._handlers[name]
        except KeyError:
            raise ValueError(f"Invalid chat handler: {name} (valid formats: {sorted(self._handlers)})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def names(self) -> list[str]:
        return list(self._handlers)


LlamaChatCompletionHandlerRegistry_ = LlamaChatCompletionHandlerRegistry()


def get_chat_completion_handler(name: str) -> LlamaChatCompletionHandler:
    return LlamaChatCompletionHandlerRegistry_.get_chat_completion_handler_by_name(name)


def register_chat_completion_handler(name: str) -> Callable[[LlamaChatCompletionHandler], LlamaChatCompletionHandler]:
    def decorator(f: LlamaChatCompletionHandler) -> LlamaChatCompletionHandler:
        LlamaChatCompletionHandlerRegistry_.register_chat_completion_handler(name, f)
        return f

    return decorator


def register_chat_format(name: str) -> Callable[[ChatFormatter], ChatFormatter]:
    """Register a Python formatter under ``name``: ``Llama(chat_format=name)`` then
    completes the prompt it returns."""

    def decorator(f: ChatFormatter) -> ChatFormatter:
        LlamaChatCompletionHandlerRegistry_.register_chat_completion_handler(
            name, chat_formatter_to_chat_completion_handler(f), overwrite=True
        )
        return f

    return decorator


def is_python_format(name: str | None) -> bool:
    return name is not None and name in LlamaChatCompletionHandlerRegistry_


def known_formats() -> list[str]:
    return sorted({*TEMPLATES, *LlamaChatCompletionHandlerRegistry_.names()})


_COMPLETION_ONLY = ("functions", "function_call", "tools", "tool_choice", "response_format", "logprobs", "top_logprobs")


def chat_formatter_to_chat_completion_handler(formatter: ChatFormatter) -> LlamaChatCompletionHandler:
    """A handler that completes the formatter's prompt and answers as a chat completion."""

    def handler(*, llama: Llama, messages: Sequence[Message], **kwargs: Any) -> Any:
        for name in _COMPLETION_ONLY:
            if kwargs.get(name):
                raise NotImplementedError(
                    f"{name} is not supported with a Python chat format; use one of llama.cpp's "
                    f"templates (chat_format=None: the model's own)"
                )
            kwargs.pop(name, None)
        result = formatter(messages=messages)
        stop = [result.stop] if isinstance(result.stop, str) else list(result.stop or [])
        extra = kwargs.pop("stop", None)
        stop += [extra] if isinstance(extra, str) else list(extra or [])
        prompt: Any = result.prompt
        if not result.added_special:
            prompt = llama.tokenize(result.prompt.encode(), add_bos=True, special=True)
        kwargs["max_tokens"] = kwargs.get("max_tokens") or None
        out = llama.create_completion(prompt, stop=stop or None, stopping_criteria=result.stopping_criteria, **kwargs)
        if kwargs.get("stream"):
            return _chat_chunks(out)  # type: ignore[arg-type]
        return _chat_response(out)  # type: ignore[arg-type]

    return handler


def _chat_response(out: CreateCompletionResponse) -> CreateChatCompletionResponse:
    choice = out["choices"][0]
    return {
        "id": "chat" + out["id"],
        "object": "chat.completion",
        "created": out["created"],
        "model": out["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": choice["text"]},
                "logprobs": None,
                "finish_reason": choice["finish_reason"],
            }
        ],
        "usage": out["usage"],
    }


def _chat_chunks(chunks: Iterator[Any]) -> Iterator[Any]:
    first = True
    for chunk in chunks:
        choice = chunk["choices"][0]
        delta: dict[str, Any] = {"role": "assistant"} if first else {}
        first = False
        if choice["text"]:
            delta["content"] = choice["text"]
        yield {
            "id": "chat" + chunk["id"],
            "object": "chat.completion.chunk",
            "created": chunk["created"],
            "model": chunk["model"],
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": choice["finish_reason"]}],
        }


class Jinja2ChatFormatter:
    """A chat formatter from a Jinja template (Hugging Face ``chat_template``), rendered
    by llama.cpp's Jinja engine."""

    def __init__(
        self,
        template: str,
        eos_token: str,
        bos_token: str,
        add_generation_prompt: bool = True,
        stop_token_ids: Sequence[int] | None = None,
    ) -> None:
        self.template = template
        self.eos_token = eos_token
        self.bos_token = bos_token
        self.add_generation_prompt = add_generation_prompt
        self.stop_token_ids = set(stop_token_ids) if stop_token_ids is not None else None
        self._template = ChatTemplate(template, bos_token=bos_token, eos_token=eos_token)

    def __call__(
        self,
        *,
        messages: Sequence[Message],
        functions: Sequence[Mapping[str, Any]] | None = None,
        function_call: str | Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
        **kwargs: Any,
    ) -> ChatFormatterResponse:
        if functions is not None or function_call is not None:
            tools, tool_choice = functions_as_tools(functions, function_call, tools, tool_choice)
        prompt = self._template.render(messages, add_generation_prompt=self.add_generation_prompt, tools=tools)
        return ChatFormatterResponse(prompt=prompt, stop=[self.eos_token], added_special=True)

    def to_chat_handler(self) -> LlamaChatCompletionHandler:
        return chat_formatter_to_chat_completion_handler(self)


def hf_tokenizer_config_to_chat_formatter(
    tokenizer_config: Mapping[str, Any], add_generation_prompt: bool = True
) -> ChatFormatter:
    """A formatter from a Hugging Face ``tokenizer_config.json``. As llama-cpp-python's, it
    ends the messages with an empty assistant turn to ask for a reply."""
    template = ChatTemplate(
        tokenizer_config["chat_template"],
        bos_token=tokenizer_config["bos_token"],
        eos_token=tokenizer_config["eos_token"],
    )
    bos, eos = tokenizer_config["bos_token"], tokenizer_config["eos_token"]

    def format_tokenizer_config(*, messages: Sequence[Message], **kwargs: Any) -> ChatFormatterResponse:
        if add_generation_prompt:
            messages = [*messages, {"role": "assistant", "content": ""}]
        prompt = template.render(messages, add_generation_prompt=False)
        return ChatFormatterResponse(prompt=prompt, stop=[eos, bos], added_special=True)

    return format_tokenizer_config


def format_mistral_instruct(*, messages: Sequence[Message], **kwargs: Any) -> ChatFormatterResponse:
    """Mistral Instruct's format (without the leading BOS, which tokenizing adds)."""
    eos, prompt = "</s>", ""
    for message in messages:
        content = message.get("content")
        if message["role"] == "user" and isinstance(content, str):
            prompt += "[INST] " + content
        elif message["role"] == "assistant" and content is not None:
            prompt += " [/INST]" + str(content) + eos
    return ChatFormatterResponse(prompt=prompt + " [/INST]", stop=eos)


def functions_as_tools(
    functions: Sequence[Mapping[str, Any]] | None,
    function_call: str | Mapping[str, Any] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: ToolChoice | None,
) -> tuple[list[Mapping[str, Any]] | None, ToolChoice | None]:
    """OpenAI's older ``functions``/``function_call`` as ``tools``/``tool_choice``."""
    if tools is not None or tool_choice is not None:
        raise ValueError("give functions/function_call or tools/tool_choice, not both")
    as_tools: list[Mapping[str, Any]] | None = (
        None if functions is None else [{"type": "function", "function": f} for f in functions]
    )
    choice: ToolChoice | None
    if function_call is None or isinstance(function_call, str):
        choice = function_call  # type: ignore[assignment]
    else:
        choice = {"type": "function", "function": {"name": function_call["name"]}}
    return as_tools, choice
