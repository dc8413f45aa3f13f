// Process-level llama/ggml facilities: backends and devices, thread pools,
// NUMA, enum names, split-file paths.
#include "backend.h"
#include "context.h"

#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <nanobind/stl/map.h>

namespace {

// CPU-backend functions, looked up through the registry so that the same code
// works when the CPU backend is a dynamically loaded variant (GGML_BACKEND_DL).
template <typename F>
F *cpu_proc(const char *name) {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    return reg ? (F *) ggml_backend_reg_get_proc_address(reg, name) : nullptr;
}

template <typename F>
std::string fill_path(F &&fill) {
    std::string buf(4096, '\0');
    int32_t n = fill(buf.data(), buf.size());
    if (n <= 0) return std::string();
    buf.resize((size_t) n);
    return buf;
}

const char *dev_type_name(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:
            return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:
            return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:
            return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL:
            return "accel";
        default:
            return "other";
    }
}

}  // namespace

Threadpool::~Threadpool() { free_cpu_threadpool(ptr); }

void check_thread_count(int64_t n, const char *what) {
    if (n < 1 || n > GGML_MAX_N_THREADS)
        throw nb::value_error((std::string(what) + " must be within 1.." + std::to_string(GGML_MAX_N_THREADS) +
                               ", got " + std::to_string(n))
                                  .c_str());
}

ggml_threadpool *new_cpu_threadpool(int n_threads) {
    check_thread_count(n_threads, "n_threads");
    auto *new_fn = cpu_proc<decltype(ggml_threadpool_new)>("ggml_threadpool_new");
    if (!new_fn) throw LlamaError("the CPU backend offers no thread pools");
    ggml_threadpool_params p = ggml_threadpool_params_default(n_threads);
    p.poll = 0;
    ggml_threadpool *tp = new_fn(&p);
    if (!tp) throw LlamaError("could not create a thread pool");
    return tp;
}

void free_cpu_threadpool(ggml_threadpool *tp) {
    if (auto *free_fn = cpu_proc<decltype(ggml_threadpool_free)>("ggml_threadpool_free"); tp && free_fn) free_fn(tp);
}

void use_own_threadpool(Context &c, llama_context *ctx) {
    const int n = std::max(llama_n_threads(ctx), llama_n_threads_batch(ctx));
    if (!c.own_pool || n > c.own_pool_threads) {
        ggml_threadpool *grown = new_cpu_threadpool(n);
        // The CPU backend keeps the pool it last ran on until its next graph (it pauses it
        // then), so an outgrown pool lives until the context is freed.
        if (c.own_pool) c.retired_pools.push_back(c.own_pool);
        c.own_pool = grown;
        c.own_pool_threads = n;
    }
    // One pool for both counts: a graph needing fewer threads leaves the rest asleep.
    llama_attach_threadpool(ctx, c.own_pool, c.own_pool);
    c.own_pool_in_use = true;
}

void attach_threadpool(nb::object ctx_obj, nb::object pool, nb::object pool_batch) {
    Context &c = nb::cast<Context &>(ctx_obj);
    Threadpool &p = nb::cast<Threadpool &>(pool);
    Threadpool &pb = pool_batch.is_none() ? p : nb::cast<Threadpool &>(pool_batch);
    ggml_threadpool *tp = p.get();
    ggml_threadpool *tpb = pb.get();
    for (const Threadpool *t : {&p, &pb})
        if (t->user && t->user != &c)
            throw nb::value_error(
                "this Threadpool serves another context until it closes (a pool runs one graph at a time)");
    p.user = pb.user = &c;  // with the GIL held, so no other attach takes them meanwhile
    try {
        c.locked([&](llama_context *ctx) {
            llama_attach_threadpool(ctx, tp, tpb);
            c.own_pool_in_use = false;
        });
    } catch (...) {
        p.user = pb.user = nullptr;  // the context is closed
        throw;
    }
    c.attached.push_back(pool);  // keep the pools alive while the context may use them
    if (!pool_batch.is_none()) c.attached.push_back(pool_batch);
}

void detach_threadpool(Context &c) {
    c.locked([&](llama_context *ctx) {
        llama_detach_threadpool(ctx);
        use_own_threadpool(c, ctx);
    });
}

