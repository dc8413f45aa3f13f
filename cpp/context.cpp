// llama_context: its creation and close, threads and perf; and the binding of every
// Context method. Its params are context_params.cpp's. Methods of other areas are named
// functions in their files: decode/encode and outputs (decode.cpp), state I/O (state.cpp),
// memory (memory.cpp), adapters (adapter.cpp), BatchExt (batch.cpp), backend samplers
// (sampler.cpp), thread pools (backend.cpp).
#include "context.h"
#include "adapter.h"
#include "backend.h"
#include "batch.h"
#include "context_params.h"
#include "sampler.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>

#include <unistd.h>

namespace {

void Context_init(Context *self, nb::object model_obj, const ContextParams *params) {
    Model &model = nb::cast<Model &>(model_obj);
    llama_model *mp = model.get();
    if (model.no_alloc)
        throw nb::value_error("this model was loaded with no_alloc: it has no weights to run a context on");
    ContextParams defaults;
    llama_context_params p = (params ? *params : defaults).p;
    check_thread_count(p.n_threads, "n_threads");
    check_thread_count(p.n_threads_batch, "n_threads_batch");
    // llama.cpp asserts (aborts) while reserving a pooled-embedding graph whose ubatch
    // does not split evenly over the sequences.
    const uint32_t n_ubatch_eff = std::min(p.n_ubatch, p.n_batch > 0 ? p.n_batch : p.n_ubatch);
    if (p.embeddings && p.pooling_type != LLAMA_POOLING_TYPE_NONE && p.n_seq_max > 1 && n_ubatch_eff % p.n_seq_max != 0)
        throw nb::value_error(("pooled embeddings need n_ubatch (" + std::to_string(n_ubatch_eff) +
                               ") to be a multiple of n_seq_max (" + std::to_string(p.n_seq_max) + ")")
                                  .c_str());
    // A KV cache larger than physical memory cannot work: say so instead of letting
    // the allocation fail deep inside llama.cpp (or the OOM killer end the process).
    const double kv_bytes = host_kv_cache_bytes(mp, p);
    const double ram = (double) sysconf(_SC_PHYS_PAGES) * (double) sysconf(_SC_PAGE_SIZE);
    if (ram > 0 && kv_bytes > ram)
        throw LlamaError("a context of " + std::to_string(p.n_ctx) + " tokens needs " +
                         std::to_string((long long) (kv_bytes / 1e9)) +
                         " GB of KV cache in host memory, more "
                         "than this machine's " +
                         std::to_string((long long) (ram / 1e9)) +
                         " GB; use a smaller n_ctx (or a quantized type_k/type_v)");
    new (self) Context();
    self->model_obj = model_obj;
    self->model = &model;
    model.acquire();  // also keeps the model alive while it is read with the GIL released
    p.abort_callback = abort_trampoline;
    p.abort_callback_data = &self->abort;
    llama_context *ctx;
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        ctx = llama_init_from_model(mp, p);
    }
    if (!ctx) {
        // nanobind never destroys an instance whose __init__ raised: undo it here, or
        // the reference to the model leaks.
        std::string reason = with_log_reason("failed to create context");
        model.release();
        self->~Context();
        throw LlamaError(reason);
    }
    self->ptr = ctx;
    try {
        use_own_threadpool(*self, ctx);
    } catch (...) {
        self->free_now();
        self->~Context();
        throw;
    }
    self->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(mp));
    self->n_batch = llama_n_batch(ctx);
    self->n_ctx = llama_n_ctx(ctx);
    self->n_seq_max = llama_n_seq_max(ctx);
    self->n_ubatch = llama_n_ubatch(ctx);
    self->embeddings = p.embeddings;
    self->output_capacity = self->n_seq_max;
}

void close_context(Context &c) {
    {
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> guard(c.mutex);  // waits for a running decode
        c.close_requested = true;
    }
    c.free_now();
}

void set_abort_callback(Context &c, nb::object fn) {
    nb::object old;
    {
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> guard(c.mutex);  // not while a decode may call the old one
    }
    old = std::move(c.abort.fn);
    c.abort.fn = std::move(fn);
}

