// Where a model's weights live, and their bytes as the GGUF file has them.
//
// With extra CPU buffer types (AMX, CPU_REPACK) llama.cpp repacks weights into a
// kernel-specific layout in host RAM; such buffers cannot be read back
// (ggml_backend_tensor_get would call a null function). Reads of those weights go to
// the model's GGUF file(s) instead.
#pragma once

#include "model.h"

#include "ggml-backend.h"
#include "ggml.h"

#include <map>

// The bytes of t are in host RAM (the CPU buffer, or a CPU extra buffer type).
bool weight_in_host_memory(const ggml_tensor *t);
// t lives in a CPU extra buffer type: its bytes are in a backend layout, not the file's.
bool weight_is_repacked(const ggml_tensor *t);
// The name of the buffer type holding t: "CPU", "AMX", "CPU_REPACK", "CUDA0", "RPC0[...]".
std::string weight_buffer_type(const ggml_tensor *t);
// t's bytes in the file's layout (ggml_nbytes(t) of them): from the file for repacked
// weights, else from its buffer. Raises LlamaError when the file no longer matches the model.
std::vector<uint8_t> read_weight(Model &model, const ggml_tensor *t);
// Every weight is in host RAM (no GPU or RPC layers).
bool weights_in_host_memory(const llama_model *model);
// {buffer type name: bytes of weights} over the model's tensors.
std::map<std::string, size_t> weight_buffer_sizes(const llama_model *model);
// Writes the model (metadata and weights, in the file's layout) to a GGUF file.
void save_model(Model &model, const std::string &path);
