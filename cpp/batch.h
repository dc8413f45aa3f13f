// Batches (batch.cpp): llama_batch, and llama_batch_ext, which Context.process() runs.
#pragma once

#include "errors.h"

struct Context;

// Owns a llama_batch allocated with llama_batch_init.
struct Batch {
    llama_batch b{};
    int32_t capacity = 0;
    int32_t embd = 0;
    int32_t n_seq_max = 1;
    Batch(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
    ~Batch() { llama_batch_free(b); }
    Batch(const Batch &) = delete;
    Batch &operator=(const Batch &) = delete;
};

// Owns a llama_batch_ext, made for one context.
struct BatchExt {
    llama_batch_ext *ptr = nullptr;
    nb::object ctx_obj;  // the batch belongs to one context
    Context *ctx = nullptr;
    std::vector<bool> pos_set;  // llama.cpp leaves unset positions undefined: checked before process()
    llama_batch_ext *get() const {
        if (!ptr) throw ClosedError("BatchExt is closed");
        return ptr;
    }
    int32_t track(int32_t idx) {
        if (idx == -1) throw nb::index_error("batch is full");
        if (idx == -2) throw nb::value_error("invalid token id or embedding size");
        if (idx == -3) throw nb::index_error("sequence id out of range");
        if (idx < 0) throw LlamaError("llama_batch_ext add failed with code " + std::to_string(idx));
        if ((size_t) idx >= pos_set.size()) pos_set.resize((size_t) idx + 1, false);
        return idx;
    }
    void check_idx(int32_t idx) const {
        if (idx < 0 || (size_t) idx >= pos_set.size()) throw nb::index_error("batch index out of range");
    }
    ~BatchExt() {
        if (ptr) llama_batch_ext_free(ptr);
    }
};

// Context.process: encodes or decodes b on c (GIL released).
void process(Context &c, llama_process_type type, BatchExt &b);
