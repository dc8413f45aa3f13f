// Running batches through a context (decode/encode, GIL released, abortable) and
// reading what they output: logits and embeddings as zero-copy views, and the
// results of backend samplers. Bound as Context methods in context.cpp.
#include "context.h"

namespace {

// Outputs a batch produces: llama.cpp sizes its output buffer by this. With
// embeddings on every token is output; without per-token flags only the last.
int64_t outputs_of(const Context &c, const llama_batch &b) {
    if (c.embeddings) return b.n_tokens;
    if (!b.logits) return 1;
    int64_t n = 0;
    for (int32_t i = 0; i < b.n_tokens; ++i) n += b.logits[i] != 0;
    return n;
}

}  // namespace

void validate_batch(Context &c, const llama_batch &b) {
    c.check_open();
    if (b.n_tokens <= 0) throw nb::value_error("batch is empty");
    if (b.token) check_tokens(llama_model_get_vocab(c.model->ptr), b.token, (size_t) b.n_tokens);
    const uint32_t n_batch = c.n_batch, n_seq = c.n_seq_max;
    if ((uint32_t) b.n_tokens > n_batch)
        throw nb::value_error(("batch of " + std::to_string(b.n_tokens) + " tokens exceeds n_batch=" +
                               std::to_string(n_batch) + "; split it or create the context with a larger n_batch")
                                  .c_str());
    if (b.seq_id) {
        for (int32_t i = 0; i < b.n_tokens; ++i)
            for (int32_t j = 0; j < b.n_seq_id[i]; ++j)
                if (b.seq_id[i][j] < 0 || (uint32_t) b.seq_id[i][j] >= n_seq)
                    throw nb::index_error(("sequence id " + std::to_string(b.seq_id[i][j]) + " at batch row " +
                                           std::to_string(i) + " out of range [0, " + std::to_string(n_seq) + ")")
                                              .c_str());
    }
    if ((uint32_t) b.n_tokens > c.n_ubatch) {
        bool causal = c.locked([](llama_context *ctx) { return llama_get_causal_attn(ctx); });
        if (!causal)
            throw nb::value_error(("non-causal attention needs the whole batch in one ubatch: " +
                                   std::to_string(b.n_tokens) + " tokens > n_ubatch=" + std::to_string(c.n_ubatch))
                                      .c_str());
    }
    int64_t outputs = outputs_of(c, b);
    if (c.live_views > 0 && outputs > c.output_capacity)
        throw LlamaError("this batch needs more outputs (" + std::to_string(outputs) +
                         ") than the context has produced before, which reallocates llama.cpp's output "
                         "buffer; " +
                         std::to_string(c.live_views) +
                         " zero-copy logits/embeddings view(s) are alive. Delete them or take copies first.");
}

