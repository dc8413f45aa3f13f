"""
llama.cpp's common/ library: the chat engine (Jinja templates, tool calls, reasoning,
output parsers), JSON schema to grammar, and speculative decoding.
"""

from collections.abc import Mapping, Sequence
import enum
from typing import Annotated, overload

import numpy
from numpy.typing import NDArray

import llamanb.core


class ChatToolChoice(enum.Enum):
    """
    common_chat_tool_choice: whether the model may, must or must not call a tool.
    """

    AUTO = 0

    REQUIRED = 1

    NONE = 2

class ReasoningFormat(enum.Enum):
    """common_reasoning_format: where a thinking model's reasoning goes."""

    NONE = 0
    """left in the content"""

    AUTO = 1
    """extracted into reasoning_content"""

    DEEPSEEK_LEGACY = 2

    DEEPSEEK = 3

class ChatFormat(enum.Enum):
    """common_chat_format: how the engine parses a reply."""

    CONTENT_ONLY = 0

    PEG_SIMPLE = 1

    PEG_NATIVE = 2

    PEG_GEMMA4 = 3

    PEG_MINIMAX_M3 = 4

class GrammarTriggerType(enum.Enum):
    """common_grammar_trigger_type."""

    TOKEN = 0
    """a token id"""

    WORD = 1
    """a literal string"""

    PATTERN = 2
    """a regex matched anywhere"""

    PATTERN_FULL = 3
    """a regex matched against the whole output"""

class ChatToolCall:
    """common_chat_tool_call: a function call (arguments as JSON text)."""

    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, name: str, arguments: str, id: str = '') -> None: ...

    @property
    def name(self) -> str: ...

    @name.setter
    def name(self, arg: str, /) -> None: ...

    @property
    def arguments(self) -> str: ...

    @arguments.setter
    def arguments(self, arg: str, /) -> None: ...

    @property
    def id(self) -> str: ...

    @id.setter
    def id(self, arg: str, /) -> None: ...

    def __repr__(self) -> str: ...

class ChatContentPart:
    """common_chat_msg_content_part: a typed part of a message."""

    def __init__(self) -> None: ...

    @property
    def type(self) -> str: ...

    @type.setter
    def type(self, arg: str, /) -> None: ...

    @property
    def text(self) -> str: ...

    @text.setter
    def text(self, arg: str, /) -> None: ...

class ChatMessage:
    """
    common_chat_msg. List attributes are copies: assign a new list to change one.
    """

    def __init__(self) -> None: ...

    @property
    def content_parts(self) -> list[ChatContentPart]: ...

    @content_parts.setter
    def content_parts(self, arg: Sequence[ChatContentPart], /) -> None: ...

    @property
    def tool_calls(self) -> list[ChatToolCall]: ...

    @tool_calls.setter
    def tool_calls(self, arg: Sequence[ChatToolCall], /) -> None: ...

    @property
    def role(self) -> str: ...

    @role.setter
    def role(self, arg: str, /) -> None: ...

    @property
    def content(self) -> str: ...

    @content.setter
    def content(self, arg: str, /) -> None: ...

    @property
    def reasoning_content(self) -> str: ...

    @reasoning_content.setter
    def reasoning_content(self, arg: str, /) -> None: ...

    @property
    def tool_name(self) -> str: ...

    @tool_name.setter
    def tool_name(self, arg: str, /) -> None: ...

    @property
    def tool_call_id(self) -> str: ...

    @tool_call_id.setter
    def tool_call_id(self, arg: str, /) -> None: ...

    @property
    def empty(self) -> bool:
        """No content, reasoning or tool calls."""

    def to_openai_json(self) -> str:
        """The message as OpenAI chat JSON text."""

class ChatMessageDiff:
    """common_chat_msg_diff: what a longer parse of the same reply added."""

    @property
    def reasoning_content_delta(self) -> str: ...

    @property
    def content_delta(self) -> str: ...

    @property
    def tool_call_index(self) -> int | None:
        """The tool call this diff extends (None: no tool call)."""

    @property
    def tool_call_delta(self) -> ChatToolCall:
        """The call's id and name when it starts, then argument text fragments."""

