// Shared helpers for the llamanb.core binding files: exceptions, handle
// ownership, and small array helpers. Each area file exports init_<area>(m).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <nanobind/stl/optional.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "llama.h"

namespace nb = nanobind;
using namespace nb::literals;

// ---- exceptions (Python classes are registered in errors.cpp) -------------

struct LlamaError : std::runtime_error { using std::runtime_error::runtime_error; };
// Operation on an object after close() (or a sampler handed to a chain).
struct ClosedError : LlamaError { using LlamaError::LlamaError; };
struct ModelLoadError : LlamaError { using LlamaError::LlamaError; };
struct DecodeError : LlamaError { using LlamaError::LlamaError; };
// llama_decode returned 1: no KV-cache slot for the batch (context full).
struct ContextFullError : DecodeError { using DecodeError::DecodeError; };
// llama_decode/encode returned 2: aborted by ctx.cancel() or the abort callback.
struct AbortedError : DecodeError { using DecodeError::DecodeError; };
// A ggml RPC worker could not be reached, or its connection was lost.
struct RpcConnectionError : LlamaError { using LlamaError::LlamaError; };

// The last ERROR-level message llama.cpp logged on this thread (callbacks.cpp);
// appended to exception messages so a failure says why.
std::string take_last_error_log();
inline void clear_last_error_log() { (void) take_last_error_log(); }
std::string with_log_reason(const std::string &what);
// Sets the lowest log level that is shown; returns the previous one.
int log_swap_min_level(int min_level);

// Python exceptions raised inside C callbacks are parked here and re-raised on
// the calling thread once the C call returns (callbacks.cpp).
struct PendingError {
    nb::object type, value, traceback;
    bool set() const { return type.is_valid(); }
    void capture();          // from the current Python error state (GIL held)
    [[noreturn]] void raise(); // restore and throw nb::python_error (GIL held)
};

// State behind the C callbacks; user_data points at one of these.
struct ProgressState {
    nb::object fn;  // Callable[[float], bool | None]
    PendingError error;
};
bool progress_trampoline(float progress, void *user_data);

// Abort check for decode/encode: ctx.cancel() sets `cancel` from any thread
// (no GIL needed); a Python callback and pending Ctrl-C are polled at most
// every few milliseconds so the check costs nothing per graph node.
struct AbortState {
    std::atomic<bool> cancel{false};
    nb::object fn;  // Callable[[], bool] or None
    PendingError error;
    int64_t last_poll_us = 0;
};
bool abort_trampoline(void *user_data);

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

// A mutex that knows the thread holding it. Callbacks run inside a locked call
// (a Python sampler inside sample(), the abort callback inside decode()) on the same
// thread: a callback that calls back into the object its caller holds gets a
// RuntimeError instead of a deadlock.
struct CallMutex {
    std::mutex m;
    std::atomic<std::thread::id> holder{};
    void lock() {
        if (holder.load() == std::this_thread::get_id())
            throw std::runtime_error("this object is in use by a call on this thread: a callback (Python "
                                     "sampler, abort callback) cannot call back into the Context or Sampler "
                                     "that is running it");
        m.lock();
        holder.store(std::this_thread::get_id());
    }
    void unlock() {
        holder.store(std::thread::id());
        m.unlock();
    }
};

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

// ---- handles -------------------------------------------------------------------

// Owns a llama_model. close() is idempotent; while contexts or samplers built
// on the model are alive the free is deferred to the last of them, so no
// object reachable from Python can see freed memory.
// Where a tensor's bytes are in the model's GGUF files (weights.cpp).
struct FileTensor {
    std::string path;
    size_t offset = 0, nbytes = 0;
    int type = 0;
};

