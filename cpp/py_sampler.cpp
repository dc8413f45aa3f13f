// Samplers written in Python: a Python object behind llama_sampler_i, and the
// TokenDataArray candidates it reads and rewrites. The trampolines run inside
// llama.cpp's sampler calls, mostly with the GIL released: each takes the GIL and
// parks a Python exception for the Sampler method that ran it to raise.
#include "sampler.h"

namespace {

// Writes Python's (possibly truncated or reordered) candidates back; false if invalid.
bool from_python(const TokenDataArray &t, llama_token_data_array &cur, std::string &why) {
    size_t n = t.ids.shape(0);
    if (t.logits.shape(0) != n || t.p.shape(0) != n) {
        why = "ids, logits and p must have the same length";
        return false;
    }
    if (n > cur.size) {
        why = "candidates may shrink but not grow";
        return false;
    }
    if (t.selected < -1 || t.selected >= (int64_t) n) {
        why = "selected out of range";
        return false;
    }
    auto ids = t.ids.view();
    auto logits = t.logits.view();
    auto p = t.p.view();
    for (size_t i = 0; i < n; ++i) cur.data[i] = llama_token_data{ids(i), logits(i), p(i)};
    cur.size = n;
    cur.selected = t.selected;
    cur.sorted = t.sorted;
    return true;
}

// Exceptions from Python samplers, raised again by the call that ran them.
thread_local PendingError py_sampler_error;

struct PySampler {
    nb::object obj;
    std::string name;
};

void py_fail() {
    if (!py_sampler_error.set())
        py_sampler_error.capture();
    else
        PyErr_Clear();
}

const char *py_name(const llama_sampler *s) { return static_cast<PySampler *>(s->ctx)->name.c_str(); }

void py_accept(llama_sampler *s, llama_token token) {
    nb::gil_scoped_acquire gil;
    auto *ps = static_cast<PySampler *>(s->ctx);
    if (!nb::hasattr(ps->obj, "accept")) return;
    try {
        ps->obj.attr("accept")(token);
    } catch (nb::python_error &e) {
        e.restore();
        py_fail();
    }
}

void py_apply(llama_sampler *s, llama_token_data_array *cur) {
    nb::gil_scoped_acquire gil;
    auto *ps = static_cast<PySampler *>(s->ctx);
    try {
        nb::object arr = nb::cast(to_python(*cur));
        ps->obj.attr("apply")(arr);
        std::string why;
        if (!from_python(nb::cast<TokenDataArray &>(arr), *cur, why)) {
            PyErr_SetString(PyExc_ValueError, ("Python sampler '" + ps->name + "': " + why).c_str());
            py_fail();
        }
    } catch (nb::python_error &e) {
        e.restore();
        py_fail();
    } catch (std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        py_fail();
    }
}

void py_reset(llama_sampler *s) {
    nb::gil_scoped_acquire gil;
    auto *ps = static_cast<PySampler *>(s->ctx);
    if (!nb::hasattr(ps->obj, "reset")) return;
    try {
        ps->obj.attr("reset")();
    } catch (nb::python_error &e) {
        e.restore();
        py_fail();
    }
}

llama_sampler *py_clone(const llama_sampler *s);

void py_free(llama_sampler *s) {
    auto *ps = static_cast<PySampler *>(s->ctx);
    if (!Py_IsInitialized() || !nb::is_alive()) return;  // interpreter gone: leak rather than crash
    nb::gil_scoped_acquire gil;
    delete ps;
}

llama_sampler_i py_iface = {
    /* .name = */ py_name,
    /* .accept = */ py_accept,
    /* .apply = */ py_apply,
    /* .reset = */ py_reset,
    /* .clone = */ py_clone,
    /* .free = */ py_free,
    /* .backend_init = */ nullptr,
    /* .backend_accept = */ nullptr,
    /* .backend_apply = */ nullptr,
    /* .backend_set_input = */ nullptr,
    /* .backend_reset = */ nullptr,
    /* .copy_state = */ nullptr,
};

llama_sampler *py_clone(const llama_sampler *s) {
    nb::gil_scoped_acquire gil;
    auto *ps = static_cast<PySampler *>(s->ctx);
    nb::object copy = ps->obj;  // shared if the object cannot be copied
    try {
        copy = nb::hasattr(ps->obj, "clone") ? ps->obj.attr("clone")()
                                             : nb::module_::import_("copy").attr("deepcopy")(ps->obj);
    } catch (nb::python_error &) {}
    return llama_sampler_init(&py_iface, new PySampler{copy, ps->name});
}

}  // namespace

