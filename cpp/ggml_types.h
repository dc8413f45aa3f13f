// ggml types and float conversion (ggml.cpp), shared with the compute-graph API
// (ggml_graph.cpp). Not named ggml.h: that is ggml's own header, on the same include path.
#pragma once

#include "binding.h"

#include "ggml.h"

using FloatIn = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

// The types ggml_quantize_chunk handles (others abort inside ggml).
bool quantizable(ggml_type t);
// t as a ggml_type; ValueError unless it is one ggml knows.
ggml_type check_type(int t);
// n elements of type t at src as floats (GIL released while converting).
std::vector<float> to_float(const void *src, ggml_type t, int64_t n);
// A tensor's shape in numpy order (ggml's ne reversed).
std::vector<int64_t> numpy_shape(const ggml_tensor *t);
