// ggml: type traits, (de)quantization of numpy data, a model's tensors as
// zero-copy views, and a small CPU compute-graph API (llamanb.core.ggml).
//
// Private llama.cpp header (vendor/llama.cpp/src, not its public include/):
// - llama-model.h: llama_model::tensors_by_name, the list of a model's weight tensors
//   behind Model.tensors(). llama.h has no call that lists or looks up a model's
//   tensors (only totals: llama_model_size, llama_model_n_params).
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

// The types ggml_quantize_chunk handles (others abort inside ggml).
bool quantizable(ggml_type t) {
    switch (t) {
        case GGML_TYPE_Q1_0: case GGML_TYPE_Q2_0: case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0:
        case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0: case GGML_TYPE_MXFP4: case GGML_TYPE_NVFP4: case GGML_TYPE_Q2_K:
        case GGML_TYPE_Q3_K: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: case GGML_TYPE_TQ1_0:
        case GGML_TYPE_TQ2_0: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS: case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S:
        case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M: case GGML_TYPE_IQ4_NL: case GGML_TYPE_IQ4_XS:
        case GGML_TYPE_F16: case GGML_TYPE_BF16:
            return true;
        default:
            return false;
    }
}

bool valid_type(int t) {
    return t >= 0 && t < GGML_TYPE_COUNT && ggml_get_type_traits((ggml_type) t)->type_size != 0 &&
           ggml_get_type_traits((ggml_type) t)->blck_size != 0;
}

ggml_type check_type(int t) {
    if (!valid_type(t)) throw nb::value_error(("not a ggml type: " + std::to_string(t)).c_str());
    return (ggml_type) t;
}

// ---- (de)quantization ------------------------------------------------------------

using FloatIn = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using BytesIn = nb::ndarray<const uint8_t, nb::c_contig, nb::device::cpu>;

