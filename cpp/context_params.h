// llama_context_params as ContextParams (context_params.cpp binds it, with the enums of
// its fields), and the KV cache it asks for, which Context() checks against the RAM.
#pragma once

#include "binding.h"

// llama_context_params minus the raw pointers (callbacks go through Context).
struct ContextParams {
    llama_context_params p = llama_context_default_params();
};

// The bytes of KV cache llama.cpp allocates in host memory for p, from the real cache
// types and head sizes; 0 when it cannot be told exactly here (layers on a device,
// sliding-window or recurrent models), and then llama.cpp's own allocation decides.
double host_kv_cache_bytes(const llama_model *mp, const llama_context_params &p);

// Binds PoolingType, AttentionType, FlashAttnType, RopeScalingType and ContextParams.
void init_context_params(nb::module_ &m);