def chat_message_diffs(previous: ChatMessage, current: ChatMessage) -> list[ChatMessageDiff]:
    """
    common_chat_msg_diff::compute_diffs: the diffs from one parse of a reply to the next.
    Raises ValueError when current does not extend previous.
    """

class ChatTool:
    """
    common_chat_tool: a function the model may call (parameters as JSON schema text).
    """

    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, name: str, description: str = '', parameters: str = '{}') -> None: ...

    @property
    def name(self) -> str: ...

    @name.setter
    def name(self, arg: str, /) -> None: ...

    @property
    def description(self) -> str: ...

    @description.setter
    def description(self, arg: str, /) -> None: ...

    @property
    def parameters(self) -> str: ...

    @parameters.setter
    def parameters(self, arg: str, /) -> None: ...

def chat_messages_from_openai(messages_json: str) -> list[ChatMessage]:
    """
    common_chat_msgs_parse_oaicompat: OpenAI chat messages (JSON text of the list) as
    ChatMessage. Raises ValueError on a malformed message.
    """

def chat_tools_from_openai(tools_json: str) -> list[ChatTool]:
    """
    common_chat_tools_parse_oaicompat: OpenAI tools (JSON text of the list) as ChatTool.
    Raises ValueError on a malformed tool.
    """

class GrammarTrigger:
    """common_grammar_trigger: what starts a lazy grammar."""

    @property
    def type(self) -> GrammarTriggerType: ...

    @property
    def value(self) -> str: ...

    @property
    def token(self) -> int:
        """the token id for TOKEN triggers (-1 otherwise)"""

class ChatInputs:
    """
    common_chat_templates_inputs: what to render. chat_template_kwargs values are JSON text.
    List and dict attributes are copies: assign new ones to change them.
    """

    def __init__(self) -> None: ...

    @property
    def messages(self) -> list[ChatMessage]: ...

    @messages.setter
    def messages(self, arg: Sequence[ChatMessage], /) -> None: ...

    @property
    def tools(self) -> list[ChatTool]: ...

    @tools.setter
    def tools(self, arg: Sequence[ChatTool], /) -> None: ...

    @property
    def grammar(self) -> str: ...

    @grammar.setter
    def grammar(self, arg: str, /) -> None: ...

    @property
    def json_schema(self) -> str:
        """JSON schema text the reply must match"""

    @json_schema.setter
    def json_schema(self, arg: str, /) -> None: ...

    @property
    def add_generation_prompt(self) -> bool: ...

    @add_generation_prompt.setter
    def add_generation_prompt(self, arg: bool, /) -> None: ...

    @property
    def use_jinja(self) -> bool:
        """False: llama.cpp's built-in formatter (no tools)"""

    @use_jinja.setter
    def use_jinja(self, arg: bool, /) -> None: ...

    @property
    def tool_choice(self) -> ChatToolChoice: ...

    @tool_choice.setter
    def tool_choice(self, arg: ChatToolChoice, /) -> None: ...

    @property
    def parallel_tool_calls(self) -> bool: ...

    @parallel_tool_calls.setter
    def parallel_tool_calls(self, arg: bool, /) -> None: ...

    @property
    def reasoning_format(self) -> ReasoningFormat: ...

    @reasoning_format.setter
    def reasoning_format(self, arg: ReasoningFormat, /) -> None: ...

    @property
    def enable_thinking(self) -> bool: ...

    @enable_thinking.setter
    def enable_thinking(self, arg: bool, /) -> None: ...

    @property
    def chat_template_kwargs(self) -> dict[str, str]: ...

    @chat_template_kwargs.setter
    def chat_template_kwargs(self, arg: Mapping[str, str], /) -> None: ...

    @property
    def add_bos(self) -> bool: ...

    @add_bos.setter
    def add_bos(self, arg: bool, /) -> None: ...

    @property
    def add_eos(self) -> bool: ...

    @add_eos.setter
    def add_eos(self, arg: bool, /) -> None: ...

