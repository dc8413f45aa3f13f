// Opening and closing an MtmdContext (mtmd_context.h).
#include "mtmd_context.h"
#include "backend.h"

[[noreturn]] void raise_missing_file(const char *what, const std::filesystem::path &path) {
    PyErr_Format(std::filesystem::exists(path) ? PyExc_IsADirectoryError : PyExc_FileNotFoundError,
                 "%s file not found: '%s'", what, path.string().c_str());
    throw nb::python_error();
}

void mtmd_context_init(MtmdContext *self, const std::filesystem::path &path, nb::object model_obj,
                       const MtmdParams *params) {
    Model &model = nb::cast<Model &>(model_obj);
    llama_model *mp = model.get();
    if (model.no_alloc) throw nb::value_error("this model was loaded with no_alloc: it has no weights");
    if (!std::filesystem::is_regular_file(path)) raise_missing_file("projector", path);
    MtmdParams defaults;
    const MtmdParams &prm = params ? *params : defaults;
    mtmd_context_params p = prm.p;
    check_thread_count(p.n_threads, "n_threads");
    std::string marker = prm.media_marker;
    p.media_marker = marker.c_str();
    p.image_marker = nullptr;
    std::string fname = path.string();
    model.acquire();  // the projector reads the model for its whole life
    mtmd_context *ctx;
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        ctx = mtmd_init_from_file(fname.c_str(), mp, p);
    }
    if (!ctx) {
        std::string reason = with_log_reason("failed to load the projector " + fname +
                                             " (not an mmproj GGUF, or not one for this model)");
        model.release();
        throw ModelLoadError(reason);
    }
    new (self) MtmdContext();
    self->ptr = ctx;
    self->model_obj = model_obj;
    self->model = &model;
    self->path = fname;
    self->n_embd = llama_model_n_embd_inp(mp);
}

void mtmd_context_close(MtmdContext &c) {
    {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> guard(c.mutex);  // waits for a running call
        c.closing = true;
    }
    c.free_now();
}

#define MPARAM(name, doc)                              \
    def_prop_rw(                                       \
        #name, [](MtmdParams &s) { return s.p.name; }, \
        [](MtmdParams &s, decltype(mtmd_context_params::name) v) { s.p.name = v; }, doc)

void init_mtmd_context_params(nb::module_ &m) {
    nb::class_<MtmdParams>(m, "MtmdContextParams", "mtmd_context_params, with libmtmd's defaults.")
        .def(nb::init<>())
        .MPARAM(use_gpu, "Run the projector on the GPU (when one is compiled in).")
        .MPARAM(print_timings, "Log encode timings.")
        .MPARAM(n_threads, "Threads for the projector's encode.")
        .MPARAM(flash_attn_type, "Flash attention in the projector.")
        .MPARAM(warmup, "Run a warmup encode when loading.")
        .MPARAM(image_min_tokens, "Fewest tokens per image (dynamic-resolution models; -1: the file's).")
        .MPARAM(image_max_tokens, "Most tokens per image (dynamic-resolution models; -1: the file's).")
        .MPARAM(batch_max_tokens, "Most output tokens of a media batch encode.")
        .def_prop_rw(
            "media_marker", [](const MtmdParams &s) { return s.media_marker; },
            [](MtmdParams &s, std::string v) {
                if (v.empty()) throw nb::value_error("media_marker must not be empty");
                s.media_marker = std::move(v);
            },
            "The text tokenize() replaces by each bitmap, in order.");
}
