// ggml CPU thread pools (backend.cpp), which contexts run their decodes on.
#pragma once

#include "errors.h"

struct Context;

struct Threadpool {
    ggml_threadpool *ptr = nullptr;
    int n_threads = 0;
    ggml_threadpool *get() const {
        if (!ptr) throw ClosedError("Threadpool is closed");
        return ptr;
    }
    ~Threadpool();  // frees through the CPU backend's registry entry
};

// Context.attach_threadpool: the context keeps the pools alive while it may use them.
void attach_threadpool(nb::object ctx_obj, nb::object pool, nb::object pool_batch);
// Context.detach_threadpool.
void detach_threadpool(Context &c);