void init_backend(nb::module_ &m, nb::module_ &ggml) {
    nb::enum_<ggml_numa_strategy>(m, "NumaStrategy", nb::is_arithmetic(), "NUMA placement strategies.")
        .value("DISABLED", GGML_NUMA_STRATEGY_DISABLED)
        .value("DISTRIBUTE", GGML_NUMA_STRATEGY_DISTRIBUTE)
        .value("ISOLATE", GGML_NUMA_STRATEGY_ISOLATE)
        .value("NUMACTL", GGML_NUMA_STRATEGY_NUMACTL)
        .value("MIRROR", GGML_NUMA_STRATEGY_MIRROR);
    m.def(
        "numa_init", [](ggml_numa_strategy s) { llama_numa_init(s); }, "strategy"_a,
        "Enable NUMA optimizations (call once, before loading models).");

    ggml.def(
        "backends",
        []() {
            std::vector<std::string> out;
            for (size_t i = 0; i < ggml_backend_reg_count(); ++i)
                out.emplace_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
            return out;
        },
        "Names of the ggml backends compiled in (e.g. ['CPU'] or ['CUDA', 'CPU']).");
    ggml.def(
        "cpu_features",
        []() {
            std::map<std::string, std::string> out;
            using features_fn = ggml_backend_feature *(ggml_backend_reg_t);
            ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
            auto *get = cpu_proc<features_fn>("ggml_backend_get_features");
            if (reg && get)
                for (ggml_backend_feature *f = get(reg); f && f->name; ++f) out[f->name] = f->value;
            return out;
        },
        "Features of the CPU backend in use (e.g. {'AVX2': '1', ...}); with runtime dispatch,\n"
        "those of the variant that was picked for this CPU.");
    ggml.def(
        "devices",
        []() {
            std::vector<std::map<std::string, std::string>> out;
            for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
                ggml_backend_dev_t d = ggml_backend_dev_get(i);
                size_t free_mem = 0, total_mem = 0;
                ggml_backend_dev_memory(d, &free_mem, &total_mem);
                out.push_back({{"name", ggml_backend_dev_name(d)},
                               {"description", ggml_backend_dev_description(d)},
                               {"type", dev_type_name(ggml_backend_dev_type(d))},
                               {"backend", ggml_backend_reg_name(ggml_backend_dev_backend_reg(d))},
                               {"memory_free", std::to_string(free_mem)},
                               {"memory_total", std::to_string(total_mem)}});
            }
            return out;
        },
        "The devices ggml can use, as dicts (name, description, type, backend, memory_free, memory_total).");

    nb::class_<Threadpool>(m, "Threadpool",
                           "A ggml CPU thread pool for one context at a time (each context has a pool of its\n"
                           "own already; one attached replaces it until detach_threadpool()).")
        .def(
            "__init__",
            [](Threadpool *self, int n_threads) {
                ggml_threadpool *tp = new_cpu_threadpool(n_threads);
                new (self) Threadpool();
                self->ptr = tp;
                self->n_threads = n_threads;
            },
            "n_threads"_a)
        .def_prop_ro("n_threads", [](const Threadpool &t) { return t.n_threads; }, "Threads in the pool.");

    m.def(
        "ftype_name", [](int ftype) { return std::string(llama_ftype_name((llama_ftype) ftype)); }, "ftype"_a,
        "Name of a llama_ftype, e.g. 'Q4_1'.");
    m.def(
        "flash_attn_type_name", [](llama_flash_attn_type t) { return std::string(llama_flash_attn_type_name(t)); },
        "type"_a, "Name of a FlashAttnType.");
    m.def(
        "load_mode_name", [](llama_load_mode t) { return std::string(llama_load_mode_name(t)); }, "mode"_a,
        "Name of a LoadMode.");
    m.def(
        "load_mode_from_str", [](const std::string &s) { return llama_load_mode_from_str(s.c_str()); }, "name"_a,
        "LoadMode from its name.");
    m.def("max_tensor_buft_overrides", &llama_max_tensor_buft_overrides, "Most tensor buffer-type overrides.");

    m.def(
        "split_path",
        [](const std::string &prefix, int split_no, int split_count) {
            if (split_no < 0 || split_count < 1 || split_no >= split_count)
                throw nb::value_error("need 0 <= split_no < split_count");
            return fill_path(
                [&](char *b, size_t n) { return llama_split_path(b, n, prefix.c_str(), split_no, split_count); });
        },
        "path_prefix"_a, "split_no"_a, "split_count"_a,
        "Path of one split: split_path('/m/x', 1, 4) == '/m/x-00002-of-00004.gguf'.");
    m.def(
        "split_prefix",
        [](const std::string &path, int split_no, int split_count) -> std::optional<std::string> {
            std::string out = fill_path(
                [&](char *b, size_t n) { return llama_split_prefix(b, n, path.c_str(), split_no, split_count); });
            if (out.empty()) return std::nullopt;
            return out;
        },
        "split_path"_a, "split_no"_a, "split_count"_a, "The prefix of a split path if its numbers match, else None.");
}
