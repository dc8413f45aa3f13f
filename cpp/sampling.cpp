// Sampling a token with a Sampler: llama_sampler_sample's steps, from a context's output
// or from a row of logits, with shortcuts that give the same token and sampler state.
#include "sampling.h"

#include "logits_scan.h"

namespace {

// llama.cpp's built-in samplers are told apart by their interface table (a static in
// llama-sampler.cpp): a name can be spoofed by a Python sampler, that pointer cannot.
template <llama_sampler *(*Make)()>
const llama_sampler_i *iface_of() {
    static const llama_sampler_i *iface = [] {
        llama_sampler *probe = Make();
        const llama_sampler_i *i = probe->iface;
        llama_sampler_free(probe);
        return i;
    }();
    return iface;
}
llama_sampler *make_greedy() { return llama_sampler_init_greedy(); }
llama_sampler *make_top_k() { return llama_sampler_init_top_k(1); }

// A greedy sampler, alone or as the only element of a chain.
bool is_plain_greedy(llama_sampler *smpl) {
    if (is_chain(smpl)) {
        if (llama_sampler_chain_n(smpl) != 1) return false;
        smpl = llama_sampler_chain_get(smpl, 0);
    }
    return smpl->iface == iface_of<make_greedy>();
}

// The k of a chain whose first sampler is llama.cpp's top-k with 1 <= k <= 128, else 0.
// top-k keeps no state and, on an array marked sorted, only cuts it to min(k, size):
// applied to a sorted array of 129 entries it tells its k (a k <= 0 leaves all 129).
int32_t head_top_k(llama_sampler *smpl) {
    if (!is_chain(smpl) || llama_sampler_chain_n(smpl) < 1) return 0;
    llama_sampler *head = llama_sampler_chain_get(smpl, 0);
    if (head->iface != iface_of<make_top_k>()) return 0;
    llama_token_data probe[max_heap_top_k + 1] = {};
    llama_token_data_array arr{probe, max_heap_top_k + 1, -1, true};
    llama_sampler_apply(head, &arr);
    return arr.size <= (size_t) max_heap_top_k ? (int32_t) arr.size : 0;
}

// Runs the chain over cur and accepts its choice: llama_sampler_sample's last steps,
// where no sampler selecting a token is a ValueError (llama.cpp asserts and aborts).
llama_token apply_and_accept(llama_sampler *smpl, std::vector<llama_token_data> &cur) {
    llama_token_data_array cur_p{cur.data(), cur.size(), -1, false};
    llama_sampler_apply(smpl, &cur_p);
    if (py_sampler_failed()) return LLAMA_TOKEN_NULL;
    if (cur_p.selected < 0 || cur_p.selected >= (int64_t) cur_p.size)
        throw nb::value_error(
            "the sampler selected no token: end the chain with a selecting sampler "
            "(greedy, dist, mirostat, ...)");
    llama_token token = cur_p.data[cur_p.selected].id;
    llama_sampler_accept(smpl, token);
    return token;
}

// Samples (and accepts) from a row of n logits: the token llama_sampler_sample would
// pick from the candidate array of all n, with two shortcuts that give the same token
// and sampler state: a chain that is only greedy takes the argmax, and a chain that
// starts with top-k (k <= 128) gets only the candidates top-k can keep.
llama_token sample_row(Sampler &s, llama_sampler *smpl, const float *logits, int32_t n) {
    if (is_plain_greedy(smpl)) {
        llama_token token = argmax(logits, n);
        llama_sampler_accept(smpl, token);
        return token;
    }
    auto &cur = s.buffer;
    int32_t k = head_top_k(smpl);
    if (!(k > 0 && k < n && top_k_candidates(logits, n, k, cur))) {
        cur.resize((size_t) n);
        for (llama_token t = 0; t < n; ++t) cur[t] = llama_token_data{t, logits[t], 0.0f};
    }
    return apply_and_accept(smpl, cur);
}

// Same steps as llama_sampler_sample, which asserts (aborts the process) when no
// sampler in the chain selects a token; here that is a ValueError.
llama_token sample_locked(Sampler &s, llama_sampler *smpl, llama_context *ctx, int32_t idx) {
    llama_token sampled = llama_get_sampled_token_ith(ctx, idx);
    if (sampled != LLAMA_TOKEN_NULL) {
        llama_sampler_accept(smpl, sampled);
        return sampled;
    }
    const float *probs = llama_get_sampled_probs_ith(ctx, idx);
    const float *slogits = llama_get_sampled_logits_ith(ctx, idx);
    const llama_token *sids = llama_get_sampled_candidates_ith(ctx, idx);
    auto &cur = s.buffer;
    if (probs) {
        uint32_t n = llama_get_sampled_probs_count_ith(ctx, idx);
        cur.resize(n);
        for (uint32_t i = 0; i < n; ++i) cur[i] = llama_token_data{sids[i], slogits[i], probs[i]};
    } else if (slogits) {
        uint32_t n = llama_get_sampled_logits_count_ith(ctx, idx);
        cur.resize(n);
        for (uint32_t i = 0; i < n; ++i) cur[i] = llama_token_data{sids[i], slogits[i], 0.0f};
    } else {
        const float *logits = llama_get_logits_ith(ctx, idx);
        if (!logits)
            throw nb::index_error(with_log_reason("no logits at output index " + std::to_string(idx) +
                                                  " (decode a batch that requests them first)")
                                      .c_str());
        int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
        return sample_row(s, smpl, logits, n_vocab);
    }
    return apply_and_accept(smpl, cur);
}

}  // namespace

llama_token sample_locked_public(Sampler &s, llama_sampler *smpl, llama_context *ctx, int32_t idx) {
    return sample_locked(s, smpl, ctx, idx);
}

llama_token sample(Sampler &s, Context &c, int32_t idx) {
    c.check_open();
    llama_token token = s.locked([&](llama_sampler *smpl) {
        std::lock_guard<CallMutex> cg(c.mutex);  // lock order: sampler, then context
        if (!c.ptr || c.close_requested) throw ClosedError("Context is closed");
        clear_last_error_log();
        return sample_locked(s, smpl, c.ptr, idx);
    });
    raise_py_sampler_error();
    return token;
}

llama_token sample_logits(Sampler &s, LogitsIn logits) {
    size_t n = logits.shape(0);
    if (n == 0 || n > (size_t) INT32_MAX) throw nb::value_error("logits must hold 1 to 2**31-1 values");
    const float *row = logits.data();
    llama_token token = s.locked([&](llama_sampler *smpl) {
        clear_last_error_log();
        return sample_row(s, smpl, row, (int32_t) n);
    });
    raise_py_sampler_error();
    return token;
}
