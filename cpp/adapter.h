// LoRA adapters and control vectors (adapter.cpp): the adapter handle, and the
// Context methods that set them (bound in context.cpp).
#pragma once

#include "model.h"

struct Context;

// Owns a llama_adapter_lora; keeps its Model alive. `users` counts contexts
// the adapter is set on: closing it while in use defers the free.
struct LoraAdapter {
    llama_adapter_lora *ptr = nullptr;
    nb::object model_obj;
    Model *model = nullptr;
    int users = 0;
    bool closed = false;
    llama_adapter_lora *get() const {
        if (closed || !ptr) throw ClosedError("LoraAdapter is closed");
        return ptr;
    }
    // A context stopped using it: the last one frees a closed adapter.
    void remove_user() {
        users -= 1;
        if (closed) free_now();
    }
    void free_now();
    ~LoraAdapter() {
        closed = true;
        users = 0;
        free_now();
    }
};

// Context.set_adapters_lora: the context holds the adapters it uses.
void set_adapters_lora(Context &c, const std::vector<std::pair<nb::object, float>> &items);

using ControlVectorIn = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
// Context.set_adapter_cvec (data None: clear it).
void set_adapter_cvec(Context &c, std::optional<ControlVectorIn> data, int32_t n_embd, int32_t il_start,
                      int32_t il_end);
