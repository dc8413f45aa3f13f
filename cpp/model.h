// The model handles: Model (owns a llama_model), its borrowed Vocab, and ModelUse,
// which keeps a model from being freed while a call runs without the GIL.
#pragma once

#include "errors.h"

#include <unordered_map>
#include <utility>

// Where a tensor's bytes are in the model's GGUF files (weights.cpp).
struct FileTensor {
    std::string path;
    size_t offset = 0, nbytes = 0;
    int type = 0;
};

// Owns a llama_model. close() is idempotent; while contexts or samplers built
// on the model are alive the free is deferred to the last of them, so no
// object reachable from Python can see freed memory.
struct Model {
    llama_model *ptr = nullptr;
    std::string path;
    std::vector<std::string> split_paths;                      // every file, when loaded with from_splits
    std::unordered_map<std::string, FileTensor> file_tensors;  // built on first need
    bool files_indexed = false;
    bool no_alloc = false;  // loaded with ModelParams.no_alloc: metadata and sizes, no weights
    int users = 0;
    bool closed = false;
    // RPC workers holding layers of this model, with their failure count at load
    // (rpc.cpp): a changed count means the connection was lost since.
    std::vector<std::pair<std::string, uint64_t>> rpc_endpoints;
    void check_rpc() const;

    llama_model *get() const {
        if (closed) throw ClosedError("Model is closed");
        return ptr;
    }
    const llama_vocab *vocab() const { return llama_model_get_vocab(get()); }
    void acquire() {
        get();
        ++users;
    }
    void release() {
        if (--users == 0 && closed) free_now();
    }
    void close() {
        closed = true;
        if (users == 0) free_now();
    }
    void free_now() {
        if (ptr) {
            llama_model_free(ptr);
            ptr = nullptr;
        }
    }
    ~Model() {
        closed = true;
        free_now();
    }
};

// Borrowed view of a model's vocabulary: keeps the Python Model alive.
struct Vocab {
    nb::object owner;  // the Model
    Model *model;
    const llama_vocab *get() const { return model->vocab(); }
    int32_t n_tokens() const { return llama_vocab_n_tokens(get()); }
    void check_token(llama_token t) const {
        int32_t n = n_tokens();
        if (t < 0 || t >= n)
            throw nb::index_error(
                ("token id " + std::to_string(t) + " out of range [0, " + std::to_string(n) + ")").c_str());
    }
};

// Throws IndexError naming the first token outside [0, n_vocab) (vocab.cpp).
void check_tokens(const llama_vocab *vocab, const int32_t *tokens, size_t n);

// Keeps a Model from being freed while a call runs with the GIL released.
// Construct and destroy with the GIL held.
struct ModelUse {
    Model *model;
    explicit ModelUse(Model *m) : model(m) { model->acquire(); }
    ~ModelUse() { model->release(); }
    ModelUse(const ModelUse &) = delete;
    ModelUse &operator=(const ModelUse &) = delete;
};
