// llama.cpp's built-in chat templates (llama_chat_apply_template): a fallback
// for models without a Jinja template; the facade renders Jinja templates itself.
#include "common.h"

#include <nanobind/stl/pair.h>

void init_chat(nb::module_ &m) {
    m.def("chat_apply_template", [](const std::string &tmpl, const std::vector<std::pair<std::string, std::string>> &messages,
                                    bool add_assistant) {
            std::vector<llama_chat_message> chat;
            chat.reserve(messages.size());
            size_t total = 0;
            for (auto &[role, content] : messages) {
                chat.push_back({role.c_str(), content.c_str()});
                total += role.size() + content.size();
            }
            std::string buf(2 * total + 256, '\0');
            int32_t n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_assistant, buf.data(), (int32_t) buf.size());
            if (n < 0) throw nb::value_error(("chat template not supported by llama.cpp's built-in formatter: '" + tmpl.substr(0, 60) + "'").c_str());
            if ((size_t) n > buf.size()) {
                buf.resize((size_t) n);
                n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_assistant, buf.data(), (int32_t) buf.size());
            }
            buf.resize((size_t) n);
            return buf;
        }, "template"_a, "messages"_a, "add_assistant"_a = true,
        "Format (role, content) messages with a built-in template, given by name (see\n"
        "chat_builtin_templates()) or by a known Jinja source. No Jinja engine: raises\n"
        "ValueError for templates llama.cpp does not recognise.");
    m.def("chat_builtin_templates", []() {
            int32_t n = llama_chat_builtin_templates(nullptr, 0);
            std::vector<const char *> names((size_t) n);
            llama_chat_builtin_templates(names.data(), names.size());
            return std::vector<std::string>(names.begin(), names.end());
        }, "Names of llama.cpp's built-in chat templates.");
}
