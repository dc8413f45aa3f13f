// ggml CPU thread pools (backend.cpp), which contexts run their decodes on.
#pragma once

#include "errors.h"

struct Context;

struct Threadpool {
    ggml_threadpool *ptr = nullptr;
    int n_threads = 0;
    // The context it serves until that context closes: a pool runs one graph at a time,
    // and a context's CPU backend keeps (and pauses) the last pool it ran on.
    const Context *user = nullptr;
    ggml_threadpool *get() const {
        if (!ptr) throw ClosedError("Threadpool is closed");
        return ptr;
    }
    ~Threadpool();  // frees through the CPU backend's registry entry
};

// A ggml CPU pool of n_threads (1..GGML_MAX_N_THREADS, else ValueError) whose threads
// sleep between graphs (poll 0: no spinning while Python works between decodes).
ggml_threadpool *new_cpu_threadpool(int n_threads);
void free_cpu_threadpool(ggml_threadpool *tp);
// ValueError unless 1 <= n <= GGML_MAX_N_THREADS (ggml's pools and plans hold at most that).
void check_thread_count(int64_t n, const char *what);
// Runs ctx's decodes on the context's own pool, grown to its thread counts first: the
// calling thread is the pool's first thread, so a decode is as fast from any thread.
// The context is locked (called inside Context::locked or before it is shared).
void use_own_threadpool(Context &c, llama_context *ctx);

// Context.attach_threadpool: the context keeps the pools alive while it may use them.
void attach_threadpool(nb::object ctx_obj, nb::object pool, nb::object pool_batch);
// Context.detach_threadpool: back to the context's own pool.
void detach_threadpool(Context &c);
