// Chat: llama.cpp's built-in template formatter (llama.h) and its chat engine
// (common/chat.h): Jinja templates rendered as llama-server renders them, with tools,
// tool_choice, JSON schemas and reasoning; each model's tool-call format with its
// grammar and lazy triggers; parsers of final and partial output. The facade decides
// policy (chat.py, chat_prompt.py, chat_reply.py); these are thin translations.
#include "binding.h"
#include "model.h"

#include "chat.h"  // llama.cpp's common/chat.h
#include "json-schema-to-grammar.h"
#include "log.h"

#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>

namespace {

// Every failure of the chat engine (template syntax, rendering, a bad message or
// schema, output that does not parse) is the caller's input: ValueError.
template <typename F>
auto value_errors(F &&f) -> decltype(f()) {
    try {
        return f();
    } catch (const nb::python_error &) {
        throw;
    } catch (const std::exception &e) {
        throw nb::value_error(e.what());
    }
}

// Holds a common_chat_templates. Immutable once made, so a call that runs without
// the GIL needs no lock: the Python caller's reference keeps it alive.
struct ChatTemplates {
    common_chat_templates_ptr ptr;
};

// A list attribute as a copy each way. nanobind's def_rw would hand out references into
// the vector, which the next assignment frees (Python would then read freed memory).
template <typename C, typename T>
void def_list(nb::class_<C> &cls, const char *name, std::vector<T> C::*member, const char *doc = "") {
    cls.def_prop_rw(
        name, [member](const C &c) { return c.*member; },
        [member](C &c, std::vector<T> v) { c.*member = std::move(v); }, doc);
}

std::vector<common_chat_msg> messages_from_openai(const std::string &json) {
    return value_errors([&] { return common_chat_msgs_parse_oaicompat(common_json::parse(json)); });
}

}  // namespace

void init_chat_template(nb::module_ &m) {
    m.def(
        "chat_apply_template",
        [](const std::string &tmpl, const std::vector<std::pair<std::string, std::string>> &messages,
           bool add_assistant) {
            std::vector<llama_chat_message> chat;
            chat.reserve(messages.size());
            size_t total = 0;
            for (auto &[role, content] : messages) {
                chat.push_back({role.c_str(), content.c_str()});
                total += role.size() + content.size();
            }
            std::string buf(2 * total + 256, '\0');
            int32_t n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_assistant, buf.data(),
                                                  (int32_t) buf.size());
            if (n < 0)
                throw nb::value_error(
                    ("chat template not supported by llama.cpp's built-in formatter: '" + tmpl.substr(0, 60) + "'")
                        .c_str());
            if ((size_t) n > buf.size()) {
                buf.resize((size_t) n);
                n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_assistant, buf.data(),
                                              (int32_t) buf.size());
            }
            buf.resize((size_t) n);
            return buf;
        },
        "template"_a, "messages"_a, "add_assistant"_a = true,
        "Format (role, content) messages with a built-in template, given by name (see\n"
        "chat_builtin_templates()) or by a known Jinja source. No Jinja engine: raises\n"
        "ValueError for templates llama.cpp does not recognise.");
    m.def(
        "chat_builtin_templates",
        []() {
            int32_t n = llama_chat_builtin_templates(nullptr, 0);
            std::vector<const char *> names((size_t) n);
            llama_chat_builtin_templates(names.data(), names.size());
            return std::vector<std::string>(names.begin(), names.end());
        },
        "Names of llama.cpp's built-in chat templates.");
}

