// The context handle (context.cpp binds it) and the functions of its areas in other
// files: decode and outputs (decode.cpp), state I/O (state.cpp) and memory, i.e. the
// KV cache (memory.cpp).
#pragma once

#include "callbacks.h"
#include "model.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

// A mutex that knows the thread holding it. Callbacks run inside a locked call
// (a Python sampler inside sample(), the abort callback inside decode()) on the same
// thread: a callback that calls back into the object its caller holds gets a
// RuntimeError instead of a deadlock. Contexts and samplers lock with it.
struct CallMutex {
    std::mutex m;
    std::atomic<std::thread::id> holder{};
    void lock() {
        if (holder.load() == std::this_thread::get_id())
            throw std::runtime_error(
                "this object is in use by a call on this thread: a callback (Python "
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
    // The context's own thread pool (backend.cpp: use_own_threadpool), freed after the
    // context; outgrown ones wait in retired_pools, as the CPU backend may still name one.
    ggml_threadpool *own_pool = nullptr;
    int own_pool_threads = 0;
    bool own_pool_in_use = false;  // false while a pool from attach_threadpool runs the decodes
    std::vector<ggml_threadpool *> retired_pools;
    uint32_t n_ctx = 0, n_batch = 0, n_seq_max = 0, n_ubatch = 0;  // fixed at creation
    bool embeddings = false;                                       // every token is an output while on

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

// Throws IndexError unless seq is a sequence of ctx (allow_all: or negative, "all").
void check_seq(llama_context *ctx, llama_seq_id seq, bool allow_all);

// ---- decode/encode and outputs (decode.cpp) ----------------------------------------

enum class Pass { Decode, Encode };
// Validates b against c (token and sequence ids, sizes, live views), then runs it.
void run_batch(Context &c, const llama_batch &b, Pass pass);
// run_batch's steps, for loops that decode several batches under one lock (token_loop.cpp):
// the checks (GIL held), the decode (context locked, GIL released), and the bookkeeping
// and error translation after it (GIL held; `what` names the call in the error).
void validate_batch(Context &c, const llama_batch &b);
int32_t decode_locked(Context &c, llama_context *ctx, const llama_batch &b, Pass pass);
void finish_batch(Context &c, const llama_batch &b, int32_t rc, const char *what);
// Decodes tokens as one sequence continuing the last position (llama_batch_get_one).
void decode_tokens(Context &c, const int32_t *tokens, size_t n);

// Output rows as read-only zero-copy views owned by the context (self), or copies.
nb::object get_logits_ith(nb::handle self, int32_t i, bool copy);
nb::object get_embeddings_ith(nb::handle self, int32_t i, bool copy);
nb::object get_embeddings_seq(nb::handle self, llama_seq_id seq, bool copy);
nb::object get_logits(nb::handle self, bool copy);
nb::object get_embeddings(nb::handle self, bool copy);

// What backend samplers (Context.set_sampler) left for output i, copied; None if nothing.
std::optional<llama_token> get_sampled_token_ith(Context &c, int32_t i);
std::optional<nb::ndarray<nb::numpy, float, nb::ndim<1>>> get_sampled_probs_ith(Context &c, int32_t i);
std::optional<nb::ndarray<nb::numpy, float, nb::ndim<1>>> get_sampled_logits_ith(Context &c, int32_t i);
nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> get_sampled_candidates_ith(Context &c, int32_t i);

// ---- state I/O (state.cpp): the whole context (no seq) or one sequence -------------
// (the plain llama_state_seq_* calls are the _ext ones with flags 0).

nb::bytes get_state(Context &c, std::optional<llama_seq_id> seq, uint32_t flags);
// Returns the bytes read; `what` names the call in the error.
size_t set_state(Context &c, nb::bytes data, std::optional<llama_seq_id> seq, uint32_t flags, const char *what);
// Returns the bytes written (whole context: nonzero).
size_t save_state_file(Context &c, const std::filesystem::path &path, std::optional<llama_seq_id> seq,
                       const std::vector<llama_token> &tokens);
// Returns the tokens the state came from; FileNotFoundError if there is no file.
std::vector<llama_token> load_state_file(Context &c, const std::filesystem::path &path, std::optional<llama_seq_id> seq,
                                         size_t n_token_capacity);

// ---- memory, the KV cache (memory.cpp) ---------------------------------------------

void memory_clear(Context &c, bool data);
bool memory_seq_rm(Context &c, llama_seq_id seq, llama_pos p0, llama_pos p1);
void memory_seq_cp(Context &c, llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1);
void memory_seq_keep(Context &c, llama_seq_id seq);
void memory_seq_add(Context &c, llama_seq_id seq, llama_pos p0, llama_pos p1, llama_pos delta);
void memory_seq_div(Context &c, llama_seq_id seq, llama_pos p0, llama_pos p1, int d);
llama_pos memory_seq_pos_min(Context &c, llama_seq_id seq);
llama_pos memory_seq_pos_max(Context &c, llama_seq_id seq);
bool memory_can_shift(Context &c);