class ChatParams:
    """
    common_chat_params: the rendered prompt and how to generate and parse the reply.
    """

    @property
    def grammar_triggers(self) -> list[GrammarTrigger]: ...

    @property
    def format(self) -> ChatFormat: ...

    @property
    def prompt(self) -> str: ...

    @property
    def grammar(self) -> str:
        """GBNF constraining the reply ('' for none)"""

    @property
    def grammar_lazy(self) -> bool:
        """the grammar applies from a trigger on"""

    @property
    def generation_prompt(self) -> str:
        """the prompt's tail the reply continues (the parser reads it first)"""

    @property
    def supports_thinking(self) -> bool: ...

    @property
    def thinking_start_tag(self) -> str: ...

    @property
    def thinking_end_tags(self) -> list[str]: ...

    @property
    def preserved_tokens(self) -> list[str]:
        """special-token texts the reply may contain (detokenize them as text)"""

    @property
    def additional_stops(self) -> list[str]: ...

    @property
    def parser(self) -> str:
        """
        the PEG parser of the reply, as text ('' for plain content); ChatParserParams(params) takes it
        """

class ChatParserParams:
    """common_chat_parser_params: how to parse one reply."""

    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, params: ChatParams) -> None:
        """
        The parser of the reply that ChatTemplates.apply rendered the prompt for. How it reads
        reasoning and tool calls was fixed there (ChatInputs.reasoning_format, tools).
        """

    @property
    def format(self) -> ChatFormat: ...

    @format.setter
    def format(self, arg: ChatFormat, /) -> None: ...

    @property
    def generation_prompt(self) -> str:
        """the prompt's tail the parser reads before the reply"""

    @generation_prompt.setter
    def generation_prompt(self, arg: str, /) -> None: ...

    @property
    def debug(self) -> bool:
        """log the PEG parser's work (to stderr)"""

    @debug.setter
    def debug(self, arg: bool, /) -> None: ...

def chat_parse(text: str, is_partial: bool, params: ChatParserParams) -> ChatMessage:
    """
    common_chat_parse: a reply's text as a ChatMessage (content, reasoning_content,
    tool_calls). is_partial: the reply goes on (streaming). Raises ValueError when a
    final reply does not match its format.
    """

class ChatTemplates:
    """
    common_chat_templates: a model's chat templates in llama.cpp's Jinja engine.
    """

    @staticmethod
    def from_model(model: llamanb.core.Model, override: str = '') -> ChatTemplates:
        """
        The model's templates (or override, a Jinja source or built-in name; ChatML when
        the model has none). Raises ValueError when the template does not parse.
        """

    @staticmethod
    def from_source(source: str, bos_token: str = '', eos_token: str = '') -> ChatTemplates:
        """
        Templates from a Jinja source (or a built-in name), with the given BOS/EOS text.
        """

    def source(self, variant: str = '') -> str:
        """The template's source ('tool_use': the model's tool template, if any)."""

    @property
    def was_explicit(self) -> bool:
        """The model had a template or one was given (not the ChatML fallback)."""

    @property
    def caps(self) -> dict[str, bool]:
        """
        What the template supports: supports_tools, supports_parallel_tool_calls, ...
        """

    @property
    def supports_enable_thinking(self) -> bool:
        """The template switches thinking on and off."""

    def apply(self, inputs: ChatInputs) -> ChatParams:
        """
        common_chat_templates_apply: render inputs; the prompt, grammar, triggers, stops and
        parser of the reply. Raises ValueError when the template cannot render them.
        """

def json_schema_to_grammar(schema_json: str) -> str:
    """
    llama.cpp's JSON schema to GBNF converter (common/json-schema-to-grammar). Raises
    ValueError on a schema it cannot convert.
    """

class SpeculativeType(enum.IntEnum):
    """
    common_speculative_type: how drafts are made. llamanb offers DRAFT_SIMPLE (a smaller model with the same vocabulary) and the NGRAM_* self-speculation types; the others need models with their own drafting heads.
    """

    NONE = 0

    DRAFT_SIMPLE = 1
    """a standalone draft model"""

    DRAFT_EAGLE3 = 2
    """Eagle3 head (not offered)"""

    DRAFT_MTP = 3
    """multi-token prediction head (not offered)"""

    DRAFT_DFLASH = 4
    """DFlash (not offered)"""

    DRAFT_DSPARK = 5
    """DSpark (not offered)"""

    NGRAM_SIMPLE = 6
    """the last n-gram looked up in the context"""

    NGRAM_MAP_K = 7
    """a map of the context's n-grams (keys only)"""

    NGRAM_MAP_K4V = 8
    """a map of n-grams to up to 4 m-gram values"""

    NGRAM_MOD = 9
    """a hashed n-gram pool shared across requests"""

    NGRAM_CACHE = 10
    """a 3-level n-gram cache of the context"""

