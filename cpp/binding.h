// What every binding file of llamanb.core needs: nanobind, llama.h, small array and
// string helpers, and the per-area entry points. The handles and helpers of an area
// are in its own header (errors.h, callbacks.h, model.h, context.h, batch.h,
// sampler.h, adapter.h, backend.h, rpc.h, weights.h, mtmd_*.h, speculative_*.h).
// Named binding.h, not common.h: that is llama.cpp's common/common.h, on the same
// include path.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <nanobind/stl/optional.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llama.h"

namespace nb = nanobind;
using namespace nb::literals;

// Reads a string through llama.cpp's "write into buf, return the needed length
// (negative on failure)" convention, growing the buffer once if needed.
template <typename F>
std::optional<std::string> read_c_string(F &&fill) {
    std::string buf(256, '\0');
    int32_t n = fill(buf.data(), buf.size());
    if (n < 0) return std::nullopt;
    if ((size_t) n >= buf.size()) {
        buf.resize((size_t) n + 1);
        n = fill(buf.data(), buf.size());
    }
    buf.resize((size_t) n);
    return buf;
}

// ---- typed arrays ------------------------------------------------------------

using FloatView = nb::ndarray<nb::numpy, const float, nb::ndim<1>>;
using TokensIn = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// A numpy array that owns a copy of `v` (the vector moves into a capsule).
template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<1>> to_numpy(std::vector<T> &&v) {
    auto *heap = new std::vector<T>(std::move(v));
    nb::capsule owner(heap, [](void *p) noexcept { delete static_cast<std::vector<T> *>(p); });
    return nb::ndarray<nb::numpy, T, nb::ndim<1>>(heap->data(), {heap->size()}, owner);
}

// ---- per-area entry points, called from module.cpp in dependency order ----------
// Each takes the module its names go to: m is llamanb.core (llama.h's mirror), the
// others its submodules (see module.cpp).

void init_errors(nb::module_ &m);
void init_callbacks(nb::module_ &m);
void init_model(nb::module_ &m);
void init_vocab(nb::module_ &m);
void init_context(nb::module_ &m);
void init_batch(nb::module_ &m);
void init_batch_ext(nb::module_ &m);
void init_sampler(nb::module_ &m);
void init_chat_template(nb::module_ &m);
void init_adapter(nb::module_ &m);
void init_backend(nb::module_ &m, nb::module_ &ggml);
void init_chat(nb::module_ &common);
void init_speculative(nb::module_ &common);
void init_ggml(nb::module_ &ggml);
void init_rpc(nb::module_ &ggml);
void init_gguf(nb::module_ &gguf);
void init_mtmd(nb::module_ &mtmd);
void init_server_chat(nb::module_ &server);
void init_server(nb::module_ &server);
void init_server_feed(nb::module_ &server);
void init_token_loop(nb::module_ &fast);
void init_sample_and_accept_n(nb::module_ &fast);
