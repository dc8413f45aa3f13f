// llama_model: loading (GIL released, progress callback), properties, metadata.
#include "model.h"
#include "callbacks.h"
#include "rpc.h"
#include "weights.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>

#include <filesystem>

namespace {

// llama_model_params plus the Python objects its pointers refer to.
struct ModelParams {
    llama_model_params p = llama_model_default_params();
    nb::object progress_callback = nb::none();
    std::vector<std::string> rpc_servers;
};

// Connects to the RPC workers of params and points p.devices at their devices
// (kept in devs); the model then places its offloaded layers on them only.
std::vector<std::pair<std::string, uint64_t>> use_rpc_servers(const ModelParams &params, llama_model_params &p,
                                                              std::vector<ggml_backend_dev_t> &devs) {
    std::vector<std::pair<std::string, uint64_t>> endpoints;
    if (params.rpc_servers.empty()) return endpoints;
    for (const std::string &endpoint : params.rpc_servers) {
        for (ggml_backend_dev_t d : rpc_devices(endpoint)) devs.push_back(d);
        endpoints.emplace_back(endpoint, rpc_n_failures(endpoint));
    }
    devs.push_back(nullptr);
    p.devices = devs.data();
    return endpoints;
}

llama_model_params load_params(const ModelParams &mp) {
    llama_model_params p = mp.p;
    // Nothing is read with no_alloc, and llama.cpp asserts when it would map the file.
    if (p.no_alloc) p.load_mode = LLAMA_LOAD_MODE_NONE;
    return p;
}

// FileNotFoundError / IsADirectoryError up front: llama.cpp would only log and fail.
void check_model_path(const std::filesystem::path &path) {
    std::error_code ec;
    auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) {
        PyErr_Format(PyExc_FileNotFoundError, "model file not found: '%s'", path.string().c_str());
        throw nb::python_error();
    }
    if (std::filesystem::is_directory(status)) {
        PyErr_Format(PyExc_IsADirectoryError, "model path is a directory: '%s'", path.string().c_str());
        throw nb::python_error();
    }
}

void load_model(Model *self, const std::filesystem::path &path, const ModelParams *params) {
    check_model_path(path);
    new (self) Model();
    self->path = path.string();
    ModelParams defaults;
    const ModelParams &mp = params ? *params : defaults;
    llama_model_params p = load_params(mp);
    std::vector<ggml_backend_dev_t> devs;
    auto rpc_endpoints = use_rpc_servers(mp, p, devs);
    ProgressState progress;
    if (!mp.progress_callback.is_none()) {
        progress.fn = mp.progress_callback;
        p.progress_callback = progress_trampoline;
        p.progress_callback_user_data = &progress;
    }
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        self->ptr = llama_model_load_from_file(self->path.c_str(), p);
    }
    if (progress.error.set()) {
        self->closed = true;
        progress.error.raise();
    }
    if (!self->ptr) {
        self->closed = true;
        throw ModelLoadError(with_log_reason("failed to load model from '" + self->path + "'"));
    }
    self->rpc_endpoints = std::move(rpc_endpoints);
    self->no_alloc = p.no_alloc;
}

Model *load_splits(const std::vector<std::string> &paths, const ModelParams *params) {
    if (paths.empty()) throw nb::value_error("need at least one split path");
    for (auto &p : paths) check_model_path(p);
    ModelParams defaults;
    const ModelParams &mp = params ? *params : defaults;
    std::vector<const char *> c_paths;
    for (auto &p : paths) c_paths.push_back(p.c_str());
    llama_model_params p = load_params(mp);
    std::vector<ggml_backend_dev_t> devs;
    auto rpc_endpoints = use_rpc_servers(mp, p, devs);
    llama_model *ptr;
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        ptr = llama_model_load_from_splits(c_paths.data(), c_paths.size(), p);
    }
    if (!ptr) throw ModelLoadError(with_log_reason("failed to load model from splits starting at '" + paths[0] + "'"));
    auto *m = new Model();
    m->ptr = ptr;
    m->path = paths[0];
    m->split_paths = paths;
    m->rpc_endpoints = std::move(rpc_endpoints);
    m->no_alloc = p.no_alloc;
    return m;
}