void init_chat(nb::module_ &m) {
    // common's own logger prints from a worker thread straight to stdout/stderr; the
    // engine's failures reach Python as exceptions, so it stays quiet.
    common_log_set_verbosity_thold(-1);

    // ---- enums ------------------------------------------------------------------
    nb::enum_<common_chat_tool_choice>(m, "ChatToolChoice",
                                       "common_chat_tool_choice: whether the model may, must or must not call a tool.")
        .value("AUTO", COMMON_CHAT_TOOL_CHOICE_AUTO)
        .value("REQUIRED", COMMON_CHAT_TOOL_CHOICE_REQUIRED)
        .value("NONE", COMMON_CHAT_TOOL_CHOICE_NONE);
    nb::enum_<common_reasoning_format>(m, "ReasoningFormat",
                                       "common_reasoning_format: where a thinking model's reasoning goes.")
        .value("NONE", COMMON_REASONING_FORMAT_NONE, "left in the content")
        .value("AUTO", COMMON_REASONING_FORMAT_AUTO, "extracted into reasoning_content")
        .value("DEEPSEEK_LEGACY", COMMON_REASONING_FORMAT_DEEPSEEK_LEGACY)
        .value("DEEPSEEK", COMMON_REASONING_FORMAT_DEEPSEEK);
    nb::enum_<common_chat_format>(m, "ChatFormat", "common_chat_format: how the engine parses a reply.")
        .value("CONTENT_ONLY", COMMON_CHAT_FORMAT_CONTENT_ONLY)
        .value("PEG_SIMPLE", COMMON_CHAT_FORMAT_PEG_SIMPLE)
        .value("PEG_NATIVE", COMMON_CHAT_FORMAT_PEG_NATIVE)
        .value("PEG_GEMMA4", COMMON_CHAT_FORMAT_PEG_GEMMA4)
        .value("PEG_MINIMAX_M3", COMMON_CHAT_FORMAT_PEG_MINIMAX_M3);
    nb::enum_<common_grammar_trigger_type>(m, "GrammarTriggerType", "common_grammar_trigger_type.")
        .value("TOKEN", COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN, "a token id")
        .value("WORD", COMMON_GRAMMAR_TRIGGER_TYPE_WORD, "a literal string")
        .value("PATTERN", COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN, "a regex matched anywhere")
        .value("PATTERN_FULL", COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL, "a regex matched against the whole output");

    // ---- messages -----------------------------------------------------------------
    nb::class_<common_chat_tool_call>(m, "ChatToolCall",
                                      "common_chat_tool_call: a function call (arguments as JSON text).")
        .def(nb::init<>())
        .def(
            "__init__",
            [](common_chat_tool_call *t, std::string name, std::string arguments, std::string id) {
                new (t) common_chat_tool_call{std::move(name), std::move(arguments), std::move(id)};
            },
            "name"_a, "arguments"_a, "id"_a = "")
        .def_rw("name", &common_chat_tool_call::name)
        .def_rw("arguments", &common_chat_tool_call::arguments)
        .def_rw("id", &common_chat_tool_call::id)
        .def("__repr__", [](const common_chat_tool_call &t) {
            return nb::str("ChatToolCall(name={!r}, arguments={!r}, id={!r})").format(t.name, t.arguments, t.id);
        });
    nb::class_<common_chat_msg_content_part>(m, "ChatContentPart",
                                             "common_chat_msg_content_part: a typed part of a message.")
        .def(nb::init<>())
        .def_rw("type", &common_chat_msg_content_part::type)
        .def_rw("text", &common_chat_msg_content_part::text);
    auto msg = nb::class_<common_chat_msg>(
        m, "ChatMessage", "common_chat_msg. List attributes are copies: assign a new list to change one.");
    def_list(msg, "content_parts", &common_chat_msg::content_parts);
    def_list(msg, "tool_calls", &common_chat_msg::tool_calls);
    msg.def(nb::init<>())
        .def_rw("role", &common_chat_msg::role)
        .def_rw("content", &common_chat_msg::content)
        .def_rw("reasoning_content", &common_chat_msg::reasoning_content)
        .def_rw("tool_name", &common_chat_msg::tool_name)
        .def_rw("tool_call_id", &common_chat_msg::tool_call_id)
        .def_prop_ro("empty", &common_chat_msg::empty, "No content, reasoning or tool calls.")
        .def(
            "to_openai_json",
            [](const common_chat_msg &msg) { return value_errors([&] { return msg.to_json_oaicompat().dump(); }); },
            "The message as OpenAI chat JSON text.");
    nb::class_<common_chat_msg_diff>(m, "ChatMessageDiff",
                                     "common_chat_msg_diff: what a longer parse of the same reply added.")
        .def_ro("reasoning_content_delta", &common_chat_msg_diff::reasoning_content_delta)
        .def_ro("content_delta", &common_chat_msg_diff::content_delta)
        .def_prop_ro(
            "tool_call_index",
            [](const common_chat_msg_diff &d) -> std::optional<size_t> {
                if (d.tool_call_index == std::string::npos) return std::nullopt;
                return d.tool_call_index;
            },
            "The tool call this diff extends (None: no tool call).")
        .def_ro("tool_call_delta", &common_chat_msg_diff::tool_call_delta,
                "The call's id and name when it starts, then argument text fragments.");
    m.def(
        "chat_message_diffs",
        [](const common_chat_msg &previous, const common_chat_msg &current) {
            return value_errors([&] { return common_chat_msg_diff::compute_diffs(previous, current); });
        },
        "previous"_a, "current"_a,
        "common_chat_msg_diff::compute_diffs: the diffs from one parse of a reply to the next.\n"
        "Raises ValueError when current does not extend previous.");

    nb::class_<common_chat_tool>(m, "ChatTool",
                                 "common_chat_tool: a function the model may call (parameters as JSON schema text).")
        .def(nb::init<>())
        .def(
            "__init__",
            [](common_chat_tool *t, std::string name, std::string description, std::string parameters) {
                new (t) common_chat_tool{std::move(name), std::move(description), std::move(parameters)};
            },
            "name"_a, "description"_a = "", "parameters"_a = "{}")
        .def_rw("name", &common_chat_tool::name)
        .def_rw("description", &common_chat_tool::description)
        .def_rw("parameters", &common_chat_tool::parameters);

    m.def("chat_messages_from_openai", &messages_from_openai, "messages_json"_a,
          "common_chat_msgs_parse_oaicompat: OpenAI chat messages (JSON text of the list) as\n"
          "ChatMessage. Raises ValueError on a malformed message.");
    m.def(
        "chat_tools_from_openai",
        [](const std::string &json) {
            return value_errors([&] { return common_chat_tools_parse_oaicompat(common_json::parse(json)); });
        },
        "tools_json"_a,
        "common_chat_tools_parse_oaicompat: OpenAI tools (JSON text of the list) as ChatTool.\n"
        "Raises ValueError on a malformed tool.");

    // ---- apply ----------------------------------------------------------------------
    nb::class_<common_grammar_trigger>(m, "GrammarTrigger", "common_grammar_trigger: what starts a lazy grammar.")
        .def_ro("type", &common_grammar_trigger::type)
        .def_ro("value", &common_grammar_trigger::value)
        .def_ro("token", &common_grammar_trigger::token, "the token id for TOKEN triggers (-1 otherwise)");

    auto inputs = nb::class_<common_chat_templates_inputs>(
        m, "ChatInputs",
        "common_chat_templates_inputs: what to render. chat_template_kwargs values are JSON text.\n"
        "List and dict attributes are copies: assign new ones to change them.");
    def_list(inputs, "messages", &common_chat_templates_inputs::messages);
    def_list(inputs, "tools", &common_chat_templates_inputs::tools);
    inputs.def(nb::init<>())
        .def_rw("grammar", &common_chat_templates_inputs::grammar)
        .def_rw("json_schema", &common_chat_templates_inputs::json_schema, "JSON schema text the reply must match")
        .def_rw("add_generation_prompt", &common_chat_templates_inputs::add_generation_prompt)
        .def_rw("use_jinja", &common_chat_templates_inputs::use_jinja,
                "False: llama.cpp's built-in formatter (no tools)")
        .def_rw("tool_choice", &common_chat_templates_inputs::tool_choice)
        .def_rw("parallel_tool_calls", &common_chat_templates_inputs::parallel_tool_calls)
        .def_rw("reasoning_format", &common_chat_templates_inputs::reasoning_format)
        .def_rw("enable_thinking", &common_chat_templates_inputs::enable_thinking)
        .def_rw("chat_template_kwargs", &common_chat_templates_inputs::chat_template_kwargs)
        .def_rw("add_bos", &common_chat_templates_inputs::add_bos)
        .def_rw("add_eos", &common_chat_templates_inputs::add_eos);

    auto params = nb::class_<common_chat_params>(
        m, "ChatParams", "common_chat_params: the rendered prompt and how to generate and parse the reply.");
    params.def_prop_ro("grammar_triggers", [](const common_chat_params &p) { return p.grammar_triggers; })
        .def_ro("format", &common_chat_params::format)
        .def_ro("prompt", &common_chat_params::prompt)
        .def_ro("grammar", &common_chat_params::grammar, "GBNF constraining the reply ('' for none)")
        .def_ro("grammar_lazy", &common_chat_params::grammar_lazy, "the grammar applies from a trigger on")
        .def_ro("generation_prompt", &common_chat_params::generation_prompt,
                "the prompt's tail the reply continues (the parser reads it first)")
        .def_ro("supports_thinking", &common_chat_params::supports_thinking)
        .def_ro("thinking_start_tag", &common_chat_params::thinking_start_tag)
        .def_ro("thinking_end_tags", &common_chat_params::thinking_end_tags)
        .def_ro("preserved_tokens", &common_chat_params::preserved_tokens,
                "special-token texts the reply may contain (detokenize them as text)")
        .def_ro("additional_stops", &common_chat_params::additional_stops)
        .def_prop_ro(
            "parser",
            [](const common_chat_params &p) {
                return p.parser.empty() || p.parser.root() == COMMON_PEG_INVALID_PARSER_ID
                           ? std::string()
                           : p.parser.dump(p.parser.root());
            },
            "the PEG parser of the reply, as text ('' for plain content); ChatParserParams(params) takes it");

    nb::class_<common_chat_parser_params>(m, "ChatParserParams", "common_chat_parser_params: how to parse one reply.")
        .def(nb::init<>())
        .def(
            "__init__",
            [](common_chat_parser_params *p, const common_chat_params &params) {
                new (p) common_chat_parser_params(params);
                p->parser = params.parser;  // the PEG parser built for this prompt (reasoning, tools, schema)
            },
            "params"_a,
            "The parser of the reply that ChatTemplates.apply rendered the prompt for. How it reads\n"
            "reasoning and tool calls was fixed there (ChatInputs.reasoning_format, tools).")
        .def_rw("format", &common_chat_parser_params::format)
        .def_prop_rw(
            "generation_prompt", [](const common_chat_parser_params &p) { return p.generation_prompt.text; },
            [](common_chat_parser_params &p, const std::string &text) {
                p.generation_prompt = common_chat_input(text);
            },
            "the prompt's tail the parser reads before the reply")
        .def_rw("debug", &common_chat_parser_params::debug, "log the PEG parser's work (to stderr)");

    m.def(
        "chat_parse",
        [](const std::string &text, bool is_partial, const common_chat_parser_params &params) {
            common_chat_parser_params own = params;  // copied with the GIL held: Python may change params meanwhile
            nb::gil_scoped_release unlocked;
            return value_errors([&] { return common_chat_parse(common_chat_input(text), is_partial, own); });
        },
        "text"_a, "is_partial"_a, "params"_a,
        "common_chat_parse: a reply's text as a ChatMessage (content, reasoning_content,\n"
        "tool_calls). is_partial: the reply goes on (streaming). Raises ValueError when a\n"
        "final reply does not match its format.");

    nb::class_<ChatTemplates>(m, "ChatTemplates",
                              "common_chat_templates: a model's chat templates in llama.cpp's Jinja engine.")
        .def_static(
            "from_model",
            [](Model &model, const std::string &override_source) {
                // The engine reads the model's template and BOS/EOS text now and keeps no pointer to it.
                return value_errors(
                    [&] { return ChatTemplates{common_chat_templates_init(model.get(), override_source)}; });
            },
            "model"_a, "override"_a = "",
            "The model's templates (or override, a Jinja source or built-in name; ChatML when\n"
            "the model has none). Raises ValueError when the template does not parse.")
        .def_static(
            "from_source",
            [](const std::string &source, const std::string &bos_token, const std::string &eos_token) {
                // An empty override means "the model's template": without a model llama.cpp aborts.
                if (source.empty()) throw nb::value_error("the chat template source is empty");
                return value_errors(
                    [&] { return ChatTemplates{common_chat_templates_init(nullptr, source, bos_token, eos_token)}; });
            },
            "source"_a, "bos_token"_a = "", "eos_token"_a = "",
            "Templates from a Jinja source (or a built-in name), with the given BOS/EOS text.")
        .def(
            "source",
            [](const ChatTemplates &t, const std::string &variant) {
                return common_chat_templates_source(t.ptr.get(), variant);
            },
            "variant"_a = "", "The template's source ('tool_use': the model's tool template, if any).")
        .def_prop_ro(
            "was_explicit", [](const ChatTemplates &t) { return common_chat_templates_was_explicit(t.ptr.get()); },
            "The model had a template or one was given (not the ChatML fallback).")
        .def_prop_ro(
            "caps", [](const ChatTemplates &t) { return common_chat_templates_get_caps(t.ptr.get()); },
            "What the template supports: supports_tools, supports_parallel_tool_calls, ...")
        .def_prop_ro(
            "supports_enable_thinking",
            [](const ChatTemplates &t) {
                return value_errors([&] { return common_chat_templates_support_enable_thinking(t.ptr.get()); });
            },
            "The template switches thinking on and off.")
        .def(
            "apply",
            [](const ChatTemplates &t, const common_chat_templates_inputs &inputs) {
                common_chat_templates_inputs own = inputs;  // copied with the GIL held
                nb::gil_scoped_release unlocked;
                return value_errors([&] { return common_chat_templates_apply(t.ptr.get(), own); });
            },
            "inputs"_a,
            "common_chat_templates_apply: render inputs; the prompt, grammar, triggers, stops and\n"
            "parser of the reply. Raises ValueError when the template cannot render them.");

    m.def(
        "json_schema_to_grammar",
        [](const std::string &schema_json) {
            return value_errors([&] { return json_schema_to_grammar(common_json::parse(schema_json), true); });
        },
        "schema_json"_a,
        "llama.cpp's JSON schema to GBNF converter (common/json-schema-to-grammar). Raises\n"
        "ValueError on a schema it cannot convert.");
}
