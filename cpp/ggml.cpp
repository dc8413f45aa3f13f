// ggml: type traits, (de)quantization of numpy data and a model's tensors as
// zero-copy views (llamanb.core.ggml); its small CPU compute-graph API is ggml_graph.cpp's.
//
// Private llama.cpp header (vendor/llama.cpp/src, not its public include/):
// - llama-model.h: llama_model::tensors_by_name, the list of a model's weight tensors
//   behind Model.tensors(). llama.h has no call that lists or looks up a model's
//   tensors (only totals: llama_model_size, llama_model_n_params).
#include "ggml_graph.h"
#include "ggml_types.h"
#include "model.h"
#include "weights.h"

#include "ggml-backend.h"
#include "ggml.h"
#include "llama-model.h"

#include <nanobind/stl/map.h>

#include <cctype>
#include <cstring>
#include <memory>

namespace {

bool valid_type(int t) {
    return t >= 0 && t < GGML_TYPE_COUNT && ggml_get_type_traits((ggml_type) t)->type_size != 0 &&
           ggml_get_type_traits((ggml_type) t)->blck_size != 0;
}

}  // namespace

// ---- shared with the compute-graph API (ggml_types.h) -----------------------------

// The types ggml_quantize_chunk handles (others abort inside ggml).
bool quantizable(ggml_type t) {
    switch (t) {
        case GGML_TYPE_Q1_0:
        case GGML_TYPE_Q2_0:
        case GGML_TYPE_Q4_0:
        case GGML_TYPE_Q4_1:
        case GGML_TYPE_Q5_0:
        case GGML_TYPE_Q5_1:
        case GGML_TYPE_Q8_0:
        case GGML_TYPE_MXFP4:
        case GGML_TYPE_NVFP4:
        case GGML_TYPE_Q2_K:
        case GGML_TYPE_Q3_K:
        case GGML_TYPE_Q4_K:
        case GGML_TYPE_Q5_K:
        case GGML_TYPE_Q6_K:
        case GGML_TYPE_TQ1_0:
        case GGML_TYPE_TQ2_0:
        case GGML_TYPE_IQ2_XXS:
        case GGML_TYPE_IQ2_XS:
        case GGML_TYPE_IQ3_XXS:
        case GGML_TYPE_IQ3_S:
        case GGML_TYPE_IQ2_S:
        case GGML_TYPE_IQ1_S:
        case GGML_TYPE_IQ1_M:
        case GGML_TYPE_IQ4_NL:
        case GGML_TYPE_IQ4_XS:
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
            return true;
        default:
            return false;
    }
}

ggml_type check_type(int t) {
    if (!valid_type(t)) throw nb::value_error(("not a ggml type: " + std::to_string(t)).c_str());
    return (ggml_type) t;
}

std::vector<float> to_float(const void *src, ggml_type t, int64_t n) {
    std::vector<float> out((size_t) n);
    if (t == GGML_TYPE_F32) {
        std::memcpy(out.data(), src, (size_t) n * sizeof(float));
        return out;
    }
    auto to = ggml_get_type_traits(t)->to_float;
    if (!to) throw nb::value_error((std::string("ggml cannot dequantize ") + ggml_type_name(t)).c_str());
    nb::gil_scoped_release nogil;
    to(src, out.data(), n);
    return out;
}

std::vector<int64_t> numpy_shape(const ggml_tensor *t) {
    int n = ggml_n_dims(t);
    std::vector<int64_t> shape;
    for (int i = n - 1; i >= 0; --i) shape.push_back(t->ne[i]);
    return shape;
}

