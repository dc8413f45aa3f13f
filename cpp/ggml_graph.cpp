// A small CPU compute-graph API over ggml (llamanb.core.ggml's Tensor and Context): a
// memory pool, tensors in it, element-wise ops, norms and mul_mat, computed on the CPU backend.
#include "ggml_graph.h"
#include "errors.h"
#include "ggml_types.h"

#include "ggml-backend.h"

#include <cstring>

namespace {

struct GgmlContext {
    ggml_context *ptr = nullptr;
    size_t mem_size = 0;
    ~GgmlContext() {
        if (ptr) ggml_free(ptr);
    }
    // ggml asserts when its pool is exhausted: check before allocating.
    void reserve(size_t bytes) const {
        if (ggml_used_mem(ptr) + bytes + ggml_tensor_overhead() + 256 > mem_size)
            throw nb::value_error(("ggml context out of memory (" + std::to_string(mem_size) +
                                   " bytes); create it with a larger mem_size")
                                      .c_str());
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
    if (!ggml_can_repeat(b.t, a.t))
        throw nb::value_error((std::string(op) + ": b cannot be broadcast to a's shape").c_str());
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
            throw nb::type_error(
                (std::string("the CPU backend does not support ") + ggml_op_desc(node) + " on these types").c_str());
    }
    ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);
    if (!backend) throw LlamaError("could not start the CPU backend");
    using set_threads_fn = void(ggml_backend_t, int);
    auto *set_threads = (set_threads_fn *) ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev),
                                                                             "ggml_backend_set_n_threads");
    if (set_threads) set_threads(backend, n_threads);
    ggml_status st;
    {
        nb::gil_scoped_release nogil;
        st = ggml_backend_graph_compute(backend, gf);
    }
    ggml_backend_free(backend);
    if (st != GGML_STATUS_SUCCESS)
        throw LlamaError(std::string("ggml graph compute failed: ") + ggml_status_to_string(st));
}

}  // namespace