struct QuantizeParams {
    llama_model_quantize_params p = llama_model_quantize_default_params();
};

void quantize_model(const std::filesystem::path &input, const std::filesystem::path &output,
                    const QuantizeParams *params) {
    check_model_path(input);
    QuantizeParams defaults;
    llama_model_quantize_params p = (params ? *params : defaults).p;
    std::string in = input.string(), out = output.string();
    uint32_t rc;
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        rc = llama_model_quantize(in.c_str(), out.c_str(), &p);
    }
    if (rc != 0) throw LlamaError(with_log_reason("llama_model_quantize failed with code " + std::to_string(rc)));
}

}  // namespace

#define QPARAM(name, doc)                                  \
    def_prop_rw(                                           \
        #name, [](QuantizeParams &s) { return s.p.name; }, \
        [](QuantizeParams &s, decltype(llama_model_quantize_params::name) v) { s.p.name = v; }, doc)

#define PARAM(name, doc)                                \
    def_prop_rw(                                        \
        #name, [](ModelParams &s) { return s.p.name; }, \
        [](ModelParams &s, decltype(llama_model_params::name) v) { s.p.name = v; }, doc)

void init_model(nb::module_ &m) {
    nb::enum_<llama_split_mode>(m, "SplitMode", nb::is_arithmetic(), "How to split a model across GPUs.")
        .value("NONE", LLAMA_SPLIT_MODE_NONE)
        .value("LAYER", LLAMA_SPLIT_MODE_LAYER)
        .value("ROW", LLAMA_SPLIT_MODE_ROW)
        .value("TENSOR", LLAMA_SPLIT_MODE_TENSOR);
    nb::enum_<llama_load_mode>(m, "LoadMode", nb::is_arithmetic(), "How model weights are read.")
        .value("AUTO", LLAMA_LOAD_MODE_AUTO)
        .value("NONE", LLAMA_LOAD_MODE_NONE)
        .value("MMAP", LLAMA_LOAD_MODE_MMAP)
        .value("MLOCK", LLAMA_LOAD_MODE_MLOCK)
        .value("MMAP_MLOCK", LLAMA_LOAD_MODE_MMAP_MLOCK)
        .value("DIRECT_IO", LLAMA_LOAD_MODE_DIRECT_IO);
    nb::enum_<llama_rope_type>(m, "RopeType", nb::is_arithmetic(), "RoPE variant of a model.")
        .value("NONE", LLAMA_ROPE_TYPE_NONE)
        .value("NORM", LLAMA_ROPE_TYPE_NORM)
        .value("NEOX", LLAMA_ROPE_TYPE_NEOX)
        .value("MROPE", LLAMA_ROPE_TYPE_MROPE)
        .value("IMROPE", LLAMA_ROPE_TYPE_IMROPE)
        .value("VISION", LLAMA_ROPE_TYPE_VISION);

    nb::enum_<llama_model_meta_key>(m, "ModelMetaKey", nb::is_arithmetic(),
                                    "Well-known metadata keys (sampling defaults).")
        .value("SAMPLING_SEQUENCE", LLAMA_MODEL_META_KEY_SAMPLING_SEQUENCE)
        .value("SAMPLING_TOP_K", LLAMA_MODEL_META_KEY_SAMPLING_TOP_K)
        .value("SAMPLING_TOP_P", LLAMA_MODEL_META_KEY_SAMPLING_TOP_P)
        .value("SAMPLING_MIN_P", LLAMA_MODEL_META_KEY_SAMPLING_MIN_P)
        .value("SAMPLING_XTC_PROBABILITY", LLAMA_MODEL_META_KEY_SAMPLING_XTC_PROBABILITY)
        .value("SAMPLING_XTC_THRESHOLD", LLAMA_MODEL_META_KEY_SAMPLING_XTC_THRESHOLD)
        .value("SAMPLING_TEMP", LLAMA_MODEL_META_KEY_SAMPLING_TEMP)
        .value("SAMPLING_PENALTY_LAST_N", LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_LAST_N)
        .value("SAMPLING_PENALTY_REPEAT", LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_REPEAT)
        .value("SAMPLING_MIROSTAT", LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT)
        .value("SAMPLING_MIROSTAT_TAU", LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_TAU)
        .value("SAMPLING_MIROSTAT_ETA", LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_ETA);
    m.def(
        "model_meta_key_str", [](llama_model_meta_key k) { return std::string(llama_model_meta_key_str(k)); }, "key"_a,
        "The GGUF key string of a ModelMetaKey.");

    nb::class_<QuantizeParams>(m, "QuantizeParams", "llama_model_quantize_params, with llama.cpp's defaults.")
        .def(nb::init<>())
        .QPARAM(nthread, "Threads (<= 0: all cores).")
        .def_prop_rw(
            "ftype", [](QuantizeParams &s) { return (int) s.p.ftype; },
            [](QuantizeParams &s, int v) { s.p.ftype = (llama_ftype) v; }, "Target llama_ftype (see ftype_name).")
        .def_prop_rw(
            "output_tensor_type", [](QuantizeParams &s) { return (int) s.p.output_tensor_type; },
            [](QuantizeParams &s, int v) { s.p.output_tensor_type = (ggml_type) v; }, "ggml_type of output.weight.")
        .def_prop_rw(
            "token_embedding_type", [](QuantizeParams &s) { return (int) s.p.token_embedding_type; },
            [](QuantizeParams &s, int v) { s.p.token_embedding_type = (ggml_type) v; },
            "ggml_type of the token embeddings.")
        .QPARAM(allow_requantize, "Allow quantizing already-quantized tensors.")
        .QPARAM(quantize_output_tensor, "Quantize output.weight.")
        .QPARAM(only_copy, "Only copy tensors.")
        .QPARAM(pure, "Quantize all tensors to the default type.")
        .QPARAM(keep_split, "Keep the number of shards.")
        .QPARAM(dry_run, "Only compute the resulting size.");
    m.def("model_quantize", &quantize_model, "input"_a, "output"_a, "params"_a = nb::none(),
          nb::sig("def model_quantize(input: str | os.PathLike[str], output: str | os.PathLike[str], params: "
                  "QuantizeParams | None = None) -> None"),
          "Quantize a GGUF model file into another (GIL released).");

    nb::class_<ModelParams>(m, "ModelParams", "llama_model_params, with llama.cpp's defaults.")
        .def(nb::init<>())
        .PARAM(n_gpu_layers, "Layers to offload to the GPU; negative offloads all.")
        .PARAM(split_mode, "How to split the model across GPUs.")
        .PARAM(main_gpu, "GPU used for the whole model when split_mode is NONE.")
        .PARAM(load_mode, "How weights are read (mmap, mlock, direct I/O).")
        .PARAM(vocab_only, "Load only the vocabulary, no weights.")
        .PARAM(check_tensors, "Validate tensor data while loading.")
        .PARAM(use_extra_bufts, "Allow extra buffer types (weight repacking).")
        .PARAM(no_host, "Bypass the host buffer.")
        .PARAM(no_alloc,
               "Only load metadata and simulate allocations (no weights: such a model\n"
               "cannot run contexts, and its weights cannot be read or saved).")
        .def_rw("rpc_servers", &ModelParams::rpc_servers,
                "ggml RPC workers ('host:port', see rpc_serve) that hold the offloaded layers\n"
                "(n_gpu_layers of them, split by the workers' free memory) instead of local GPUs.\n"
                "Loading raises RpcConnectionError when one does not answer.")
        .def_rw("progress_callback", &ModelParams::progress_callback, nb::arg("value").none(),
                nb::for_getter(
                    nb::sig("def progress_callback(self, /) -> collections.abc.Callable[[float], bool | None] | None")),
                nb::for_setter(nb::sig("def progress_callback(self, value: collections.abc.Callable[[float], bool | "
                                       "None] | None, /) -> None")),
                "Called with progress in [0, 1] while loading; returning False cancels the load.\n"
                "An exception it raises cancels the load and is re-raised by Model().");

    nb::class_<Model>(m, "Model", "A loaded GGUF model (llama_model).")
        .def("__init__", &load_model, "path"_a, "params"_a = nb::none(),
             nb::sig("def __init__(self, path: str | os.PathLike[str], params: ModelParams | None = None) -> None"),
             "Load a GGUF model file. The GIL is released while loading.\n\n"
             "Raises FileNotFoundError, ModelLoadError (not a GGUF / unsupported), or\n"
             "whatever the progress callback raised.")
        .def("close", &Model::close, "Free the model. Idempotent; contexts built on it keep it alive until they close.")
        .def_prop_ro(
            "closed", [](const Model &s) { return s.closed; }, "True after close().")
        .def(
            "__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> Model"))
        .def(
            "__exit__", [](Model &s, nb::handle, nb::handle, nb::handle) { s.close(); }, "exc_type"_a.none(),
            "exc"_a.none(), "tb"_a.none())
        .def_prop_ro(
            "path", [](const Model &s) { return s.path; }, "The file the model was loaded from.")
        .def_prop_ro(
            "vocab",
            [](nb::object self) {
                Model &s = nb::cast<Model &>(self);
                s.get();
                return Vocab{self, &s};
            },
            "The model's vocabulary (keeps the model alive).")
        .def_prop_ro(
            "n_ctx_train", [](const Model &s) { return llama_model_n_ctx_train(s.get()); }, "Training context length.")
        .def_prop_ro(
            "n_embd", [](const Model &s) { return llama_model_n_embd(s.get()); }, "Embedding size.")
        .def_prop_ro(
            "n_embd_inp", [](const Model &s) { return llama_model_n_embd_inp(s.get()); }, "Input embedding size.")
        .def_prop_ro(
            "n_embd_out", [](const Model &s) { return llama_model_n_embd_out(s.get()); }, "Output embedding size.")
        .def_prop_ro(
            "n_layer", [](const Model &s) { return llama_model_n_layer(s.get()); }, "Number of layers.")
        .def_prop_ro(
            "n_layer_nextn", [](const Model &s) { return llama_model_n_layer_nextn(s.get()); },
            "Number of next-token-prediction layers.")
        .def_prop_ro(
            "n_head", [](const Model &s) { return llama_model_n_head(s.get()); }, "Attention heads.")
        .def_prop_ro(
            "n_head_kv", [](const Model &s) { return llama_model_n_head_kv(s.get()); }, "KV heads.")
        .def_prop_ro(
            "n_swa", [](const Model &s) { return llama_model_n_swa(s.get()); }, "Sliding-window size (0: none).")
        .def_prop_ro(
            "rope_type", [](const Model &s) { return llama_model_rope_type(s.get()); }, "RoPE variant.")
        .def_prop_ro(
            "rope_freq_scale_train", [](const Model &s) { return llama_model_rope_freq_scale_train(s.get()); },
            "RoPE frequency scale used in training.")
        .def_prop_ro(
            "n_cls_out", [](const Model &s) { return llama_model_n_cls_out(s.get()); },
            "Classifier outputs (rerankers).")
        .def(
            "cls_label",
            [](const Model &s, uint32_t i) -> std::optional<std::string> {
                if (i >= llama_model_n_cls_out(s.get())) throw nb::index_error("classifier output index out of range");
                const char *label = llama_model_cls_label(s.get(), i);
                if (!label) return std::nullopt;
                return std::string(label);
            },
            "i"_a, "Label of classifier output `i`, or None.")
        .def_prop_ro(
            "desc",
            [](const Model &s) {
                return *read_c_string([&](char *b, size_t n) { return llama_model_desc(s.get(), b, n); });
            },
            "Short description, e.g. 'llama ?B Q4_1'.")
        .def_prop_ro(
            "size", [](const Model &s) { return llama_model_size(s.get()); }, "Total size of all tensors in bytes.")
        .def_prop_ro(
            "n_params", [](const Model &s) { return llama_model_n_params(s.get()); }, "Number of parameters.")
        .def_prop_ro(
            "ftype", [](const Model &s) { return (int) llama_model_ftype(s.get()); }, "llama_ftype of the weights.")
        .def_prop_ro(
            "has_encoder", [](const Model &s) { return llama_model_has_encoder(s.get()); },
            "True for encoder(-decoder) models.")
        .def_prop_ro(
            "has_decoder", [](const Model &s) { return llama_model_has_decoder(s.get()); },
            "True if the model has a decoder.")
        .def_prop_ro(
            "decoder_start_token", [](const Model &s) { return llama_model_decoder_start_token(s.get()); },
            "Decoder start token of encoder-decoder models, or -1.")
        .def_prop_ro(
            "is_recurrent", [](const Model &s) { return llama_model_is_recurrent(s.get()); },
            "True for recurrent models (Mamba, RWKV).")
        .def_prop_ro(
            "is_hybrid", [](const Model &s) { return llama_model_is_hybrid(s.get()); },
            "True for hybrid attention/recurrent models.")
        .def_prop_ro(
            "is_diffusion", [](const Model &s) { return llama_model_is_diffusion(s.get()); },
            "True for diffusion models.")
        .def(
            "chat_template",
            [](const Model &s, std::optional<std::string> name) -> std::optional<std::string> {
                const char *t = llama_model_chat_template(s.get(), name ? name->c_str() : nullptr);
                if (!t) return std::nullopt;
                return std::string(t);
            },
            "name"_a = nb::none(), "The chat template stored in the model (named, or the default), or None.")
        .def(
            "meta_val_str",
            [](const Model &s, const std::string &key) {
                return read_c_string(
                    [&](char *b, size_t n) { return llama_model_meta_val_str(s.get(), key.c_str(), b, n); });
            },
            "key"_a, "A metadata value as a string, or None if the key is absent.")
        .def_prop_ro(
            "meta",
            [](const Model &s) {
                std::map<std::string, std::string> out;
                int32_t count = llama_model_meta_count(s.get());
                for (int32_t i = 0; i < count; ++i) {
                    auto k = read_c_string(
                        [&](char *b, size_t n) { return llama_model_meta_key_by_index(s.get(), i, b, n); });
                    auto v = read_c_string(
                        [&](char *b, size_t n) { return llama_model_meta_val_str_by_index(s.get(), i, b, n); });
                    if (k && v) out[*k] = *v;
                }
                return out;
            },
            "All metadata as {key: value-as-string} (arrays are elided by llama.cpp).")
        .def_static("from_splits", &load_splits, "paths"_a, "params"_a = nb::none(), nb::rv_policy::take_ownership,
                    "Load a model split over several GGUF files, given in order (any naming scheme).")
        .def(
            "save",
            [](Model &s, const std::filesystem::path &path) {
                std::string p = path.string();
                clear_last_error_log();
                save_model(s, p);
                if (!std::filesystem::exists(path))
                    throw LlamaError(with_log_reason("failed to save model to '" + p + "'"));
            },
            "path"_a, nb::sig("def save(self, path: str | os.PathLike[str]) -> None"),
            "Write the model (weights and metadata) to a GGUF file (GIL released). Weights\n"
            "repacked in memory (AMX, CPU_REPACK) are written as the source file has them.")
        .def_prop_ro(
            "buffer_types", [](const Model &s) { return weight_buffer_sizes(s.get()); },
            "{buffer type: bytes of weights}, e.g. {'CPU': ..., 'AMX': ...}: where the weights live.\n"
            "AMX and CPU_REPACK hold weights repacked for faster kernels (ModelParams.use_extra_bufts).")
        .def("__repr__", [](const Model &s) {
            if (s.closed) return std::string("<llamanb.core.Model closed>");
            return "<llamanb.core.Model '" + s.path + "'>";
        });
}