def speculative_type_from_name(name: str) -> SpeculativeType:
    """
    The type llama.cpp names `name` ("ngram-mod", "draft-simple", ...); ValueError if unknown.
    """

def speculative_type_name(type: SpeculativeType) -> str:
    """llama.cpp's name of a speculative type."""

class SpeculativeDraftParams:
    """common_params_speculative_draft: draft-model settings."""

    def __init__(self) -> None: ...

    @property
    def n_max(self) -> int:
        """Most tokens drafted per step."""

    @n_max.setter
    def n_max(self, arg: int, /) -> None: ...

    @property
    def n_min(self) -> int:
        """Drafts shorter than this are dropped."""

    @n_min.setter
    def n_min(self, arg: int, /) -> None: ...

    @property
    def p_min(self) -> float:
        """
        Drafting stops at a token the draft model gives less probability than this.
        """

    @p_min.setter
    def p_min(self, arg: float, /) -> None: ...

class NgramMapParams:
    """
    common_params_speculative_ngram_map: ngram-simple and ngram-map-* settings.
    """

    def __init__(self) -> None: ...

    @property
    def size_n(self) -> int:
        """Length of the n-gram looked up."""

    @size_n.setter
    def size_n(self, arg: int, /) -> None: ...

    @property
    def size_m(self) -> int:
        """Length of the m-gram drafted after it."""

    @size_m.setter
    def size_m(self, arg: int, /) -> None: ...

    @property
    def min_hits(self) -> int:
        """Occurrences an n-gram needs before it drafts (ngram-map-*)."""

    @min_hits.setter
    def min_hits(self, arg: int, /) -> None: ...

class NgramModParams:
    """common_params_speculative_ngram_mod: ngram-mod settings."""

    def __init__(self) -> None: ...

    @property
    def n_match(self) -> int:
        """Length of the n-gram matched."""

    @n_match.setter
    def n_match(self, arg: int, /) -> None: ...

    @property
    def n_max(self) -> int:
        """Most tokens drafted."""

    @n_max.setter
    def n_max(self, arg: int, /) -> None: ...

    @property
    def n_min(self) -> int:
        """Drafts shorter than this are dropped."""

    @n_min.setter
    def n_min(self, arg: int, /) -> None: ...

class SpeculativeParams:
    """
    common_params_speculative: the types to use (tried in llama.cpp's order: n-gram types first, then the draft model) and their settings, with llama.cpp's defaults.
    """

    def __init__(self) -> None: ...

    @property
    def types(self) -> list[SpeculativeType]:
        """The types in use (a copy; assign a new list)."""

    @types.setter
    def types(self, arg: Sequence[SpeculativeType], /) -> None: ...

    @property
    def draft(self) -> SpeculativeDraftParams: ...

    @draft.setter
    def draft(self, arg: SpeculativeDraftParams, /) -> None: ...

    @property
    def ngram_simple(self) -> NgramMapParams: ...

    @ngram_simple.setter
    def ngram_simple(self, arg: NgramMapParams, /) -> None: ...

    @property
    def ngram_map_k(self) -> NgramMapParams: ...

    @ngram_map_k.setter
    def ngram_map_k(self, arg: NgramMapParams, /) -> None: ...

    @property
    def ngram_map_k4v(self) -> NgramMapParams: ...

    @ngram_map_k4v.setter
    def ngram_map_k4v(self, arg: NgramMapParams, /) -> None: ...

    @property
    def ngram_mod(self) -> NgramModParams: ...

    @ngram_mod.setter
    def ngram_mod(self, arg: NgramModParams, /) -> None: ...

    @property
    def n_max(self) -> int:
        """The longest draft these settings allow."""

