// The token loop in C++: sample -> accept -> decode, several tokens per call, with the
// GIL released throughout. What a Python loop pays per token between two decodes
// (Python code and two crossings into the module, all on caches the decode just
// flushed: ~70 us on the default model, more than the sampling itself) is paid once
// per call. The facade (generation.py) turns the tokens into text and applies stop
// strings, logprobs and limits as before; bound as core.fast.sample_and_decode.
#include "binding.h"
#include "context.h"
#include "sampler.h"

#include <chrono>

namespace {

using clock_type = std::chrono::steady_clock;

// Decodes `pending` (the last sampled token(s), not yet in the KV cache), then samples
// with `s` from the last output and decodes each sampled token, until one of: an
// end-of-generation token, `max_tokens` sampled, or `max_ms` elapsed since the first
// sample. Returns the sampled tokens; all but the last were decoded (the last is the
// caller's next `pending`), exactly the tokens and sampler state of a Python loop of
// Sampler.sample + Context.decode_tokens.
std::vector<llama_token> sample_and_decode(Context &c, Sampler &s, const std::vector<llama_token> &pending,
                                           int32_t max_tokens, double max_ms) {
    c.check_open();
    if (max_tokens < 1) throw nb::value_error("max_tokens must be >= 1");
    if (!(max_ms >= 0)) throw nb::value_error("max_ms must be >= 0");
    const llama_vocab *vocab = llama_model_get_vocab(c.model->ptr);
    llama_token sampled = 0;  // the one-token batch of each sampled token
    const llama_batch first = llama_batch_get_one(const_cast<llama_token *>(pending.data()), (int32_t) pending.size());
    const llama_batch next = llama_batch_get_one(&sampled, 1);
    if (!pending.empty()) validate_batch(c, first);
    validate_batch(c, next);  // live views: a one-token batch must not grow the output buffer
    std::vector<llama_token> out;
    out.reserve((size_t) std::min(max_tokens, 64));
    int32_t rc = 0;
    s.locked([&](llama_sampler *smpl) {
        std::lock_guard<CallMutex> cg(c.mutex);  // lock order: sampler, then context
        if (!c.ptr || c.close_requested) throw ClosedError("Context is closed");
        llama_context *ctx = c.ptr;
        clear_last_error_log();
        // The abort callback polls Python (Ctrl-C) every 20 ms of decoding, across tokens.
        c.abort.last_poll_us = llama_time_us();
        if (!pending.empty() && (rc = decode_locked(c, ctx, first, Pass::Decode)) != 0) return;
        const auto t0 = clock_type::now();
        for (int32_t i = 0; i < max_tokens; ++i) {
            llama_token token = sample_locked_public(s, smpl, ctx, -1);
            if (token == LLAMA_TOKEN_NULL) return;  // a Python sampler raised: re-raised below
            out.push_back(token);
            if (llama_vocab_is_eog(vocab, token) || i + 1 == max_tokens) return;
            if (std::chrono::duration<double, std::milli>(clock_type::now() - t0).count() >= max_ms) return;
            sampled = token;
            if ((rc = decode_locked(c, ctx, next, Pass::Decode)) != 0) return;
        }
    });
    raise_py_sampler_error();
    finish_batch(c, next, rc, "llama_decode");
    return out;
}

}  // namespace

void init_token_loop(nb::module_ &m) {
    m.def("sample_and_decode", &sample_and_decode, "ctx"_a, "sampler"_a, "pending"_a, "max_tokens"_a, "max_ms"_a,
          "The token loop in C++ (GIL released): decode `pending` (tokens sampled before and\n"
          "not yet decoded; may be empty), then repeat: sample and accept a token from the\n"
          "last output with `sampler`, and decode it, until an end-of-generation token,\n"
          "`max_tokens` sampled, or `max_ms` milliseconds since the first sample.\n\n"
          "Returns the sampled tokens. All but the last were decoded; the last was not (pass\n"
          "it as `pending` to go on). The tokens and the sampler's state are those of a loop\n"
          "of Sampler.sample(ctx, -1) and Context.decode_tokens([token]).\n\n"
          "Raises as Context.decode_tokens and Sampler.sample do; after an exception the\n"
          "context holds an unknown number of the sampled tokens (clear it).");
}