void init_ggml_graph(nb::module_ &g) {
    nb::class_<GgmlTensor>(g, "Tensor", "A tensor in a ggml Context (keeps the context alive).")
        .def_prop_ro(
            "shape", [](const GgmlTensor &a) { return numpy_shape(a.t); }, "Shape in numpy order.")
        .def_prop_ro(
            "ggml_type", [](const GgmlTensor &a) { return a.t->type; }, "Element type.")
        .def_prop_ro(
            "nbytes", [](const GgmlTensor &a) { return ggml_nbytes(a.t); }, "Size in bytes.")
        .def(
            "set",
            [](GgmlTensor &a, FloatIn x) {
                size_t n = 1;
                for (size_t i = 0; i < x.ndim(); ++i) n *= x.shape(i);
                if ((int64_t) n != ggml_nelements(a.t)) throw nb::value_error("array size does not match the tensor");
                if (a.t->type == GGML_TYPE_F32) {
                    std::memcpy(a.t->data, x.data(), n * sizeof(float));
                    return;
                }
                const int64_t n_per_row = a.t->ne[0];
                if (!quantizable(a.t->type)) throw nb::type_error("cannot write floats into this tensor type");
                if (ggml_quantize_requires_imatrix(a.t->type))
                    throw nb::type_error("this type needs an importance matrix; use ggml.quantize");
                nb::gil_scoped_release nogil;
                ggml_quantize_chunk(a.t->type, x.data(), a.t->data, 0, (int64_t) n / n_per_row, n_per_row, nullptr);
            },
            "x"_a, "Write float32 data (same number of elements), quantizing to the tensor's type.")
        .def(
            "numpy",
            [](const GgmlTensor &a) {
                std::vector<size_t> shape;
                for (int64_t d : numpy_shape(a.t)) shape.push_back((size_t) d);
                if (!ggml_is_contiguous(a.t)) throw nb::value_error("tensor is not contiguous (use ctx.cont())");
                auto *out = new std::vector<float>(to_float(a.t->data, a.t->type, ggml_nelements(a.t)));
                nb::capsule owner(out, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
                return nb::ndarray<nb::numpy, float>(out->data(), shape.size(), shape.data(), owner);
            },
            nb::sig("def numpy(self) -> numpy.typing.NDArray[numpy.float32]"),
            "The values as a float32 copy (dequantized if needed).");

    nb::class_<GgmlContext>(g, "Context", "A ggml context: a memory pool for tensors and graphs (CPU).")
        .def(
            "__init__",
            [](GgmlContext *self, size_t mem_size) {
                if (mem_size < 1024) throw nb::value_error("mem_size must be at least 1 KiB");
                ggml_init_params p{mem_size, nullptr, false};
                ggml_context *c = ggml_init(p);
                if (!c) throw nb::value_error("ggml_init failed (out of memory?)");
                new (self) GgmlContext();
                self->ptr = c;
                self->mem_size = mem_size;
            },
            "mem_size"_a = (size_t) 64 << 20)
        .def_prop_ro(
            "used_mem", [](const GgmlContext &c) { return ggml_used_mem(c.ptr); }, "Bytes of the pool in use.")
        .def(
            "new_tensor",
            [](nb::handle self, int type, const std::vector<int64_t> &shape) {
                ggml_type t = check_type(type);
                if (shape.empty() || shape.size() > GGML_MAX_DIMS)
                    throw nb::value_error("shape needs 1 to 4 dimensions");
                int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
                for (size_t i = 0; i < shape.size(); ++i) {
                    if (shape[i] <= 0) throw nb::value_error("dimensions must be positive");
                    ne[i] = shape[shape.size() - 1 - i];
                }
                if (ne[0] % ggml_blck_size(t) != 0)
                    throw nb::value_error("last dimension must be a multiple of the block size");
                GgmlContext &c = ctx_of(self);
                c.reserve(ggml_row_size(t, ne[0]) * (size_t) (ne[1] * ne[2] * ne[3]));
                return wrap_tensor(self, ggml_new_tensor(c.ptr, t, (int) shape.size(), ne));
            },
            "type"_a, "shape"_a, "A new tensor of `type` with a numpy-order shape.")
        .def(
            "add",
            [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_add>(s, a, b, "add"); },
            "a"_a, "b"_a, "a + b (b broadcast).")
        .def(
            "sub",
            [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_sub>(s, a, b, "sub"); },
            "a"_a, "b"_a, "a - b (b broadcast).")
        .def(
            "mul",
            [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_mul>(s, a, b, "mul"); },
            "a"_a, "b"_a, "a * b (b broadcast).")
        .def(
            "div",
            [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) { return broadcast<ggml_div>(s, a, b, "div"); },
            "a"_a, "b"_a, "a / b (b broadcast).")
        .def(
            "relu", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "relu", ggml_nbytes(a.t), ggml_relu); },
            "a"_a, "max(a, 0).")
        .def(
            "gelu", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "gelu", ggml_nbytes(a.t), ggml_gelu); },
            "a"_a, "GELU(a).")
        .def(
            "silu", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "silu", ggml_nbytes(a.t), ggml_silu); },
            "a"_a, "SiLU(a).")
        .def(
            "sqr", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "sqr", ggml_nbytes(a.t), ggml_sqr); },
            "a"_a, "a * a.")
        .def(
            "sqrt", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "sqrt", ggml_nbytes(a.t), ggml_sqrt); },
            "a"_a, "sqrt(a).")
        .def(
            "sum", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "sum", sizeof(float), ggml_sum); }, "a"_a,
            "Sum of all elements (shape [1]).")
        .def(
            "mean",
            [](nb::handle s, const GgmlTensor &a) {
                return unary(s, a, "mean", ggml_nbytes(a.t) / (size_t) a.t->ne[0] * sizeof(float), ggml_mean);
            },
            "a"_a, "Mean over the last (numpy) axis, kept as size 1.")
        .def(
            "soft_max",
            [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "soft_max", ggml_nbytes(a.t), ggml_soft_max); },
            "a"_a, "Softmax over the last axis.")
        .def(
            "cont", [](nb::handle s, const GgmlTensor &a) { return unary(s, a, "cont", ggml_nbytes(a.t), ggml_cont); },
            "a"_a, "A contiguous copy.")
        .def(
            "transpose",
            [](nb::handle s, const GgmlTensor &a) {
                same_context(s, a);
                GgmlContext &c = ctx_of(s);
                c.reserve(0);
                return wrap_tensor(s, ggml_transpose(c.ptr, a.t));
            },
            "a"_a, "Swap the last two axes (a view; cont() it before numpy()).")
        .def(
            "scale",
            [](nb::handle s, const GgmlTensor &a, float k) {
                return unary(s, a, "scale", ggml_nbytes(a.t),
                             [k](ggml_context *c, ggml_tensor *t) { return ggml_scale(c, t, k); });
            },
            "a"_a, "k"_a, "a * k.")
        .def(
            "rms_norm",
            [](nb::handle s, const GgmlTensor &a, float eps) {
                return unary(s, a, "rms_norm", ggml_nbytes(a.t),
                             [eps](ggml_context *c, ggml_tensor *t) { return ggml_rms_norm(c, t, eps); });
            },
            "a"_a, "eps"_a = 1e-6f, "RMS-normalize over the last axis.")
        .def(
            "norm",
            [](nb::handle s, const GgmlTensor &a, float eps) {
                return unary(s, a, "norm", ggml_nbytes(a.t),
                             [eps](ggml_context *c, ggml_tensor *t) { return ggml_norm(c, t, eps); });
            },
            "a"_a, "eps"_a = 1e-5f, "Layer-normalize over the last axis (no affine).")
        .def(
            "mul_mat",
            [](nb::handle s, const GgmlTensor &a, const GgmlTensor &b) {
                same_context(s, a);
                same_context(s, b);
                need_f32(b, "mul_mat (b)");
                const bool shapes_ok =
                    a.t->ne[0] == b.t->ne[0] && b.t->ne[2] % a.t->ne[2] == 0 && b.t->ne[3] % a.t->ne[3] == 0;
                if (ggml_is_transposed(a.t)) throw nb::value_error("mul_mat: a must not be transposed (cont() it)");
                if (!shapes_ok)
                    throw nb::value_error(
                        "mul_mat: a and b must share their last (numpy) axis, and b's batch dims must be multiples of "
                        "a's");
                GgmlContext &c = ctx_of(s);
                c.reserve(sizeof(float) * (size_t) (a.t->ne[1] * b.t->ne[1] * b.t->ne[2] * b.t->ne[3]));
                return wrap_tensor(s, ggml_mul_mat(c.ptr, a.t, b.t));
            },
            "a"_a, "b"_a, "b @ a.T in numpy terms: a (n, k) and b (m, k) give (m, n). a may be quantized.")
        .def("compute", &compute, "out"_a, "n_threads"_a = 1,
             "Build the graph that produces `out` and compute it on the CPU. GIL released.");
}
