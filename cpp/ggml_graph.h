// A small CPU compute-graph API over ggml (ggml_graph.cpp): llamanb.core.ggml's Tensor
// and Context.
#pragma once

#include "binding.h"

// Binds ggml.Tensor and ggml.Context into the ggml submodule g.
void init_ggml_graph(nb::module_ &g);
