// LoRA adapters (llama_adapter_lora) and control vectors. An adapter keeps its
// model alive; a context keeps the adapters set on it alive.
#include "adapter.h"
#include "context.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>

#include <filesystem>

namespace {

void adapter_init(LoraAdapter *self, nb::object model_obj, const std::filesystem::path &path) {
    Model &model = nb::cast<Model &>(model_obj);
    llama_model *mp = model.get();
    std::string p = path.string();
    if (!std::filesystem::exists(path)) {
        PyErr_Format(PyExc_FileNotFoundError, "adapter file not found: '%s'", p.c_str());
        throw nb::python_error();
    }
    llama_adapter_lora *a;
    {
        ModelUse use(&model);  // a close() from another thread defers the free
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        a = llama_adapter_lora_init(mp, p.c_str());
    }
    if (!a) throw ModelLoadError(with_log_reason("failed to load LoRA adapter from '" + p + "'"));
    new (self) LoraAdapter();
    self->ptr = a;
    self->model_obj = model_obj;
    self->model = &model;
    model.acquire();
}

}  // namespace

void LoraAdapter::free_now() {
    if (users > 0) return;  // the last context using it frees it
    if (ptr) {
        llama_adapter_lora_free(ptr);
        ptr = nullptr;
        model->release();
    }
}

void set_adapters_lora(Context &c, const std::vector<std::pair<nb::object, float>> &items) {
    std::vector<llama_adapter_lora *> ptrs;
    std::vector<float> scales;
    std::vector<nb::object> keep;
    for (auto &[obj, scale] : items) {
        LoraAdapter &a = nb::cast<LoraAdapter &>(obj);
        if (a.model != c.model) throw nb::value_error("adapter was loaded for a different model");
        ptrs.push_back(a.get());
        scales.push_back(scale);
        keep.push_back(obj);
    }
    int32_t rc = c.locked([&](llama_context *ctx) {
        clear_last_error_log();
        return llama_set_adapters_lora(ctx, ptrs.data(), ptrs.size(), scales.data());
    });
    if (rc != 0) throw LlamaError(with_log_reason("llama_set_adapters_lora failed with code " + std::to_string(rc)));
    for (auto &obj : keep) nb::cast<LoraAdapter &>(obj).users += 1;
    for (auto &obj : c.adapters) nb::cast<LoraAdapter &>(obj).remove_user();
    c.adapters = std::move(keep);
}

void set_adapter_cvec(Context &c, std::optional<ControlVectorIn> data, int32_t n_embd, int32_t il_start,
                      int32_t il_end) {
    c.check_open();
    int32_t n_layer = llama_model_n_layer(c.model->ptr);
    if (data) {
        if (n_embd != llama_model_n_embd(c.model->ptr)) throw nb::value_error("n_embd must equal the model's n_embd");
        if (data->shape(0) % (size_t) n_embd != 0 || data->shape(0) / (size_t) n_embd > (size_t) n_layer)
            throw nb::value_error("control vector must hold whole rows of n_embd floats, at most n_layer of them");
        if (il_start < 1 || il_end > n_layer || il_start > il_end)
            throw nb::value_error("layer range must satisfy 1 <= il_start <= il_end <= n_layer");
    }
    const float *ptr = data ? data->data() : nullptr;
    size_t len = data ? data->shape(0) : 0;
    int32_t rc = c.locked([&](llama_context *ctx) {
        clear_last_error_log();
        return llama_set_adapter_cvec(ctx, ptr, len, n_embd, il_start, il_end);
    });
    if (rc != 0) throw LlamaError(with_log_reason("llama_set_adapter_cvec failed with code " + std::to_string(rc)));
}

void init_adapter(nb::module_ &m) {
    nb::class_<LoraAdapter>(m, "LoraAdapter", "A LoRA adapter (llama_adapter_lora) for a Model, which it keeps alive.")
        .def("__init__", &adapter_init, "model"_a, "path"_a,
             nb::sig("def __init__(self, model: Model, path: str | os.PathLike[str]) -> None"),
             "Load a LoRA adapter GGUF for `model`. Raises FileNotFoundError or ModelLoadError.")
        .def(
            "close",
            [](LoraAdapter &a) {
                a.closed = true;
                a.free_now();
            },
            "Free the adapter. Idempotent; deferred while a context uses it.")
        .def_prop_ro(
            "closed", [](const LoraAdapter &a) { return a.closed || !a.ptr; }, "True after close().")
        .def(
            "__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> LoraAdapter"))
        .def(
            "__exit__",
            [](LoraAdapter &a, nb::handle, nb::handle, nb::handle) {
                a.closed = true;
                a.free_now();
            },
            "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def(
            "meta_val_str",
            [](const LoraAdapter &a, const std::string &key) {
                return read_c_string(
                    [&](char *b, size_t n) { return llama_adapter_meta_val_str(a.get(), key.c_str(), b, n); });
            },
            "key"_a, "A metadata value as a string, or None.")
        .def_prop_ro(
            "meta_count", [](const LoraAdapter &a) { return llama_adapter_meta_count(a.get()); },
            "Number of metadata entries.")
        .def(
            "meta_key_by_index",
            [](const LoraAdapter &a, int32_t i) {
                return read_c_string(
                    [&](char *b, size_t n) { return llama_adapter_meta_key_by_index(a.get(), i, b, n); });
            },
            "i"_a, "Metadata key at index i, or None.")
        .def(
            "meta_val_str_by_index",
            [](const LoraAdapter &a, int32_t i) {
                return read_c_string(
                    [&](char *b, size_t n) { return llama_adapter_meta_val_str_by_index(a.get(), i, b, n); });
            },
            "i"_a, "Metadata value at index i as a string, or None.")
        .def_prop_ro(
            "meta",
            [](const LoraAdapter &a) {
                std::map<std::string, std::string> out;
                for (int32_t i = 0, n = llama_adapter_meta_count(a.get()); i < n; ++i) {
                    auto k = read_c_string(
                        [&](char *b, size_t s) { return llama_adapter_meta_key_by_index(a.get(), i, b, s); });
                    auto v = read_c_string(
                        [&](char *b, size_t s) { return llama_adapter_meta_val_str_by_index(a.get(), i, b, s); });
                    if (k && v) out[*k] = *v;
                }
                return out;
            },
            "All metadata as {key: value-as-string}.")
        .def_prop_ro(
            "alora_invocation_tokens",
            [](const LoraAdapter &a) {
                uint64_t n = llama_adapter_get_alora_n_invocation_tokens(a.get());
                const llama_token *t = llama_adapter_get_alora_invocation_tokens(a.get());
                return std::vector<llama_token>(t, t + (t ? n : 0));
            },
            "Invocation tokens of an activated LoRA (empty for a plain LoRA).");
}
