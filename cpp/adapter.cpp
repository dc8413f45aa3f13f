// LoRA adapters (llama_adapter_lora) and control vectors. An adapter keeps its
// model alive; a context keeps the adapters set on it alive.
#include "common.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>

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

void init_adapter(nb::module_ &m) {
    nb::class_<LoraAdapter>(m, "LoraAdapter", "A LoRA adapter (llama_adapter_lora) for a Model, which it keeps alive.")
        .def("__init__", &adapter_init, "model"_a, "path"_a,
             nb::sig("def __init__(self, model: Model, path: str | os.PathLike[str]) -> None"),
             "Load a LoRA adapter GGUF for `model`. Raises FileNotFoundError or ModelLoadError.")
        .def("close", [](LoraAdapter &a) { a.closed = true; a.free_now(); },
             "Free the adapter. Idempotent; deferred while a context uses it.")
        .def_prop_ro("closed", [](const LoraAdapter &a) { return a.closed || !a.ptr; }, "True after close().")
        .def("__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> LoraAdapter"))
        .def("__exit__", [](LoraAdapter &a, nb::handle, nb::handle, nb::handle) { a.closed = true; a.free_now(); },
             "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def("meta_val_str", [](const LoraAdapter &a, const std::string &key) {
                return read_c_string([&](char *b, size_t n) { return llama_adapter_meta_val_str(a.get(), key.c_str(), b, n); });
            }, "key"_a, "A metadata value as a string, or None.")
        .def_prop_ro("meta_count", [](const LoraAdapter &a) { return llama_adapter_meta_count(a.get()); }, "Number of metadata entries.")
        .def("meta_key_by_index", [](const LoraAdapter &a, int32_t i) {
                return read_c_string([&](char *b, size_t n) { return llama_adapter_meta_key_by_index(a.get(), i, b, n); });
            }, "i"_a, "Metadata key at index i, or None.")
        .def("meta_val_str_by_index", [](const LoraAdapter &a, int32_t i) {
                return read_c_string([&](char *b, size_t n) { return llama_adapter_meta_val_str_by_index(a.get(), i, b, n); });
            }, "i"_a, "Metadata value at index i as a string, or None.")
        .def_prop_ro("meta", [](const LoraAdapter &a) {
                std::map<std::string, std::string> out;
                for (int32_t i = 0, n = llama_adapter_meta_count(a.get()); i < n; ++i) {
                    auto k = read_c_string([&](char *b, size_t s) { return llama_adapter_meta_key_by_index(a.get(), i, b, s); });
                    auto v = read_c_string([&](char *b, size_t s) { return llama_adapter_meta_val_str_by_index(a.get(), i, b, s); });
                    if (k && v) out[*k] = *v;
                }
                return out;
            }, "All metadata as {key: value-as-string}.")
        .def_prop_ro("alora_invocation_tokens", [](const LoraAdapter &a) {
                uint64_t n = llama_adapter_get_alora_n_invocation_tokens(a.get());
                const llama_token *t = llama_adapter_get_alora_invocation_tokens(a.get());
                return std::vector<llama_token>(t, t + (t ? n : 0));
            }, "Invocation tokens of an activated LoRA (empty for a plain LoRA).");
}