class Speculative:
    """
    common_speculative: drafts tokens for sequences of a target context, from a draft
    model's context (DRAFT_SIMPLE) or from n-grams of the history (NGRAM_*).

    Per step of a sequence: draft() after the last sampled token; decode that token and
    the draft on the target with an output for each; process() the same tokens (the
    draft context mirrors the target's cache); core.fast.sample_and_accept_n(); accept() how
    many draft tokens the target kept; remove the rejected positions from both caches.
    Calls release the GIL; the contexts stay alive while this object lives.
    """

    def __init__(self, params: SpeculativeParams, target: llamanb.core.Context, draft: llamanb.core.Context | None = None, n_seq: int = 1) -> None:
        """
        Set up the types of params for n_seq sequences of target; draft-simple needs draft,
        a context of a model with the same vocabulary holding n_seq sequences. ValueError if
        the settings or vocabularies do not fit.
        """

    @overload
    def begin(self, seq_id: int, prompt: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> None: ...

    @overload
    def begin(self, seq_id: int, prompt: Sequence[int]) -> None:
        """
        Start a generation of seq_id from prompt (the tokens in the target's cache). The
        n-gram types index it.
        """

    @overload
    def draft(self, seq_id: int, prompt: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], id_last: int, n_max: int = -1, pos0: int = -1) -> Annotated[NDArray[numpy.int32], dict(shape=(None,))]: ...

    @overload
    def draft(self, seq_id: int, prompt: Sequence[int], id_last: int, n_max: int = -1, pos0: int = -1) -> Annotated[NDArray[numpy.int32], dict(shape=(None,))]:
        """
        Draft tokens to follow id_last, the token sampled after prompt (the history in the
        target's cache, which only grows between begin() calls). At most n_max tokens (-1:
        each type's own limit; 0: none); possibly none. pos0 is id_last's position in the
        draft context (-1: right after what it holds); the draft context's cache is left as
        it was. GIL released.
        """

    def draft_many(self, requests: Sequence[tuple[int, Sequence[int], int, int]]) -> list[Annotated[NDArray[numpy.int32], dict(shape=(None,))]]:
        """
        draft() for several sequences at once: requests holds (seq_id, prompt, id_last, n_max)
        per sequence (each sequence once; pos0 as draft()'s default). One call into
        llama.cpp, so draft-simple decodes the sequences' drafts together. Returns the drafts
        in the order of requests. GIL released.
        """

    @overload
    def process(self, tokens: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], pos0: int = -1, seq_id: int = 0) -> None: ...

    @overload
    def process(self, tokens: Sequence[int], pos0: int = -1, seq_id: int = 0) -> None:
        """
        Feed the draft side the tokens the target just decoded for seq_id from pos0 (-1:
        right after what the draft context holds). A no-op for the n-gram types. GIL released.
        """

    def process_batch(self, batch: llamanb.core.Batch, seq_ids: Sequence[int]) -> None:
        """
        process() for every entry of batch (which the target just decoded) that belongs to one
        of seq_ids: the draft context mirrors those sequences in one decode. Each entry must
        belong to one sequence, and each sequence's entries must continue what the draft side
        holds. GIL released.
        """

    def accept(self, seq_id: int, n_accepted: int) -> None:
        """
        Report how many tokens of seq_id's last draft the target kept (0..len(draft)).
        """

    def close(self) -> None:
        """Free it. Idempotent."""

    @property
    def closed(self) -> bool:
        """True after close()."""

    def __enter__(self) -> Speculative: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

    @property
    def types(self) -> list[SpeculativeType]:
        """The types in use."""

    @property
    def n_seq(self) -> int:
        """Sequences it drafts for."""

    @property
    def n_max(self) -> int:
        """The longest draft its implementations make."""

    @property
    def n_drafts(self) -> int:
        """Drafts made (non-empty)."""

    @property
    def n_drafted(self) -> int:
        """Tokens drafted."""

    @property
    def n_accept_calls(self) -> int:
        """Drafts the target verified (accept() after a non-empty draft)."""

    @property
    def n_accepted(self) -> int:
        """Drafted tokens the target kept."""

    def __repr__(self) -> str: ...