nb::ndarray<nb::numpy, uint8_t, nb::ndim<2>> quantize(FloatIn x, int type, std::optional<FloatIn> imatrix) {
    ggml_type t = check_type(type);
    if (x.ndim() != 1 && x.ndim() != 2) throw nb::value_error("quantize takes a 1-D or 2-D float32 array");
    const int64_t n_per_row = (int64_t) x.shape(x.ndim() - 1);
    const int64_t rows = x.ndim() == 2 ? (int64_t) x.shape(0) : 1;
    const int64_t blck = ggml_blck_size(t);
    if (n_per_row % blck != 0)
        throw nb::value_error(("row length " + std::to_string(n_per_row) + " is not a multiple of the " +
                               ggml_type_name(t) + " block size " + std::to_string(blck)).c_str());
    if (t == GGML_TYPE_F32) throw nb::value_error("F32 needs no quantization");
    if (!quantizable(t)) throw nb::value_error((std::string("ggml cannot quantize to ") + ggml_type_name(t)).c_str());
    const float *im = nullptr;
    if (imatrix) {
        if (imatrix->ndim() != 1 || (int64_t) imatrix->shape(0) != n_per_row) throw nb::value_error("imatrix must have one weight per column");
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

nb::ndarray<nb::numpy, float, nb::ndim<2>> dequantize(BytesIn data, int type, int64_t n_per_row) {
    ggml_type t = check_type(type);
    if (n_per_row <= 0 || n_per_row % ggml_blck_size(t) != 0) throw nb::value_error("n_per_row must be a positive multiple of the block size");
    const size_t row_bytes = ggml_row_size(t, n_per_row);
    size_t total = 1;
    for (size_t i = 0; i < data.ndim(); ++i) total *= data.shape(i);
    if (total % row_bytes != 0)
        throw nb::value_error(("data size " + std::to_string(total) + " is not a whole number of " + ggml_type_name(t) +
                               " rows of " + std::to_string(row_bytes) + " bytes").c_str());
    const size_t rows = total / row_bytes;
    auto *out = new std::vector<float>(to_float(data.data(), t, (int64_t) rows * n_per_row));
    nb::capsule owner(out, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
    return nb::ndarray<nb::numpy, float, nb::ndim<2>>(out->data(), {rows, (size_t) n_per_row}, owner);
}

std::vector<int64_t> numpy_shape(const ggml_tensor *t) {
    int n = ggml_n_dims(t);
    std::vector<int64_t> shape;
    for (int i = n - 1; i >= 0; --i) shape.push_back(t->ne[i]);
    return shape;
}

// ---- tensors of a model -----------------------------------------------------------

struct ModelTensor {
    nb::object model_obj;
    Model *model;
    ggml_tensor *t;
    const ggml_tensor *get() const { model->get(); return t; }
};

// A view owner: keeps the Model object and its weights (a user count) alive.
nb::capsule model_view_owner(const ModelTensor &mt) {
    struct Owner { nb::object model_obj; Model *model; };
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
    const nb::dlpack::dtype dt = t->type == GGML_TYPE_F32 ? nb::dtype<float>()
                                                          : nb::dlpack::dtype{(uint8_t) nb::dlpack::dtype_code::Float, 16, 1};
    const bool in_place = !mt.model->no_alloc && t->buffer && ggml_backend_buffer_is_host(t->buffer) && !weight_is_repacked(t);
    if (is_float && in_place && ggml_is_contiguous(t) && !dequantize_) {
        nb::capsule owner = model_view_owner(mt);
        nb::ndarray<nb::numpy, nb::ro> arr(t->data, shape.size(), shape.data(), owner, nullptr, dt);
        return nb::cast(arr);
    }
    if (!is_float && !dequantize_)
        throw nb::type_error((std::string("tensor '") + t->name + "' is " + ggml_type_name(t->type) +
                              ": pass dequantize=True for a float32 copy").c_str());
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

// ---- a small compute-graph API -----------------------------------------------------

struct GgmlContext {
    ggml_context *ptr = nullptr;
    size_t mem_size = 0;
    ~GgmlContext() { if (ptr) ggml_free(ptr); }
    // ggml asserts when its pool is exhausted: check before allocating.
    void reserve(size_t bytes) const {
        if (ggml_used_mem(ptr) + bytes + ggml_tensor_overhead() + 256 > mem_size)
            throw nb::value_error(("ggml context out of memory (" + std::to_string(mem_size) +
                                   " bytes); create it with a larger mem_size").c_str());
    }
};

struct GgmlTensor {
    nb::object ctx_obj;  // tensors live in their context's memory
    ggml_tensor *t;
};

GgmlContext &ctx_of(nb::handle h) { return nb::cast<GgmlContext &>(h); }

GgmlTensor wrap_tensor(nb::handle ctx_obj, ggml_tensor *t) { return GgmlTensor{nb::borrow(ctx_obj), t}; }

void same_context(nb::handle ctx_obj, const GgmlTensor &a) {
    if (!a.ctx_obj.is(ctx_obj)) throw nb::value_error("tensor belongs to another ggml context");
}

void need_f32(const GgmlTensor &a, const char *op) {
    if (a.t->type != GGML_TYPE_F32) throw nb::type_error((std::string(op) + " needs float32 tensors").c_str());
}

using Binary = ggml_tensor *(*)(ggml_context *, ggml_tensor *, ggml_tensor *);

// An op on one f32 tensor: f(ctx, a) is a ggml function or a lambda binding extra arguments.
template <typename Op>
GgmlTensor unary(nb::handle self, const GgmlTensor &a, const char *op, size_t out_bytes, Op f) {
    same_context(self, a);
    need_f32(a, op);
    GgmlContext &c = ctx_of(self);
    c.reserve(out_bytes);
    return wrap_tensor(self, f(c.ptr, a.t));
}

template <Binary F>
GgmlTensor broadcast(nb::handle self, const GgmlTensor &a, const GgmlTensor &b, const char *op) {
    same_context(self, a);
    same_context(self, b);
    need_f32(a, op);
    need_f32(b, op);
    if (!ggml_can_repeat(b.t, a.t)) throw nb::value_error((std::string(op) + ": b cannot be broadcast to a's shape").c_str());
    GgmlContext &c = ctx_of(self);
    c.reserve(ggml_nbytes(a.t));
    return wrap_tensor(self, F(c.ptr, a.t, b.t));
}

// Builds the graph that produces out and computes it with the CPU backend.
void compute(nb::handle s, const GgmlTensor &out, int n_threads) {
    same_context(s, out);
    if (n_threads < 1) throw nb::value_error("n_threads must be >= 1");
    GgmlContext &c = ctx_of(s);
    if (ggml_used_mem(c.ptr) + ggml_graph_overhead() + (1 << 16) > c.mem_size)
        throw nb::value_error("ggml context has no room for the graph; create it with a larger mem_size");
    ggml_cgraph *gf = ggml_new_graph(c.ptr);
    ggml_build_forward_expand(gf, out.t);
    // Through the backend API, so it also works with a dynamically loaded CPU backend.
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!dev) throw LlamaError("no CPU backend");
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
        ggml_tensor *node = ggml_graph_node(gf, i);
        if (!ggml_backend_dev_supports_op(dev, node))
            throw nb::type_error((std::string("the CPU backend does not support ") + ggml_op_desc(node) +
                                  " on these types").c_str());
    }
    ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);
    if (!backend) throw LlamaError("could not start the CPU backend");
    using set_threads_fn = void(ggml_backend_t, int);
    auto *set_threads = (set_threads_fn *) ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads");
    if (set_threads) set_threads(backend, n_threads);
    ggml_status st;
    {
        nb::gil_scoped_release nogil;
        st = ggml_backend_graph_compute(backend, gf);
    }
    ggml_backend_free(backend);
    if (st != GGML_STATUS_SUCCESS) throw LlamaError(std::string("ggml graph compute failed: ") + ggml_status_to_string(st));
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

    g.def("type_name", [](int t) { return std::string(ggml_type_name(check_type(t))); }, "type"_a, "ggml's name of a type.");
    g.def("block_size", [](int t) { return ggml_blck_size(check_type(t)); }, "type"_a, "Elements per block.");
    g.def("type_size", [](int t) { return ggml_type_size(check_type(t)); }, "type"_a, "Bytes per block.");
    g.def("row_size", [](int t, int64_t n) {
            ggml_type ty = check_type(t);
            if (n < 0 || n % ggml_blck_size(ty) != 0) throw nb::value_error("n must be a multiple of the block size");
            return ggml_row_size(ty, n);
        }, "type"_a, "n"_a, "Bytes of a row of n elements.");
    g.def("is_quantized", [](int t) { return ggml_is_quantized(check_type(t)); }, "type"_a, "True for block-quantized types.");
    g.def("quantize", &quantize, "x"_a, "type"_a, "imatrix"_a = nb::none(),
          "Quantize float32 rows (1-D or 2-D, row length a multiple of the block size) to\n"
          "`type`; returns uint8 rows of row_size(type, n) bytes. GIL released.");
    g.def("dequantize", &dequantize, "data"_a, "type"_a, "n_per_row"_a,
          "float32 rows of n_per_row elements from quantized bytes of `type`. GIL released.");

    nb::class_<ModelTensor>(g, "ModelTensor", "A weight tensor of a loaded Model (keeps the model alive).")
        .def_prop_ro("name", [](const ModelTensor &mt) { return std::string(mt.get()->name); }, "Tensor name.")
        .def_prop_ro("shape", [](const ModelTensor &mt) { return numpy_shape(mt.get()); }, "Shape in numpy order (ggml ne reversed).")
        .def_prop_ro("ggml_type", [](const ModelTensor &mt) { return mt.get()->type; }, "Element type.")
        .def_prop_ro("nbytes", [](const ModelTensor &mt) { return ggml_nbytes(mt.get()); }, "Size in bytes.")
        .def_prop_ro("is_host", [](const ModelTensor &mt) { return weight_in_host_memory(mt.get()); },
             "True if the data is in host RAM (also when repacked there).")
        .def_prop_ro("is_repacked", [](const ModelTensor &mt) { return weight_is_repacked(mt.get()); },
             "True if the bytes in memory are in a kernel layout (AMX, CPU_REPACK), not the file's;\n"
             "numpy() then reads the file's bytes from the GGUF file.")
        .def_prop_ro("buffer", [](const ModelTensor &mt) {
                const ggml_tensor *t = mt.get();
                return std::string(t->buffer ? ggml_backend_buffer_name(t->buffer) : "");
            }, "Name of the backend buffer holding the data (e.g. 'CPU', 'CUDA0', 'RPC0[host:port]').")
        .def_prop_ro("buffer_type", [](const ModelTensor &mt) { return weight_buffer_type(mt.get()); },
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
        nb::sig("def tensors(self) -> dict[str, ggml.ModelTensor]"),
        "The model's weight tensors by name.");

    nb::class_<GgmlTensor>(g, "Tensor", "A tensor in a ggml Context (keeps the context alive).")
        .def_prop_ro("shape", [](const GgmlTensor &a) { return numpy_shape(a.t); }, "Shape in numpy order.")
        .def_prop_ro("ggml_type", [](const GgmlTensor &a) { return a.t->type; }, "Element type.")
        .def_prop_ro("nbytes", [](const GgmlTensor &a) { return ggml_nbytes(a.t); }, "Size in bytes.")
        .def("set", [](GgmlTensor &a, FloatIn x) {
                size_t n = 1;
                for (size_t i = 0; i < x.ndim(); ++i) n *= x.shape(i);
                if ((int64_t) n != ggml_nelements(a.t)) throw nb::value_error("array size does not match the tensor");
                if (a.t->type == GGML_TYPE_F32) {
                    std::memcpy(a.t->data, x.data(), n * sizeof(float));
                    return;
                }
                const int64_t n_per_row = a.t->ne[0];
                if (!quantizable(a.t->type)) throw nb::type_error("cannot write floats into this tensor type");
                if (ggml_quantize_requires_imatrix(a.t->type)) throw nb::type_error("this type needs an importance matrix; use ggml.quantize");
                nb::gil_scoped_release nogil;
                ggml_quantize_chunk(a.t->type, x.data(), a.t->data, 0, (int64_t) n / n_per_row, n_per_row, nullptr);
            }, "x"_a, "Write float32 data (same number of elements), quantizing to the tensor's type.")
        .def("numpy", [](const GgmlTensor &a) {
                std::vector<size_t> shape;
                for (int64_t d : numpy_shape(a.t)) shape.push_back((size_t) d);
                if (!ggml_is_contiguous(a.t)) throw nb::value_error("tensor is not contiguous (use ctx.cont())");
                auto *out = new std::vector<float>(to_float(a.t->data, a.t->type, ggml_nelements(a.t)));
                nb::capsule owner(out, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
                return nb::ndarray<nb::numpy, float>(out->data(), shape.size(), shape.data(), owner);
            }, nb::sig("def numpy(self) -> numpy.typing.NDArray[numpy.float32]"),
            "The values as a float32 copy (dequantized if needed).");

    nb::class_<GgmlContext>(g, "Context", "A ggml context: a memory pool for tensors and graphs (CPU).")
        .def("__init__", [](GgmlContext *self, size_t mem_size) {
                if (mem_size < 1024) throw nb::value_error("mem_size must be at least 1 KiB");
                ggml_init_params p{mem_size, nullptr, false};
                ggml_context *c = ggml_init(p);
                if (!c) throw nb::value_error("ggml_init failed (out of memory?)");
                new (self) GgmlContext();
                self->ptr = c;
                self->mem_size = mem_size;
            }, "mem_size"_a = (size_t) 64 << 20)
        .def_prop_ro("used_mem", [](const GgmlContext &c) { return ggml_used_mem(c.ptr); }, "Bytes of the pool in use.")
        .def("new_tensor", [](nb::handle self, int type, const std::vector<int64_t> &shape) {
                ggml_type t = check_type(type);
                if (shape.empty() || shape.size() > GGML_MAX_DIMS) throw nb::value_error("shape needs 1 to 4 dimensions");
                int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
                for (size_t i = 0; i < shape.size(); ++i) {
                    if (shape[i] <= 0) throw nb::value_error("dimensions must be positive");
                    ne[i] = shape[shape.size() - 1 - i];
                }
                if (ne[0] % ggml_blck_size(t) != 0) throw nb::value_error("last dimension must be a multiple of the block size");
                GgmlContext &c = ctx_of(self);
                c.reserve(ggml_row_size(t, ne[0]) * (size_t) (ne[1] * ne[2] * ne[3]));
                return wrap_tensor(self, ggml_new_tensor(c.ptr, t, (int) shape.size(), ne));
            }, "type"_a, "shape"_a, "A new tensor of `type` with a numpy-order shape.")
        .def("add", [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_add>(s, a, b, "add"); }, "a"_a, "b"_a, "a + b (b broadcast).")
        .def("sub", [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_sub>(s, a, b, "sub"); }, "a"_a, "b"_a, "a - b (b broadcast).")
        .def("mul", [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_mul>(s, a, b, "mul"); }, "a"_a, "b"_a, "a * b (b broadcast).")
        .def("div", [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_div>(s, a, b, "div"); }, "a"_a, "b"_a, "a / b (b broadcast).")
        .def("relu", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "relu", ggml_nbytes(a.t), ggml_relu); }, "a"_a, "max(a, 0).")
        .def("gelu", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "gelu", ggml_nbytes(a.t), ggml_gelu); }, "a"_a, "GELU(a).")
        .def("silu", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "silu", ggml_nbytes(a.t), ggml_silu); }, "a"_a, "SiLU(a).")
        .def("sqr", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "sqr", ggml_nbytes(a.t), ggml_sqr); }, "a"_a, "a * a.")
        .def("sqrt", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "sqrt", ggml_nbytes(a.t), ggml_sqrt); }, "a"_a, "sqrt(a).")
        .def("sum", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "sum", sizeof(float), ggml_sum); }, "a"_a, "Sum of all elements (shape [1]).")
        .def("mean", [](nb::handle s, const GgmlTensor &a) {
                return unary(s, a, "mean", ggml_nbytes(a.t) / (size_t) a.t->ne[0] * sizeof(float), ggml_mean);
            }, "a"_a, "Mean over the last (numpy) axis, kept as size 1.")
        .def("soft_max", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "soft_max", ggml_nbytes(a.t), ggml_soft_max); }, "a"_a, "Softmax over the last axis.")
        .def("cont", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "cont", ggml_nbytes(a.t), ggml_cont); }, "a"_a, "A contiguous copy.")
        .def("transpose", [](nb::handle s, const GgmlTensor &a) {
                same_context(s, a);
                GgmlContext &c = ctx_of(s);
                c.reserve(0);
                return wrap_tensor(s, ggml_transpose(c.ptr, a.t));
            }, "a"_a, "Swap the last two axes (a view; cont() it before numpy()).")
        .def("scale", [](nb::handle s, const GgmlTensor &a, float k) {
                return unary(s, a, "scale", ggml_nbytes(a.t), [k](ggml_context *c, ggml_tensor *t) { return ggml_scale(c, t, k); });
            }, "a"_a, "k"_a, "a * k.")
        .def("rms_norm", [](nb::handle s, const GgmlTensor &a, float eps) {
                return unary(s, a, "rms_norm", ggml_nbytes(a.t),
                             [eps](ggml_context *c, ggml_tensor *t) { return ggml_rms_norm(c, t, eps); });
            }, "a"_a, "eps"_a = 1e-6f, "RMS-normalize over the last axis.")
        .def("norm", [](nb::handle s, const GgmlTensor &a, float eps) {
                return unary(s, a, "norm", ggml_nbytes(a.t),
                             [eps](ggml_context *c, ggml_tensor *t) { return ggml_norm(c, t, eps); });
            }, "a"_a, "eps"_a = 1e-5f, "Layer-normalize over the last axis (no affine).")
        .def("mul_mat", [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) {
                same_context(s, a);
                same_context(s, b);
                need_f32(b, "mul_mat (b)");
                const bool shapes_ok = a.t->ne[0] == b.t->ne[0] && b.t->ne[2] % a.t->ne[2] == 0 && b.t->ne[3] % a.t->ne[3] == 0;
                if (ggml_is_transposed(a.t)) throw nb::value_error("mul_mat: a must not be transposed (cont() it)");
                if (!shapes_ok)
                    throw nb::value_error("mul_mat: a and b must share their last (numpy) axis, and b's batch dims must be multiples of a's");
                GgmlContext &c = ctx_of(s);
                c.reserve(sizeof(float) * (size_t) (a.t->ne[1] * b.t->ne[1] * b.t->ne[2] * b.t->ne[3]));
                return wrap_tensor(s, ggml_mul_mat(c.ptr, a.t, b.t));
            }, "a"_a, "b"_a,
            "b @ a.T in numpy terms: a (n, k) and b (m, k) give (m, n). a may be quantized.")
        .def("compute", &compute, "out"_a, "n_threads"_a = 1, "Build the graph that produces `out` and compute it on the CPU. GIL released.");
}
