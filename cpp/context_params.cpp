// ContextParams (llama_context_params with llama.cpp's defaults) and the enums of its
// fields; the KV-cache size a context of given params allocates in host memory.
#include "context_params.h"
#include "weights.h"

#include <cstdlib>

namespace {

// The KV-cache types llama.cpp's own tools offer; any other value aborts deep inside it.
ggml_type kv_cache_type(int v, const char *name) {
    static const ggml_type allowed[] = {GGML_TYPE_F32,    GGML_TYPE_F16,  GGML_TYPE_BF16,
                                        GGML_TYPE_Q8_0,   GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                        GGML_TYPE_IQ4_NL, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1};
    for (ggml_type t : allowed)
        if (v == (int) t) return t;
    throw nb::value_error((std::string(name) + ": " + std::to_string(v) +
                           " is not a KV-cache type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, IQ4_NL, Q5_0, Q5_1)")
                              .c_str());
}

}  // namespace

double host_kv_cache_bytes(const llama_model *mp, const llama_context_params &p) {
    if (p.n_ctx == 0 || llama_model_n_swa(mp) > 0 || llama_model_is_recurrent(mp) || llama_model_is_hybrid(mp) ||
        !weights_in_host_memory(mp))
        return 0;
    auto meta_int = [&](const std::string &key, int64_t fallback) {
        auto v = read_c_string([&](char *b, size_t n) { return llama_model_meta_val_str(mp, key.c_str(), b, n); });
        return v && !v->empty() ? std::atoll(v->c_str()) : fallback;
    };
    auto arch =
        read_c_string([&](char *b, size_t n) { return llama_model_meta_val_str(mp, "general.architecture", b, n); });
    const int64_t head = llama_model_n_embd(mp) / std::max(1, llama_model_n_head(mp));
    const int64_t head_k = arch ? meta_int(*arch + ".attention.key_length", head) : head;
    const int64_t head_v = arch ? meta_int(*arch + ".attention.value_length", head) : head;
    const int64_t n_kv = llama_model_n_head_kv(mp);
    const double per_token_layer =
        (double) ggml_row_size(p.type_k, head_k * n_kv) + (double) ggml_row_size(p.type_v, head_v * n_kv);
    return (double) p.n_ctx * llama_model_n_layer(mp) * per_token_layer;
}

#define CPARAM(name, doc)                                 \
    def_prop_rw(                                          \
        #name, [](ContextParams &s) { return s.p.name; }, \
        [](ContextParams &s, decltype(llama_context_params::name) v) { s.p.name = v; }, doc)

void init_context_params(nb::module_ &m) {
    nb::enum_<enum llama_pooling_type>(m, "PoolingType", nb::is_arithmetic(), "How embeddings are pooled per sequence.")
        .value("UNSPECIFIED", LLAMA_POOLING_TYPE_UNSPECIFIED)
        .value("NONE", LLAMA_POOLING_TYPE_NONE)
        .value("MEAN", LLAMA_POOLING_TYPE_MEAN)
        .value("CLS", LLAMA_POOLING_TYPE_CLS)
        .value("LAST", LLAMA_POOLING_TYPE_LAST)
        .value("RANK", LLAMA_POOLING_TYPE_RANK);
    nb::enum_<llama_attention_type>(m, "AttentionType", nb::is_arithmetic(), "Causal or non-causal attention.")
        .value("UNSPECIFIED", LLAMA_ATTENTION_TYPE_UNSPECIFIED)
        .value("CAUSAL", LLAMA_ATTENTION_TYPE_CAUSAL)
        .value("NON_CAUSAL", LLAMA_ATTENTION_TYPE_NON_CAUSAL);
    nb::enum_<llama_flash_attn_type>(m, "FlashAttnType", nb::is_arithmetic(), "When to use flash attention.")
        .value("AUTO", LLAMA_FLASH_ATTN_TYPE_AUTO)
        .value("DISABLED", LLAMA_FLASH_ATTN_TYPE_DISABLED)
        .value("ENABLED", LLAMA_FLASH_ATTN_TYPE_ENABLED);
    nb::enum_<llama_rope_scaling_type>(m, "RopeScalingType", nb::is_arithmetic(), "RoPE scaling method.")
        .value("UNSPECIFIED", LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED)
        .value("NONE", LLAMA_ROPE_SCALING_TYPE_NONE)
        .value("LINEAR", LLAMA_ROPE_SCALING_TYPE_LINEAR)
        .value("YARN", LLAMA_ROPE_SCALING_TYPE_YARN)
        .value("LONGROPE", LLAMA_ROPE_SCALING_TYPE_LONGROPE);

    nb::class_<ContextParams>(m, "ContextParams", "llama_context_params, with llama.cpp's defaults.")
        .def(nb::init<>())
        .CPARAM(n_ctx, "Context length in tokens; 0 takes the model's training length.")
        .CPARAM(n_batch, "Most tokens one decode() call may submit.")
        .CPARAM(n_ubatch, "Physical batch size.")
        .CPARAM(n_seq_max, "Number of distinct sequences.")
        .CPARAM(n_rs_seq, "Recurrent-state snapshots per sequence.")
        .CPARAM(n_outputs_max, "Most outputs in a ubatch (0: n_batch).")
        .CPARAM(n_outputs_max_per_seq, "Most outputs per sequence (0: n_outputs_max).")
        .CPARAM(n_threads, "Threads for generation.")
        .CPARAM(n_threads_batch, "Threads for batch (prompt) processing.")
        .CPARAM(rope_scaling_type, "RoPE scaling method.")
        .CPARAM(pooling_type, "Embedding pooling.")
        .CPARAM(attention_type, "Attention type for embeddings.")
        .CPARAM(flash_attn_type, "When to use flash attention.")
        .CPARAM(rope_freq_base, "RoPE base frequency; 0 from the model.")
        .CPARAM(rope_freq_scale, "RoPE frequency scale; 0 from the model.")
        .CPARAM(yarn_ext_factor, "YaRN extrapolation mix factor; negative from the model.")
        .CPARAM(yarn_attn_factor, "YaRN magnitude scaling factor.")
        .CPARAM(yarn_beta_fast, "YaRN low correction dim.")
        .CPARAM(yarn_beta_slow, "YaRN high correction dim.")
        .CPARAM(yarn_orig_ctx, "YaRN original context size.")
        .def_prop_rw(
            "type_k", [](ContextParams &s) { return (int) s.p.type_k; },
            [](ContextParams &s, int v) { s.p.type_k = kv_cache_type(v, "type_k"); },
            "ggml_type of the K cache: F32, F16, BF16, Q8_0, Q4_0, Q4_1, IQ4_NL, Q5_0 or Q5_1.")
        .def_prop_rw(
            "type_v", [](ContextParams &s) { return (int) s.p.type_v; },
            [](ContextParams &s, int v) { s.p.type_v = kv_cache_type(v, "type_v"); },
            "ggml_type of the V cache (the types of type_k; quantized V needs flash attention).")
        .CPARAM(moe_cache_size,
                "Bytes of device cache for the MoE experts kept in host memory, split among "
                "the devices like the layers; 0 disables it. [EXPERIMENTAL]")
        .CPARAM(embeddings, "Extract embeddings (with logits).")
        .CPARAM(offload_kqv, "Offload KQV ops and the KV cache to the GPU.")
        .CPARAM(no_perf, "Do not measure performance timings.")
        .CPARAM(op_offload, "Offload host tensor operations to the device.")
        .CPARAM(swa_full, "Use a full-size SWA cache.")
        .CPARAM(kv_unified, "Use one KV buffer across sequences.");
}
