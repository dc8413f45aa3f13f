// A context's state (KV cache, outputs, RNG) as bytes and as files: the whole
// context, or one sequence. Bound as Context methods in context.cpp.
#include "context.h"

nb::bytes get_state(Context &c, std::optional<llama_seq_id> seq, uint32_t flags) {
    std::string buf = c.locked([&](llama_context *ctx) {
        if (seq) check_seq(ctx, *seq, false);
        std::string out(seq ? llama_state_seq_get_size_ext(ctx, *seq, flags) : llama_state_get_size(ctx), '\0');
        auto *dst = (uint8_t *) out.data();
        out.resize(seq ? llama_state_seq_get_data_ext(ctx, dst, out.size(), *seq, flags)
                       : llama_state_get_data(ctx, dst, out.size()));
        return out;
    });
    return nb::bytes(buf.data(), buf.size());
}

size_t set_state(Context &c, nb::bytes data, std::optional<llama_seq_id> seq, uint32_t flags, const char *what) {
    std::string copy(data.c_str(), data.size());  // the bytes object is not touched without the GIL
    const auto *src = (const uint8_t *) copy.data();
    size_t n = c.locked([&](llama_context *ctx) {
        if (seq) check_seq(ctx, *seq, false);
        clear_last_error_log();
        return seq ? llama_state_seq_set_data_ext(ctx, src, copy.size(), *seq, flags)
                   : llama_state_set_data(ctx, src, copy.size());
    });
    if (n == 0) throw LlamaError(with_log_reason(std::string(what) + ": invalid or incompatible state"));
    return n;
}

size_t save_state_file(Context &c, const std::filesystem::path &path, std::optional<llama_seq_id> seq,
                       const std::vector<llama_token> &tokens) {
    std::string p = path.string();
    size_t n = c.locked([&](llama_context *ctx) -> size_t {
        if (seq) check_seq(ctx, *seq, false);
        clear_last_error_log();
        if (seq) return llama_state_seq_save_file(ctx, p.c_str(), *seq, tokens.data(), tokens.size());
        return llama_state_save_file(ctx, p.c_str(), tokens.data(), tokens.size()) ? 1 : 0;
    });
    if (n == 0)
        throw LlamaError(
            with_log_reason((seq ? "failed to save sequence state to '" : "failed to save state to '") + p + "'"));
    return n;
}

std::vector<llama_token> load_state_file(Context &c, const std::filesystem::path &path, std::optional<llama_seq_id> seq,
                                         size_t n_token_capacity) {
    std::string p = path.string();
    if (!std::filesystem::exists(path)) {  // llama.cpp would only log that it cannot open it
        PyErr_Format(PyExc_FileNotFoundError, "state file not found: '%s'", p.c_str());
        throw nb::python_error();
    }
    std::vector<llama_token> tokens(n_token_capacity);
    size_t count = 0;
    bool ok = c.locked([&](llama_context *ctx) {
        if (seq) check_seq(ctx, *seq, false);
        clear_last_error_log();
        if (seq) return llama_state_seq_load_file(ctx, p.c_str(), *seq, tokens.data(), tokens.size(), &count) != 0;
        return llama_state_load_file(ctx, p.c_str(), tokens.data(), tokens.size(), &count);
    });
    if (!ok)
        throw LlamaError(
            with_log_reason((seq ? "failed to load sequence state from '" : "failed to load state from '") + p + "'"));
    tokens.resize(count);
    return tokens;
}