std::map<std::string, double> perf(Context &c) {
    llama_perf_context_data d = c.locked([](llama_context *ctx) {
        llama_synchronize(ctx);  // counters are updated when pending work completes
        return llama_perf_context(ctx);
    });
    return {{"t_start_ms", d.t_start_ms},     {"t_load_ms", d.t_load_ms},        {"t_p_eval_ms", d.t_p_eval_ms},
            {"t_eval_ms", d.t_eval_ms},       {"n_p_eval", (double) d.n_p_eval}, {"n_eval", (double) d.n_eval},
            {"n_reused", (double) d.n_reused}};
}

}  // namespace

void check_seq(llama_context *ctx, llama_seq_id seq, bool allow_all) {
    if (allow_all && seq < 0) return;
    uint32_t n = llama_n_seq_max(ctx);
    if (seq < 0 || (uint32_t) seq >= n)
        throw nb::index_error(("sequence id " + std::to_string(seq) + " out of range [0, " + std::to_string(n) + ")" +
                               (allow_all ? " (or -1 for all)" : ""))
                                  .c_str());
}

void check_decode_result(Context &c, int32_t rc, const char *what) {
    if (c.abort.error.set()) {
        c.abort.cancel = false;
        c.abort.error.raise();
    }
    if (rc == 0) return;
    if (rc == 2) {
        bool cancelled = c.abort.cancel.exchange(false);
        throw AbortedError(std::string(what) + " aborted" +
                           (cancelled ? " by Context.cancel()" : " by the abort callback"));
    }
    if (rc == 1)
        throw ContextFullError(
            with_log_reason(std::string(what) +
                            ": no KV-cache slot for the batch: the context is full (n_ctx too small for the "
                            "tokens so far); clear or shift the memory, or create a larger context"));
    if (rc == -1) throw DecodeError(with_log_reason(std::string(what) + ": invalid batch"));
    throw DecodeError(with_log_reason(std::string(what) + " failed with code " + std::to_string(rc)));
}

void Context::free_now() {
    close_requested = true;
    if (live_views > 0) return;  // the last view frees it
    if (ptr) {
        llama_free(ptr);
        ptr = nullptr;
        for (auto &obj : adapters) nb::cast<LoraAdapter &>(obj).remove_user();
        adapters.clear();
        for (auto &obj : attached)
            if (Threadpool *t; nb::try_cast<Threadpool *>(obj, t) && t) t->user = nullptr;
        attached.clear();
        free_cpu_threadpool(own_pool);
        own_pool = nullptr;
        for (ggml_threadpool *tp : retired_pools) free_cpu_threadpool(tp);
        retired_pools.clear();
        if (model) model->release();
    }
}

#define CTX_GETTER(name, expr, doc) \
    def_prop_ro(name, [](Context &c) { return c.locked([](llama_context *ctx) { return expr; }); }, doc)