namespace {

// ---- (de)quantization ------------------------------------------------------------

using BytesIn = nb::ndarray<const uint8_t, nb::c_contig, nb::device::cpu>;

nb::ndarray<nb::numpy, uint8_t, nb::ndim<2>> quantize(FloatIn x, int type, std::optional<FloatIn> imatrix) {
    ggml_type t = check_type(type);
    if (x.ndim() != 1 && x.ndim() != 2) throw nb::value_error("quantize takes a 1-D or 2-D float32 array");
    const int64_t n_per_row = (int64_t) x.shape(x.ndim() - 1);
    const int64_t rows = x.ndim() == 2 ? (int64_t) x.shape(0) : 1;
    const int64_t blck = ggml_blck_size(t);
    if (n_per_row % blck != 0)
        throw nb::value_error(("row length " + std::to_string(n_per_row) + " is not a multiple of the " +
                               ggml_type_name(t) + " block size " + std::to_string(blck))
                                  .c_str());
    if (t == GGML_TYPE_F32) throw nb::value_error("F32 needs no quantization");
    if (!quantizable(t)) throw nb::value_error((std::string("ggml cannot quantize to ") + ggml_type_name(t)).c_str());
    const float *im = nullptr;
    if (imatrix) {
        if (imatrix->ndim() != 1 || (int64_t) imatrix->shape(0) != n_per_row)
            throw nb::value_error("imatrix must have one weight per column");
        im = imatrix->data();
    } else if (ggml_quantize_requires_imatrix(t)) {
        throw nb::value_error((std::string(ggml_type_name(t)) + " needs an importance matrix (imatrix=...)").c_str());
    }
    const size_t row_bytes = ggml_row_size(t, n_per_row);
    auto *out = new std::vector<uint8_t>((size_t) rows * row_bytes);
    {
        nb::gil_scoped_release nogil;
        ggml_quantize_chunk(t, x.data(), out->data(), 0, rows, n_per_row, im);
    }
    nb::capsule owner(out, [](void *p) noexcept { delete static_cast<std::vector<uint8_t> *>(p); });
    return nb::ndarray<nb::numpy, uint8_t, nb::ndim<2>>(out->data(), {(size_t) rows, row_bytes}, owner);
}

nb::ndarray<nb::numpy, float, nb::ndim<2>> dequantize(BytesIn data, int type, int64_t n_per_row) {
    ggml_type t = check_type(type);
    if (n_per_row <= 0 || n_per_row % ggml_blck_size(t) != 0)
        throw nb::value_error("n_per_row must be a positive multiple of the block size");
    const size_t row_bytes = ggml_row_size(t, n_per_row);
    size_t total = 1;
    for (size_t i = 0; i < data.ndim(); ++i) total *= data.shape(i);
    if (total % row_bytes != 0)
        throw nb::value_error(("data size " + std::to_string(total) + " is not a whole number of " + ggml_type_name(t) +
                               " rows of " + std::to_string(row_bytes) + " bytes")
                                  .c_str());
    const size_t rows = total / row_bytes;
    auto *out = new std::vector<float>(to_float(data.data(), t, (int64_t) rows * n_per_row));
    nb::capsule owner(out, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
    return nb::ndarray<nb::numpy, float, nb::ndim<2>>(out->data(), {rows, (size_t) n_per_row}, owner);
}

// ---- tensors of a model -----------------------------------------------------------

struct ModelTensor {
    nb::object model_obj;
    Model *model;
    ggml_tensor *t;
    const ggml_tensor *get() const {
        model->get();
        return t;
    }
};

// A view owner: keeps the Model object and its weights (a user count) alive.
nb::capsule model_view_owner(const ModelTensor &mt) {
    struct Owner {
        nb::object model_obj;
        Model *model;
    };
    mt.model->acquire();
    auto *o = new Owner{mt.model_obj, mt.model};
    return nb::capsule(o, [](void *p) noexcept {
        auto *own = static_cast<Owner *>(p);
        own->model->release();
        delete own;
    });
}

// F32/F16 weights in the plain host buffer are viewed in place; everything else is a
// copy of the file's bytes (read_weight: repacked weights come from the GGUF file).
nb::object tensor_numpy(const ModelTensor &mt, bool dequantize_) {
    const ggml_tensor *t = mt.get();
    std::vector<size_t> shape;
    for (int64_t d : numpy_shape(t)) shape.push_back((size_t) d);
    const bool is_float = t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16;
    const nb::dlpack::dtype dt = t->type == GGML_TYPE_F32
                                     ? nb::dtype<float>()
                                     : nb::dlpack::dtype{(uint8_t) nb::dlpack::dtype_code::Float, 16, 1};
    const bool in_place =
        !mt.model->no_alloc && t->buffer && ggml_backend_buffer_is_host(t->buffer) && !weight_is_repacked(t);
    if (is_float && in_place && ggml_is_contiguous(t) && !dequantize_) {
        nb::capsule owner = model_view_owner(mt);
        nb::ndarray<nb::numpy, nb::ro> arr(t->data, shape.size(), shape.data(), owner, nullptr, dt);
        return nb::cast(arr);
    }
    if (!is_float && !dequantize_)
        throw nb::type_error((std::string("tensor '") + t->name + "' is " + ggml_type_name(t->type) +
                              ": pass dequantize=True for a float32 copy")
                                 .c_str());
    auto *bytes = new std::vector<uint8_t>(read_weight(*mt.model, t));
    if (!dequantize_) {  // an F32/F16 weight outside the plain host buffer: a read-only copy
        nb::capsule owner(bytes, [](void *p) noexcept { delete static_cast<std::vector<uint8_t> *>(p); });
        nb::ndarray<nb::numpy, nb::ro> arr(bytes->data(), shape.size(), shape.data(), owner, nullptr, dt);
        return nb::cast(arr);
    }
    std::unique_ptr<std::vector<uint8_t>> own(bytes);
    auto *out = new std::vector<float>(to_float(bytes->data(), t->type, ggml_nelements(t)));
    nb::capsule owner(out, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
    return nb::cast(nb::ndarray<nb::numpy, float>(out->data(), shape.size(), shape.data(), owner));
}

}  // namespace

void init_ggml(nb::module_ &g) {
    nb::enum_<ggml_type> types(g, "GGMLType", nb::is_arithmetic(), "ggml tensor element types.");
    for (int i = 0; i < GGML_TYPE_COUNT; ++i) {
        if (!valid_type(i)) continue;
        std::string n = ggml_type_name((ggml_type) i);  // members are upper-case: Q4_1, F16, ...
        for (auto &ch : n) ch = (char) toupper((unsigned char) ch);
        types.value(n.c_str(), (ggml_type) i);  // nanobind copies the name
    }

    g.def(
        "type_name", [](int t) { return std::string(ggml_type_name(check_type(t))); }, "type"_a,
        "ggml's name of a type.");
    g.def("block_size", [](int t) { return ggml_blck_size(check_type(t)); }, "type"_a, "Elements per block.");
    g.def("type_size", [](int t) { return ggml_type_size(check_type(t)); }, "type"_a, "Bytes per block.");
    g.def(
        "row_size",
        [](int t, int64_t n) {
            ggml_type ty = check_type(t);
            if (n < 0 || n % ggml_blck_size(ty) != 0) throw nb::value_error("n must be a multiple of the block size");
            return ggml_row_size(ty, n);
        },
        "type"_a, "n"_a, "Bytes of a row of n elements.");
    g.def(
        "is_quantized", [](int t) { return ggml_is_quantized(check_type(t)); }, "type"_a,
        "True for block-quantized types.");
    g.def("quantize", &quantize, "x"_a, "type"_a, "imatrix"_a = nb::none(),
          "Quantize float32 rows (1-D or 2-D, row length a multiple of the block size) to\n"
          "`type`; returns uint8 rows of row_size(type, n) bytes. GIL released.");
    g.def("dequantize", &dequantize, "data"_a, "type"_a, "n_per_row"_a,
          "float32 rows of n_per_row elements from quantized bytes of `type`. GIL released.");

    nb::class_<ModelTensor>(g, "ModelTensor", "A weight tensor of a loaded Model (keeps the model alive).")
        .def_prop_ro(
            "name", [](const ModelTensor &mt) { return std::string(mt.get()->name); }, "Tensor name.")
        .def_prop_ro(
            "shape", [](const ModelTensor &mt) { return numpy_shape(mt.get()); },
            "Shape in numpy order (ggml ne reversed).")
        .def_prop_ro(
            "ggml_type", [](const ModelTensor &mt) { return mt.get()->type; }, "Element type.")
        .def_prop_ro(
            "nbytes", [](const ModelTensor &mt) { return ggml_nbytes(mt.get()); }, "Size in bytes.")
        .def_prop_ro(
            "is_host", [](const ModelTensor &mt) { return weight_in_host_memory(mt.get()); },
            "True if the data is in host RAM (also when repacked there).")
        .def_prop_ro(
            "is_repacked", [](const ModelTensor &mt) { return weight_is_repacked(mt.get()); },
            "True if the bytes in memory are in a kernel layout (AMX, CPU_REPACK), not the file's;\n"
            "numpy() then reads the file's bytes from the GGUF file.")
        .def_prop_ro(
            "buffer",
            [](const ModelTensor &mt) {
                const ggml_tensor *t = mt.get();
                return std::string(t->buffer ? ggml_backend_buffer_name(t->buffer) : "");
            },
            "Name of the backend buffer holding the data (e.g. 'CPU', 'CUDA0', 'RPC0[host:port]').")
        .def_prop_ro(
            "buffer_type", [](const ModelTensor &mt) { return weight_buffer_type(mt.get()); },
            "Name of its buffer type: 'CPU', 'AMX', 'CPU_REPACK', 'CUDA0', ...")
        .def("numpy", &tensor_numpy, "dequantize"_a = false,
             nb::sig("def numpy(self, dequantize: bool = False) -> numpy.typing.NDArray[typing.Any]"),
             "F32/F16 weights in host memory: a read-only zero-copy view (keeps the model's weights\n"
             "alive); elsewhere (a device, a repacked buffer) a read-only copy. Other types raise\n"
             "TypeError unless dequantize=True: then a float32 copy, from the file's bytes.")
        .def("__repr__", [](const ModelTensor &mt) {
            const ggml_tensor *t = mt.get();
            return std::string("<ModelTensor ") + t->name + " " + ggml_type_name(t->type) + ">";
        });

    // Model.tensors is attached here rather than bound in model.cpp: it returns
    // ggml.ModelTensor, and it needs llama-model.h, which model.cpp does without.
    nb::handle model_type = nb::type<Model>();
    model_type.attr("tensors") = nb::cpp_function(
        [](nb::object self) {
            Model &model = nb::cast<Model &>(self);
            llama_model *mp = model.get();
            std::map<std::string, ModelTensor> out;
            for (auto &[name, t] : mp->tensors_by_name) out.emplace(name, ModelTensor{self, &model, t});
            return out;
        },
        nb::scope(model_type), nb::name("tensors"), nb::is_method(),
        nb::sig("def tensors(self) -> dict[str, ggml.ModelTensor]"), "The model's weight tensors by name.");

    init_ggml_graph(g);  // ggml.Tensor and ggml.Context, bound after ModelTensor
}