TokenDataArray to_python(const llama_token_data_array &cur) {
    std::vector<int32_t> ids(cur.size);
    std::vector<float> logits(cur.size), p(cur.size);
    for (size_t i = 0; i < cur.size; ++i) {
        ids[i] = cur.data[i].id;
        logits[i] = cur.data[i].logit;
        p[i] = cur.data[i].p;
    }
    return TokenDataArray{to_numpy(std::move(ids)), to_numpy(std::move(logits)), to_numpy(std::move(p)), cur.selected,
                          cur.sorted};
}

llama_sampler *init_py_sampler(nb::object obj, const std::string &name) {
    return llama_sampler_init(&py_iface, new PySampler{obj, name});
}

bool py_sampler_failed() { return py_sampler_error.set(); }

void raise_py_sampler_error() {
    if (py_sampler_error.set()) {
        PendingError e = std::move(py_sampler_error);
        py_sampler_error = PendingError();
        e.raise();
    }
}

void init_token_data_array(nb::module_ &m) {
    nb::class_<TokenDataArray>(m, "TokenDataArray",
                               "Sampling candidates (llama_token_data_array) as owned numpy arrays.")
        .def(
            "__init__",
            [](TokenDataArray *self, nb::ndarray<nb::numpy, int32_t, nb::ndim<1>> ids,
               nb::ndarray<nb::numpy, float, nb::ndim<1>> logits,
               std::optional<nb::ndarray<nb::numpy, float, nb::ndim<1>>> p) {
                size_t n = ids.shape(0);
                if (logits.shape(0) != n) throw nb::value_error("ids and logits must have the same length");
                std::vector<int32_t> i(n);
                std::vector<float> l(n), q(n, 0.0f);
                auto iv = ids.view();
                auto lv = logits.view();
                for (size_t k = 0; k < n; ++k) {
                    i[k] = iv(k);
                    l[k] = lv(k);
                }
                if (p) {
                    if (p->shape(0) != n) throw nb::value_error("p must have the same length as ids");
                    auto pv = p->view();
                    for (size_t k = 0; k < n; ++k) q[k] = pv(k);
                }
                new (self)
                    TokenDataArray{to_numpy(std::move(i)), to_numpy(std::move(l)), to_numpy(std::move(q)), -1, false};
            },
            "ids"_a, "logits"_a, "p"_a = nb::none(), "Candidates from token ids and their logits (copied).")
        .def_prop_rw(
            "ids", [](TokenDataArray &t) { return t.ids; },
            [](TokenDataArray &t, nb::ndarray<nb::numpy, int32_t, nb::ndim<1>> v) { t.ids = v; },
            nb::for_getter(nb::rv_policy::automatic), "Token ids (int32).")
        .def_prop_rw(
            "logits", [](TokenDataArray &t) { return t.logits; },
            [](TokenDataArray &t, nb::ndarray<nb::numpy, float, nb::ndim<1>> v) { t.logits = v; },
            nb::for_getter(nb::rv_policy::automatic), "Logits (float32).")
        .def_prop_rw(
            "p", [](TokenDataArray &t) { return t.p; },
            [](TokenDataArray &t, nb::ndarray<nb::numpy, float, nb::ndim<1>> v) { t.p = v; },
            nb::for_getter(nb::rv_policy::automatic), "Probabilities (float32; 0 until a sampler computes them).")
        .def_rw("selected", &TokenDataArray::selected, "Index (not token id) of the selected candidate, or -1.")
        .def_rw("sorted", &TokenDataArray::sorted, "Whether the candidates are sorted by logit, descending.")
        .def("__len__", [](const TokenDataArray &t) { return t.ids.shape(0); });
}