void init_context(nb::module_ &m) {
    m.def(
        "kv_cache_host_bytes",
        [](const Model &model, const ContextParams *params) {
            ContextParams defaults;
            return (uint64_t) host_kv_cache_bytes(model.get(), (params ? *params : defaults).p);
        },
        "model"_a, "params"_a = nb::none(),
        "Bytes of KV cache a Context(model, params) allocates in host memory, from the cache\n"
        "types and head sizes; 0 when it cannot be told before creating it (layers on a device,\n"
        "sliding-window or recurrent models). Context() refuses caches larger than the RAM.");
    m.attr("STATE_SEQ_FLAGS_NONE") = LLAMA_STATE_SEQ_FLAGS_NONE;
    m.attr("STATE_SEQ_FLAGS_PARTIAL_ONLY") = LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY;
    m.attr("STATE_SEQ_FLAGS_ON_DEVICE") = LLAMA_STATE_SEQ_FLAGS_ON_DEVICE;
    init_context_params(m);

    nb::class_<Context>(m, "Context",
                        "An inference context (llama_context) on a Model, which it keeps alive.\n\n"
                        "Calls from several threads are serialized; long calls release the GIL.")
        .def("__init__", &Context_init, "model"_a, "params"_a = nb::none(),
             nb::sig("def __init__(self, model: Model, params: ContextParams | None = None) -> None"),
             "Create a context. Raises LlamaError if llama.cpp cannot (e.g. out of memory).")
        .def("close", &close_context, "Free the context. Idempotent; live output views defer the free until they go.")
        .def_prop_ro(
            "closed", [](const Context &c) { return c.ptr == nullptr || c.close_requested; }, "True after close().")
        .def(
            "__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> Context"))
        .def(
            "__exit__", [](nb::handle self, nb::handle, nb::handle, nb::handle) { self.attr("close")(); },
            "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def_prop_ro(
            "model", [](const Context &c) { return c.model_obj; }, nb::sig("def model(self) -> Model"),
            "The model this context runs.")
        .def_prop_ro(
            "n_ctx",
            [](const Context &c) {
                c.check_open();
                return c.n_ctx;
            },
            "Context length in tokens.")
        .CTX_GETTER("n_ctx_seq", llama_n_ctx_seq(ctx), "Context length per sequence.")
        // Fixed at creation: read without taking the context lock (a trivial call stays ~40 ns).
        .def_prop_ro(
            "n_batch",
            [](const Context &c) {
                c.check_open();
                return c.n_batch;
            },
            "Most tokens per decode() call.")
        .def_prop_ro(
            "n_ubatch",
            [](const Context &c) {
                c.check_open();
                return c.n_ubatch;
            },
            "Physical batch size.")
        .def_prop_ro(
            "n_seq_max",
            [](const Context &c) {
                c.check_open();
                return c.n_seq_max;
            },
            "Number of sequences.")
        .CTX_GETTER("n_rs_seq", llama_n_rs_seq(ctx), "Recurrent-state snapshots per sequence.")
        .CTX_GETTER("n_threads", llama_n_threads(ctx), "Threads for generation.")
        .CTX_GETTER("n_threads_batch", llama_n_threads_batch(ctx), "Threads for batch processing.")
        .CTX_GETTER("pooling_type", llama_pooling_type(ctx), "Embedding pooling in use.")
        .CTX_GETTER("causal_attn", llama_get_causal_attn(ctx), "Whether attention is causal.")
        .def(
            "set_n_threads",
            [](Context &c, int32_t n, int32_t n_batch) {
                check_thread_count(n, "n_threads");
                check_thread_count(n_batch, "n_threads_batch");
                c.locked([&](llama_context *ctx) {
                    llama_set_n_threads(ctx, n, n_batch);
                    if (c.own_pool_in_use) use_own_threadpool(c, ctx);
                });
            },
            "n_threads"_a, "n_threads_batch"_a, "Set the thread counts for generation and batches.")
        .def(
            "set_embeddings",
            [](Context &c, bool on) {
                c.locked([&](llama_context *ctx) { llama_set_embeddings(ctx, on); });
                c.embeddings = on;
            },
            "embeddings"_a, "Turn embedding extraction on or off.")
        .def(
            "set_causal_attn",
            [](Context &c, bool on) { c.locked([&](llama_context *ctx) { llama_set_causal_attn(ctx, on); }); },
            "causal_attn"_a, "Use causal (True) or full (False) attention.")
        .def(
            "synchronize", [](Context &c) { c.locked([](llama_context *ctx) { llama_synchronize(ctx); }); },
            "Wait for all pending backend work.")
        .def(
            "decode", [](Context &c, const Batch &b) { run_batch(c, b.b, Pass::Decode); }, "batch"_a,
            "Run the decoder on a batch (GIL released).\n\n"
            "Raises ContextFullError when the KV cache has no room, AbortedError after\n"
            "cancel()/the abort callback, KeyboardInterrupt on Ctrl-C, IndexError for token\n"
            "or sequence ids out of range, ValueError for a batch larger than n_batch.")
        .def(
            "encode", [](Context &c, const Batch &b) { run_batch(c, b.b, Pass::Encode); }, "batch"_a,
            "Run the encoder on a batch (encoder or embedding models). GIL released.")
        .def(
            "decode_tokens", [](Context &c, TokensIn tokens) { decode_tokens(c, tokens.data(), tokens.shape(0)); },
            "tokens"_a.noconvert(),
            "Decode tokens as one sequence continuing the last position (llama_batch_get_one);\n"
            "only the last token's logits are kept.")
        .def(
            "decode_tokens",
            [](Context &c, const std::vector<llama_token> &tokens) { decode_tokens(c, tokens.data(), tokens.size()); },
            "tokens"_a,
            "Decode tokens as one sequence continuing the last position (llama_batch_get_one);\n"
            "only the last token's logits are kept.")
        .def(
            "get_logits_ith", &get_logits_ith, "i"_a = -1, "copy"_a = false,
            nb::sig("def get_logits_ith(self, i: int = -1, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]"),
            "Logits of output i (negative counts from the end) as a read-only float32 view.\n\n"
            "Zero-copy: the view shows llama.cpp's buffer, which the next decode overwrites.\n"
            "Pass copy=True to keep values. A decode that would reallocate the buffer while\n"
            "views are alive raises instead, so a view can never reach freed memory.")
        .def(
            "get_embeddings_ith", &get_embeddings_ith, "i"_a = -1, "copy"_a = false,
            nb::sig(
                "def get_embeddings_ith(self, i: int = -1, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]"),
            "Embedding of output i (pooling NONE) as a read-only float32 view; see get_logits_ith.")
        .def("get_embeddings_seq", &get_embeddings_seq, "seq_id"_a = 0, "copy"_a = false,
             nb::sig("def get_embeddings_seq(self, seq_id: int = 0, copy: bool = False) -> "
                     "numpy.typing.NDArray[numpy.float32]"),
             "Pooled embedding of a sequence (pooling != NONE) as a read-only float32 view\n"
             "(rank pooling: the n_cls_out scores); see get_logits_ith.")
        .def(
            "cancel", [](Context &c) { c.abort.cancel = true; },
            "Ask the running (or next) decode/encode to stop; it raises AbortedError. Thread-safe.")
        .def("set_abort_callback", &set_abort_callback, "callback"_a.none(),
             nb::sig("def set_abort_callback(self, callback: collections.abc.Callable[[], bool] | None) -> None"),
             "Poll `callback()` (every ~20 ms) during decode; True aborts it with AbortedError.\n"
             "Ctrl-C is always honoured the same way and re-raised as KeyboardInterrupt.")
        // --- memory (KV cache)
        .def("memory_clear", &memory_clear, "data"_a = true, "Clear all sequences; data=True also zeroes the buffers.")
        .def("memory_seq_rm", &memory_seq_rm, "seq_id"_a, "p0"_a = -1, "p1"_a = -1,
             "Remove positions [p0, p1) of a sequence (-1: all sequences / open ends). False if\n"
             "a partial removal is impossible (recurrent models).")
        .def("memory_seq_cp", &memory_seq_cp, "src"_a, "dst"_a, "p0"_a = -1, "p1"_a = -1,
             "Copy positions [p0, p1) of sequence src to dst.")
        .def("memory_seq_keep", &memory_seq_keep, "seq_id"_a, "Remove every sequence but this one.")
        .def("memory_seq_add", &memory_seq_add, "seq_id"_a, "p0"_a, "p1"_a, "delta"_a,
             "Shift positions [p0, p1) of a sequence by delta.")
        .def("memory_seq_div", &memory_seq_div, "seq_id"_a, "p0"_a, "p1"_a, "d"_a,
             "Integer-divide positions [p0, p1) of a sequence by d.")
        .def("memory_seq_pos_min", &memory_seq_pos_min, "seq_id"_a,
             "Smallest position of a sequence in memory, or -1 if empty.")
        .def("memory_seq_pos_max", &memory_seq_pos_max, "seq_id"_a,
             "Largest position of a sequence in memory, or -1 if empty.")
        .def_prop_ro("memory_can_shift", &memory_can_shift, "Whether positions can be shifted (seq_add/seq_div).")
        // --- state (the whole context, or one sequence)
        .def(
            "state_get_data", [](Context &c) { return get_state(c, std::nullopt, 0); },
            "The whole context state (KV cache, outputs, RNG) as bytes.")
        .def(
            "state_set_data",
            [](Context &c, nb::bytes data) { return set_state(c, data, std::nullopt, 0, "state_set_data"); }, "data"_a,
            "Restore a state from state_get_data(); returns bytes read.")
        .def(
            "state_seq_get_data", [](Context &c, llama_seq_id seq) { return get_state(c, seq, 0); }, "seq_id"_a,
            "One sequence's state as bytes.")
        .def(
            "state_seq_set_data",
            [](Context &c, nb::bytes data, llama_seq_id seq) {
                return set_state(c, data, seq, 0, "state_seq_set_data");
            },
            "data"_a, "seq_id"_a, "Restore one sequence from state_seq_get_data(); returns bytes read.")
        .def(
            "state_save_file",
            [](Context &c, const std::filesystem::path &path, const std::vector<llama_token> &tokens) {
                save_state_file(c, path, std::nullopt, tokens);
            },
            "path"_a, "tokens"_a,
            nb::sig("def state_save_file(self, path: str | os.PathLike[str], tokens: collections.abc.Sequence[int]) -> "
                    "None"),
            "Save the state and the tokens it came from to a file.")
        .def(
            "state_load_file",
            [](Context &c, const std::filesystem::path &path, size_t n_token_capacity) {
                return load_state_file(c, path, std::nullopt, n_token_capacity);
            },
            "path"_a, "n_token_capacity"_a = 1 << 20,
            nb::sig("def state_load_file(self, path: str | os.PathLike[str], n_token_capacity: int = 1048576) -> "
                    "list[int]"),
            "Load a state file; returns its tokens.")
        .def(
            "state_get_size",
            [](Context &c) { return c.locked([](llama_context *ctx) { return llama_state_get_size(ctx); }); },
            "Size in bytes of state_get_data().")
        .def(
            "state_seq_get_size",
            [](Context &c, llama_seq_id seq, uint32_t flags) {
                return c.locked([&](llama_context *ctx) {
                    check_seq(ctx, seq, false);
                    return llama_state_seq_get_size_ext(ctx, seq, flags);
                });
            },
            "seq_id"_a, "flags"_a = 0, "Size in bytes of one sequence's state (flags: STATE_SEQ_FLAGS_*).")
        .def(
            "state_seq_get_data_ext",
            [](Context &c, llama_seq_id seq, uint32_t flags) { return get_state(c, seq, flags); }, "seq_id"_a,
            "flags"_a, "One sequence's state with flags (STATE_SEQ_FLAGS_PARTIAL_ONLY, ...).")
        .def(
            "state_seq_set_data_ext",
            [](Context &c, nb::bytes data, llama_seq_id seq, uint32_t flags) {
                return set_state(c, data, seq, flags, "state_seq_set_data_ext");
            },
            "data"_a, "seq_id"_a, "flags"_a, "Restore one sequence with flags; returns bytes read.")
        .def(
            "state_seq_save_file",
            [](Context &c, const std::filesystem::path &path, llama_seq_id seq,
               const std::vector<llama_token> &tokens) { return save_state_file(c, path, seq, tokens); },
            "path"_a, "seq_id"_a, "tokens"_a,
            nb::sig("def state_seq_save_file(self, path: str | os.PathLike[str], seq_id: int, tokens: "
                    "collections.abc.Sequence[int]) -> int"),
            "Save one sequence's state and its tokens to a file; returns bytes written.")
        .def(
            "state_seq_load_file",
            [](Context &c, const std::filesystem::path &path, llama_seq_id seq, size_t n_token_capacity) {
                return load_state_file(c, path, seq, n_token_capacity);
            },
            "path"_a, "seq_id"_a, "n_token_capacity"_a = 1 << 20,
            nb::sig("def state_seq_load_file(self, path: str | os.PathLike[str], seq_id: int, n_token_capacity: int = "
                    "1048576) -> list[int]"),
            "Load a sequence state file into seq_id; returns its tokens.")
        // --- whole output buffers
        .def("get_logits", &get_logits, "copy"_a = false,
             nb::sig("def get_logits(self, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]"),
             "All output rows of the last decode, shape (n_outputs, n_vocab), as a read-only view\n"
             "(same rules as get_logits_ith).")
        .def("get_embeddings", &get_embeddings, "copy"_a = false,
             nb::sig("def get_embeddings(self, copy: bool = False) -> numpy.typing.NDArray[numpy.float32]"),
             "All output embeddings of the last decode (pooling NONE), shape (n_outputs, n_embd).")
        // --- results of backend samplers (set_sampler)
        .def("get_sampled_token_ith", &get_sampled_token_ith, "i"_a,
             "Token a backend sampler chose for output i, or None.")
        .def("get_sampled_probs_ith", &get_sampled_probs_ith, "i"_a,
             "Probabilities a backend sampler computed for output i (a copy), or None.")
        .def("get_sampled_logits_ith", &get_sampled_logits_ith, "i"_a,
             "Logits a backend sampler left for output i (a copy), or None.")
        .def("get_sampled_candidates_ith", &get_sampled_candidates_ith, "i"_a,
             "Candidate token ids matching get_sampled_probs_ith/get_sampled_logits_ith (a copy).")
        // --- adapters
        .def("set_adapters_lora", &set_adapters_lora, "adapters"_a,
             nb::sig(
                 "def set_adapters_lora(self, adapters: collections.abc.Sequence[tuple[LoraAdapter, float]]) -> None"),
             "Use these (adapter, scale) pairs from now on (an empty list removes all).")
        .def("set_adapter_cvec", &set_adapter_cvec, "data"_a.none(), "n_embd"_a, "il_start"_a, "il_end"_a,
             "Apply a control vector (n_layer rows of n_embd floats, starting at layer 1) to layers\n"
             "[il_start, il_end], or clear it with data=None.")
        // --- perf
        .def("perf", &perf, "Timings (llama_perf_context) as a dict.")
        .def(
            "perf_reset", [](Context &c) { c.locked([](llama_context *ctx) { llama_perf_context_reset(ctx); }); },
            "Reset the timings.")
        .def(
            "perf_print", [](Context &c) { c.locked([](llama_context *ctx) { llama_perf_context_print(ctx); }); },
            "Log the timings through llama.cpp's log.")
        .def("__repr__",
             [](Context &c) {
                 if (!c.ptr) return std::string("<llamanb.core.Context closed>");
                 return "<llamanb.core.Context n_ctx=" + std::to_string(llama_n_ctx(c.ptr)) + ">";
             })
        // --- other areas' objects: BatchExt (batch.cpp), backend samplers (sampler.cpp),
        // thread pools (backend.cpp). Bound last, where they were listed before.
        .def("process", &process, "type"_a, "batch"_a,
             "[EXPERIMENTAL] Encode or decode a BatchExt (GIL released); errors as in decode().\n"
             "Read outputs with get_logits_ith()/get_embeddings_ith().")
        .def("set_sampler", &set_sampler, "seq_id"_a, "chain"_a,
             "[EXPERIMENTAL] Run a sampler chain inside the decode graph for a sequence; the\n"
             "context takes the chain over. Results: get_sampled_token_ith() and friends.")
        .def("attach_threadpool", &attach_threadpool, "threadpool"_a, "threadpool_batch"_a = nb::none(),
             nb::sig("def attach_threadpool(self, threadpool: Threadpool, threadpool_batch: Threadpool | None = None) "
                     "-> None"),
             "Run this context's decodes on these pools (the batch pool defaults to the first).")
        .def("detach_threadpool", &detach_threadpool,
             "Go back to the context's own pool (attached pools stay alive until the context closes).");
}
