// Scans over a row of logits for the sampling shortcuts of Sampler.sample
// (sampler.cpp): the greedy token, and the candidates a top-k chain needs. Built at
// -O3 (the module is -Os, which leaves these loops unvectorized: 35 us for an argmax
// numpy does in 5).
#pragma once

#include "llama.h"

#include <cstdint>
#include <vector>

// llama.cpp's top-k sorts with std::partial_sort when k <= 128 (a bucket sort above).
constexpr int32_t max_heap_top_k = 128;

// The token llama.cpp's greedy sampler picks from the candidate array of these n
// logits: the first index whose logit no later one exceeds (NaNs never win; a NaN
// first logit keeps index 0).
llama_token argmax(const float *logits, int32_t n);

// The candidates llama.cpp's top-k (1 <= k <= 128, k < n) needs to give its output over
// all n logits: see logits_scan.cpp. Writes them to cur and returns true; false (cur
// unspecified) when one of the first k logits is NaN: the caller then passes all n.
bool top_k_candidates(const float *logits, int32_t n, int32_t k, std::vector<llama_token_data> &cur);
