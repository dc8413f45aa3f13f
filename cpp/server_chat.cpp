// llama-server's converters from the other APIs it serves to a chat completion request
// (tools/server/server-chat.cpp, the only file of llama-server compiled here): the
// OpenAI Responses API and Anthropic's Messages API. llamanb's server runs the
// converted request as a chat completion and shapes the reply back
// (src/llamanb/server/responses.py, anthropic.py).
#include "binding.h"

#include "server-chat.h"  // llama.cpp's tools/server/server-chat.h

namespace {

// The body is JSON text that Python has parsed already (so nesting is bounded); every
// failure is the request's: ValueError with upstream's message.
std::string convert(const std::string &body, json (*converter)(const json &)) {
    try {
        json request = json::parse(body);
        if (!request.is_object()) throw std::invalid_argument("the request body must be a JSON object");
        return converter(request).dump();
    } catch (const std::exception &e) {
        throw nb::value_error(e.what());
    }
}

}  // namespace

void init_server_chat(nb::module_ &m) {
    m.def(
        "responses_to_chat_request",
        [](const std::string &body) { return convert(body, server_chat_convert_responses_to_chatcmpl); }, "body"_a,
        "An OpenAI Responses API request (JSON text) as the chat completion request it means\n"
        "(JSON text), converted by llama-server's own code: input items to messages,\n"
        "instructions to a system message, function tools, max_output_tokens, reasoning\n"
        "effort. Raises ValueError for input it cannot convert (previous_response_id,\n"
        "input_file, an unknown item type, ...).");
    m.def(
        "anthropic_to_chat_request",
        [](const std::string &body) { return convert(body, server_chat_convert_anthropic_to_oai); }, "body"_a,
        "An Anthropic Messages API request (JSON text) as the chat completion request it\n"
        "means (JSON text), converted by llama-server's own code: system blocks, text, image,\n"
        "thinking, tool_use and tool_result blocks, tools, tool_choice, stop_sequences,\n"
        "max_tokens (4096 when absent). Raises ValueError for input it cannot convert.");
}
