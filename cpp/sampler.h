// Samplers: the Sampler handle (sampler.cpp binds it), Context.set_sampler, and
// samplers written in Python (py_sampler.cpp).
#pragma once

#include "context.h"

// Locking: every llama call on a sampler runs with the GIL released and the
// mutex of the sampler that owns the memory held (a chain for borrowed
// elements), so threads serialize and close() waits for a running sample().
struct Sampler {
    llama_sampler *ptr = nullptr;
    std::string spent_reason;  // why ptr is null
    // Models whose vocab a (sub)sampler references: kept alive and in use.
    std::vector<std::pair<nb::object, Model *>> models;
    CallMutex mutex;
    std::vector<llama_token_data> buffer;  // candidates, reused across sample() calls
    // A borrowed element of a chain (chain.get(i)): valid while the chain is unchanged.
    nb::object chain_owner;
    uint64_t chain_version = 0;
    uint64_t version = 0;  // bumped whenever a chain's membership changes or it closes

    // GIL held: the sampler whose mutex guards this one's memory; raises if unusable.
    Sampler &guard() {
        if (!ptr) throw ClosedError(spent_reason.empty() ? "Sampler is closed" : spent_reason);
        if (!chain_owner.is_valid()) return *this;
        Sampler &chain = nb::cast<Sampler &>(chain_owner);
        if (!chain.ptr || chain.version != chain_version)
            throw ClosedError("this Sampler came from chain.get() and the chain has changed since");
        return chain;
    }
    llama_sampler *get() {
        guard();
        return ptr;
    }

    // Runs fn(ptr) with the GIL released and the guarding mutex held.
    template <typename F>
    auto locked(F &&fn) -> decltype(fn(ptr)) {
        Sampler &g = guard();
        uint64_t v = g.version;
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> lock(g.mutex);
        if (!ptr || g.version != v) throw ClosedError("Sampler is closed");
        return fn(ptr);
    }

    void close() {
        llama_sampler *victim = nullptr;
        {
            nb::gil_scoped_release nogil;
            std::lock_guard<CallMutex> lock(mutex);
            version += 1;
            if (!chain_owner.is_valid()) victim = ptr;  // borrowed pointers belong to the chain
            ptr = nullptr;
        }
        chain_owner = nb::object();
        if (victim) llama_sampler_free(victim);
        for (auto &mm : models) mm.second->release();
        models.clear();
    }
    ~Sampler() {
        if (ptr && !chain_owner.is_valid()) llama_sampler_free(ptr);
        for (auto &mm : models) mm.second->release();
    }
};

// A sampler chain (a chain's element -1 is the chain itself).
bool is_chain(llama_sampler *s);

// One sample (and accept) from output idx, with the sampler's and the context's locks
// held by the caller (Sampler::locked, then the context mutex): Sampler.sample's body.
// LLAMA_TOKEN_NULL when a Python sampler raised (raise_py_sampler_error() after unlocking).
// Defined in sampling.cpp.
llama_token sample_locked_public(Sampler &s, llama_sampler *smpl, llama_context *ctx, int32_t idx);

// Context.set_sampler: the context takes the chain over, like Sampler.add().
void set_sampler(Context &c, llama_seq_id seq, Sampler &chain);

// ---- samplers written in Python (py_sampler.cpp) -------------------------------

// Candidates handed to and from Python: plain owned numpy arrays, so nothing
// Python keeps can point into llama.cpp's buffers after the call.
struct TokenDataArray {
    nb::ndarray<nb::numpy, int32_t, nb::ndim<1>> ids;
    nb::ndarray<nb::numpy, float, nb::ndim<1>> logits;
    nb::ndarray<nb::numpy, float, nb::ndim<1>> p;
    int64_t selected = -1;
    bool sorted = false;
};
TokenDataArray to_python(const llama_token_data_array &cur);

// A llama_sampler whose calls go to the Python object obj (llama_sampler_i).
llama_sampler *init_py_sampler(nb::object obj, const std::string &name);
// A Python sampler raised during the current call on this thread...
bool py_sampler_failed();
// ...and this re-raises it (GIL held); a no-op otherwise.
void raise_py_sampler_error();

// Binds TokenDataArray (called by init_sampler, before Sampler, whose apply() takes it).
void init_token_data_array(nb::module_ &m);