namespace {

// A read-only float view into llama.cpp's output buffer, owned by the context.
FloatView output_view(nb::handle ctx_obj, Context &c, float *data, size_t n) {
    struct ViewOwner {
        nb::object ctx;
    };
    c.live_views += 1;
    auto *owner = new ViewOwner{nb::borrow(ctx_obj)};
    nb::capsule cap(owner, [](void *p) noexcept {
        auto *o = static_cast<ViewOwner *>(p);
        Context &ctx = nb::cast<Context &>(o->ctx);
        ctx.live_views -= 1;
        if (ctx.live_views == 0 && ctx.close_requested) ctx.free_now();
        delete o;
    });
    // const float: numpy marks it read-only, since writes would corrupt llama.cpp's state.
    return FloatView(data, {n}, cap);
}

template <typename Getter>
nb::object float_output(nb::handle self, Getter get, size_t n, bool copy, const char *what) {
    Context &c = nb::cast<Context &>(self);
    float *data = c.locked([&](llama_context *ctx) {
        clear_last_error_log();
        return get(ctx);
    });
    if (!data) throw nb::index_error(with_log_reason(std::string("no ") + what + " for that index").c_str());
    if (copy) {
        std::vector<float> v(data, data + n);
        return nb::cast(to_numpy(std::move(v)));
    }
    return nb::cast(output_view(self, c, data, n));
}

template <typename Getter>
nb::object float_output_2d(nb::handle self, Getter get, size_t rows, size_t cols, bool copy, const char *what) {
    Context &c = nb::cast<Context &>(self);
    float *data = c.locked([&](llama_context *ctx) { return get(ctx); });
    if (!data) throw nb::index_error((std::string("no ") + what).c_str());
    if (copy) {
        auto *heap = new std::vector<float>(data, data + rows * cols);
        nb::capsule owner(heap, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
        return nb::cast(nb::ndarray<nb::numpy, float, nb::ndim<2>>(heap->data(), {rows, cols}, owner));
    }
    FloatView flat = output_view(self, c, data, rows * cols);
    return nb::cast(flat).attr("reshape")(rows, cols);
}

// Probabilities or logits of output i: Get returns them (or null), Count their number.
template <float *(*Get)(llama_context *, int32_t), uint32_t (*Count)(llama_context *, int32_t)>
std::optional<nb::ndarray<nb::numpy, float, nb::ndim<1>>> get_sampled_floats_ith(Context &c, int32_t i) {
    std::vector<float> v;
    bool ok = c.locked([&](llama_context *ctx) {
        const float *d = Get(ctx, i);
        if (!d) return false;
        v.assign(d, d + Count(ctx, i));
        return true;
    });
    if (!ok) return std::nullopt;
    return to_numpy(std::move(v));
}

}  // namespace

int32_t decode_locked(Context &c, llama_context *ctx, const llama_batch &b, Pass pass) {
    int32_t rc = pass == Pass::Decode ? llama_decode(ctx, b) : llama_encode(ctx, b);
    // Layers on RPC workers: outputs must have arrived before they are trusted.
    if (!c.model->rpc_endpoints.empty()) llama_synchronize(ctx);
    return rc;
}

void finish_batch(Context &c, const llama_batch &b, int32_t rc, const char *what) {
    c.model->check_rpc();
    c.output_capacity = std::max<int64_t>(c.output_capacity, outputs_of(c, b));
    c.last_n_outputs = rc == 0 ? outputs_of(c, b) : 0;
    check_decode_result(c, rc, what);
}

void run_batch(Context &c, const llama_batch &b, Pass pass) {
    validate_batch(c, b);
    int32_t rc = c.locked([&](llama_context *ctx) {
        clear_last_error_log();
        c.abort.last_poll_us = llama_time_us();
        return decode_locked(c, ctx, b, pass);
    });
    finish_batch(c, b, rc, pass == Pass::Decode ? "llama_decode" : "llama_encode");
}

void decode_tokens(Context &c, const int32_t *tokens, size_t n) {
    if (n > (size_t) INT32_MAX) throw nb::value_error("too many tokens");
    llama_batch b = llama_batch_get_one(const_cast<llama_token *>(tokens), (int32_t) n);
    run_batch(c, b, Pass::Decode);
}

nb::object get_logits_ith(nb::handle self, int32_t i, bool copy) {
    Context &c = nb::cast<Context &>(self);
    return float_output(
        self, [i](llama_context *ctx) { return llama_get_logits_ith(ctx, i); }, (size_t) c.n_vocab, copy, "logits");
}

nb::object get_embeddings_ith(nb::handle self, int32_t i, bool copy) {
    Context &c = nb::cast<Context &>(self);
    c.check_open();
    size_t n = (size_t) llama_model_n_embd_out(c.model->ptr);
    return float_output(
        self, [i](llama_context *ctx) { return llama_get_embeddings_ith(ctx, i); }, n, copy, "embeddings");
}

nb::object get_embeddings_seq(nb::handle self, llama_seq_id seq, bool copy) {
    Context &c = nb::cast<Context &>(self);
    c.locked([&](llama_context *ctx) { check_seq(ctx, seq, false); });
    c.check_open();
    size_t n = (size_t) llama_model_n_embd_out(c.model->ptr);
    uint32_t pooling = c.locked([](llama_context *ctx) { return (uint32_t) llama_pooling_type(ctx); });
    if (pooling == LLAMA_POOLING_TYPE_RANK) n = llama_model_n_cls_out(c.model->ptr);
    return float_output(
        self, [seq](llama_context *ctx) { return llama_get_embeddings_seq(ctx, seq); }, n, copy, "pooled embeddings");
}

nb::object get_logits(nb::handle self, bool copy) {
    Context &c = nb::cast<Context &>(self);
    c.check_open();
    size_t rows = (size_t) c.last_n_outputs;
    if (rows == 0) throw nb::index_error("no logits: decode a batch that requests outputs first");
    return float_output_2d(
        self, [](llama_context *ctx) { return llama_get_logits(ctx); }, rows, (size_t) c.n_vocab, copy, "logits");
}

nb::object get_embeddings(nb::handle self, bool copy) {
    Context &c = nb::cast<Context &>(self);
    c.check_open();
    size_t rows = (size_t) c.last_n_outputs;
    if (rows == 0) throw nb::index_error("no embeddings: decode a batch that requests outputs first");
    size_t n = (size_t) llama_model_n_embd_out(c.model->ptr);
    return float_output_2d(
        self, [](llama_context *ctx) { return llama_get_embeddings(ctx); }, rows, n, copy, "embeddings");
}

// ---- results of backend samplers (set_sampler), copied

std::optional<llama_token> get_sampled_token_ith(Context &c, int32_t i) {
    llama_token t = c.locked([&](llama_context *ctx) { return llama_get_sampled_token_ith(ctx, i); });
    if (t == LLAMA_TOKEN_NULL) return std::nullopt;
    return t;
}

std::optional<nb::ndarray<nb::numpy, float, nb::ndim<1>>> get_sampled_probs_ith(Context &c, int32_t i) {
    return get_sampled_floats_ith<llama_get_sampled_probs_ith, llama_get_sampled_probs_count_ith>(c, i);
}

std::optional<nb::ndarray<nb::numpy, float, nb::ndim<1>>> get_sampled_logits_ith(Context &c, int32_t i) {
    return get_sampled_floats_ith<llama_get_sampled_logits_ith, llama_get_sampled_logits_count_ith>(c, i);
}

nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> get_sampled_candidates_ith(Context &c, int32_t i) {
    std::vector<llama_token> v = c.locked([&](llama_context *ctx) {
        const llama_token *d = llama_get_sampled_candidates_ith(ctx, i);
        uint32_t n = llama_get_sampled_candidates_count_ith(ctx, i);
        return std::vector<llama_token>(d, d + (d ? n : 0));
    });
    return to_numpy(std::move(v));
}
