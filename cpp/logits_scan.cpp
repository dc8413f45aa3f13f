// Scans over a row of logits (see logits_scan.h). Compiled at -O3: CMakeLists.txt.
#include "logits_scan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

namespace {

constexpr int32_t lanes = 16;  // independent running maxima: no loop-carried dependency
constexpr int32_t block = 32;  // logits checked at once for a greater (top-k) or equal (argmax) one

// The largest of n (a multiple of lanes) logits; NaNs are ignored (a NaN never
// compares greater), -inf if all are NaN. GCC and Clang get a vector type (the plain
// loop of 16 lanes stays scalar: one vmaxss per logit).
#if defined(__GNUC__) || defined(__clang__)
typedef float lanes_vector __attribute__((vector_size(lanes * sizeof(float))));
inline float lanes_max(const float *x, int32_t n) {
    lanes_vector lane;
    for (int j = 0; j < lanes; ++j) lane[j] = -INFINITY;
    for (int32_t i = 0; i < n; i += lanes) {
        lanes_vector v;
        std::memcpy(&v, x + i, sizeof v);
        lane = v > lane ? v : lane;
    }
    float m = lane[0];
    for (int j = 1; j < lanes; ++j) m = lane[j] > m ? lane[j] : m;
    return m;
}
#else
inline float lanes_max(const float *x, int32_t n) {
    float lane[lanes];
    for (float &l : lane) l = -INFINITY;
    for (int32_t i = 0; i < n; i += lanes)
        for (int j = 0; j < lanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
    float m = lane[0];
    for (int j = 1; j < lanes; ++j) m = lane[j] > m ? lane[j] : m;
    return m;
}
#endif

// Whether one of n logits equals v (no early exit, so that the loop vectorizes).
inline bool block_has(const float *x, int32_t n, float v) {
    int hit = 0;
    for (int32_t i = 0; i < n; ++i) hit |= x[i] == v;
    return hit != 0;
}

}  // namespace

// The module is built for any x86-64 (SSE2): on x86-64 Linux the argmax also comes in
// AVX2 and AVX-512 builds, picked once at load time by the CPU (GCC/Clang function
// multiversioning), 2-3x faster on a 49k vocabulary.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define LLAMANB_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LLAMANB_CPU_CLONES
#endif

// Greedy's choice without the candidate array llama_sampler_sample builds (49k
// entries for a 49k vocabulary, ~200 us a token here). Two passes: the maximum, then
// the first block holding it, and in that block its index.
LLAMANB_CPU_CLONES
llama_token argmax(const float *logits, int32_t n) {
    if (n <= 0 || std::isnan(logits[0])) return 0;
    int32_t body = n / lanes * lanes;
    float best = lanes_max(logits, body);
    best = logits[0] > best ? logits[0] : best;  // all NaN but the first
    for (int32_t t = body; t < n; ++t) best = logits[t] > best ? logits[t] : best;
    int32_t t = 0;
    for (; t + block <= n && !block_has(logits + t, block, best); t += block) {}
    for (; t < n; ++t)
        if (logits[t] == best) return t;
    return 0;
}

// The candidates a chain that starts with top-k (k <= 128) needs, instead of all n:
// llama.cpp's top-k runs std::partial_sort (a heap select) over the candidate array,
// which heaps the first k entries, then scans the rest in order and lets entry i in
// only if its logit exceeds the smallest in the heap, which is then the k-th largest
// logit of entries [0, i). Entries that do not get in are compared and left alone, so
// dropping them changes nothing: partial_sort over the first k entries plus, in order,
// the ones that get in gives the very same top k, in the same order, ties included.
// Which get in is decided here on the values alone (a min-heap of the k largest so
// far); blocks of 32 logits none of which exceeds that k-th largest are skipped whole.
// Writes them to cur and returns true; false (cur unspecified) when one of the first k
// logits is NaN, which breaks the heap's ordering: the caller then passes all n.
bool top_k_candidates(const float *logits, int32_t n, int32_t k, std::vector<llama_token_data> &cur) {
    float heap[max_heap_top_k];
    cur.clear();
    for (int32_t i = 0; i < k; ++i) {
        if (std::isnan(logits[i])) return false;
        heap[i] = logits[i];
        cur.push_back(llama_token_data{i, logits[i], 0.0f});
    }
    const std::greater<float> smaller_first;
    std::make_heap(heap, heap + k, smaller_first);
    float kth = heap[0];
    auto scan = [&](int32_t i, int32_t end) {
        for (; i < end; ++i) {
            if (!(logits[i] > kth)) continue;  // NaN never gets in (partial_sort's comparison is false)
            cur.push_back(llama_token_data{i, logits[i], 0.0f});
            std::pop_heap(heap, heap + k, smaller_first);
            heap[k - 1] = logits[i];
            std::push_heap(heap, heap + k, smaller_first);
            kth = heap[0];
        }
    };
    int32_t i = k;
    for (; i + block <= n; i += block)
        if (lanes_max(logits + i, block) > kth) scan(i, i + block);
    scan(i, n);
    return true;
}