struct Model {
    llama_model *ptr = nullptr;
    std::string path;
    std::vector<std::string> split_paths;  // every file, when loaded with from_splits
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
    void acquire() { get(); ++users; }
    void release() { if (--users == 0 && closed) free_now(); }
    void close() { closed = true; if (users == 0) free_now(); }
    void free_now() { if (ptr) { llama_model_free(ptr); ptr = nullptr; } }
    ~Model() { closed = true; free_now(); }
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
            throw nb::index_error(("token id " + std::to_string(t) + " out of range [0, " +
                                   std::to_string(n) + ")").c_str());
    }
};

// Keeps a Model from being freed while a call runs with the GIL released.
// Construct and destroy with the GIL held.
struct ModelUse {
    Model *model;
    explicit ModelUse(Model *m) : model(m) { model->acquire(); }
    ~ModelUse() { model->release(); }
    ModelUse(const ModelUse &) = delete;
    ModelUse &operator=(const ModelUse &) = delete;
};

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
    void free_now();
    ~LoraAdapter() { closed = true; users = 0; free_now(); }
};

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

// Owns a llama_context. Every llama call on it runs with the GIL released and
// the context mutex held, so calls from several Python threads serialize
// instead of corrupting state, and close() waits for a running decode.
// (Never wait on `mutex` while holding the GIL: callbacks inside a decode take the GIL.)
struct Context {
    llama_context *ptr = nullptr;
    nb::object model_obj;  // keeps the Python Model alive
    Model *model = nullptr;
    CallMutex mutex;
    AbortState abort;
    int32_t n_vocab = 0;
    // Zero-copy output views: llama.cpp reallocates its output buffer when a
    // decode needs more outputs than ever before, so while views are alive a
    // decode that could grow it is refused, and close() is deferred.
    int64_t output_capacity = 0;
    int live_views = 0;
    int64_t last_n_outputs = 0;  // rows of get_logits()/get_embeddings()
    std::atomic<bool> close_requested{false};
    std::vector<nb::object> adapters;  // LoraAdapters set on this context
    std::vector<nb::object> attached;  // threadpools and backend samplers in use
    uint32_t n_ctx = 0, n_batch = 0, n_seq_max = 0, n_ubatch = 0;  // fixed at creation
    bool embeddings = false;  // every token is an output while on

    // Runs fn(llama_context*) with the GIL released and the mutex held.
    template <typename F>
    auto locked(F &&fn) -> decltype(fn(ptr)) {
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> guard(mutex);
        if (!ptr || close_requested) throw ClosedError("Context is closed");
        return fn(ptr);
    }
    // With the GIL held: raise if closed. While open, model->ptr is valid.
    void check_open() const {
        if (!ptr || close_requested) throw ClosedError("Context is closed");
    }
    void free_now();  // GIL held, no other user
    ~Context() { free_now(); }
};

// Turns a llama_decode/encode/process return code into the matching exception
// (re-raising an exception from the abort callback or Ctrl-C first).
void check_decode_result(Context &c, int32_t rc, const char *what);

// Throws IndexError naming the first token outside [0, n_vocab).
void check_tokens(const llama_vocab *vocab, const int32_t *tokens, size_t n);

// Stable per-area entry points, called from module.cpp in dependency order.
void init_errors(nb::module_ &m);
void init_callbacks(nb::module_ &m);
void init_model(nb::module_ &m);
void init_vocab(nb::module_ &m);
void init_context(nb::module_ &m);
void init_batch(nb::module_ &m);
void init_sampler(nb::module_ &m);
void init_chat(nb::module_ &m);
void init_adapter(nb::module_ &m);
void init_backend(nb::module_ &m);
void init_rpc(nb::module_ &m);
void init_batch_ext(nb::module_ &m);
void init_ggml(nb::module_ &m);
void init_gguf(nb::module_ &m);

// ---- ggml RPC (rpc.cpp) -----------------------------------------------------------

// The devices of the RPC server at endpoint (connects; GIL released). Raises
// RpcConnectionError when nothing answers there.
std::vector<ggml_backend_dev_t> rpc_devices(const std::string &endpoint);
uint64_t rpc_n_failures(const std::string &endpoint);
