// GGUF files without a model (llamanb.core.gguf): metadata with Python types,
// tensor infos, and tensor data as zero-copy views of a read-only mmap.
#include "errors.h"

#include "ggml.h"
#include "gguf.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/tuple.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace {

// Owns the parsed header and a read-only mapping of the whole file. close() is
// deferred while tensor views are alive, so a view never outlives its mapping.
struct GGUFFile {
    gguf_context *ctx = nullptr;
    void *map = nullptr;
    size_t map_size = 0;
    std::string path;
    int live_views = 0;
    bool closed = false;

    gguf_context *get() const {
        if (closed || !ctx) throw ClosedError("GGUFFile is closed");
        return ctx;
    }
    void free_now() {
        if (live_views > 0) return;
        if (ctx) {
            gguf_free(ctx);
            ctx = nullptr;
        }
        if (map) {
            munmap(map, map_size);
            map = nullptr;
        }
    }
    ~GGUFFile() {
        live_views = 0;
        free_now();
    }
};

void open_gguf(GGUFFile *self, const std::filesystem::path &path) {
    std::string p = path.string();
    if (!std::filesystem::is_regular_file(path)) {
        PyErr_Format(std::filesystem::exists(path) ? PyExc_IsADirectoryError : PyExc_FileNotFoundError,
                     "GGUF file not found: '%s'", p.c_str());
        throw nb::python_error();
    }
    gguf_context *ctx;
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        ctx = gguf_init_from_file(p.c_str(), gguf_init_params{true, nullptr});
    }
    if (!ctx) throw ModelLoadError(with_log_reason("not a valid GGUF file: '" + p + "'"));
    int fd = ::open(p.c_str(), O_RDONLY);
    struct stat st{};
    void *map = MAP_FAILED;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0)
        map = mmap(nullptr, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (fd >= 0) ::close(fd);
    if (map == MAP_FAILED) {
        gguf_free(ctx);
        throw LlamaError("could not mmap '" + p + "'");
    }
    new (self) GGUFFile();
    self->ctx = ctx;
    self->map = map;
    self->map_size = (size_t) st.st_size;
    self->path = p;
}

nb::object scalar(const gguf_context *c, int64_t k, gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
            return nb::int_(gguf_get_val_u8(c, k));
        case GGUF_TYPE_INT8:
            return nb::int_(gguf_get_val_i8(c, k));
        case GGUF_TYPE_UINT16:
            return nb::int_(gguf_get_val_u16(c, k));
        case GGUF_TYPE_INT16:
            return nb::int_(gguf_get_val_i16(c, k));
        case GGUF_TYPE_UINT32:
            return nb::int_(gguf_get_val_u32(c, k));
        case GGUF_TYPE_INT32:
            return nb::int_(gguf_get_val_i32(c, k));
        case GGUF_TYPE_UINT64:
            return nb::int_(gguf_get_val_u64(c, k));
        case GGUF_TYPE_INT64:
            return nb::int_(gguf_get_val_i64(c, k));
        case GGUF_TYPE_FLOAT32:
            return nb::float_(gguf_get_val_f32(c, k));
        case GGUF_TYPE_FLOAT64:
            return nb::float_(gguf_get_val_f64(c, k));
        case GGUF_TYPE_BOOL:
            return nb::bool_(gguf_get_val_bool(c, k));
        case GGUF_TYPE_STRING: {
            const char *s = gguf_get_val_str(c, k);
            return nb::steal(PyUnicode_DecodeUTF8(s, (Py_ssize_t) strlen(s), "replace"));
        }
        default:
            throw LlamaError("unexpected GGUF value type");
    }
}

template <typename T>
nb::list array_of(const void *data, size_t n) {
    nb::list out;
    const T *p = static_cast<const T *>(data);
    for (size_t i = 0; i < n; ++i) out.append(p[i]);
    return out;
}

nb::object value(const gguf_context *c, int64_t k) {
    gguf_type t = gguf_get_kv_type(c, k);
    if (t != GGUF_TYPE_ARRAY) return scalar(c, k, t);
    gguf_type at = gguf_get_arr_type(c, k);
    size_t n = gguf_get_arr_n(c, k);
    if (at == GGUF_TYPE_STRING) {
        nb::list out;
        for (size_t i = 0; i < n; ++i) {
            const char *s = gguf_get_arr_str(c, k, i);
            out.append(nb::steal(PyUnicode_DecodeUTF8(s, (Py_ssize_t) strlen(s), "replace")));
        }
        return out;
    }
    if (at == GGUF_TYPE_ARRAY) return nb::list();  // nested arrays: not produced by llama.cpp
    const void *d = gguf_get_arr_data(c, k);
    switch (at) {
        case GGUF_TYPE_UINT8:
            return array_of<uint8_t>(d, n);
        case GGUF_TYPE_INT8:
            return array_of<int8_t>(d, n);
        case GGUF_TYPE_UINT16:
            return array_of<uint16_t>(d, n);
        case GGUF_TYPE_INT16:
            return array_of<int16_t>(d, n);
        case GGUF_TYPE_UINT32:
            return array_of<uint32_t>(d, n);
        case GGUF_TYPE_INT32:
            return array_of<int32_t>(d, n);
        case GGUF_TYPE_UINT64:
            return array_of<uint64_t>(d, n);
        case GGUF_TYPE_INT64:
            return array_of<int64_t>(d, n);
        case GGUF_TYPE_FLOAT32:
            return array_of<float>(d, n);
        case GGUF_TYPE_FLOAT64:
            return array_of<double>(d, n);
        case GGUF_TYPE_BOOL:
            return array_of<bool>(d, n);
        default:
            throw LlamaError("unexpected GGUF array type");
    }
}

int64_t tensor_id(const GGUFFile &f, const std::string &name) {
    int64_t id = gguf_find_tensor(f.get(), name.c_str());
    if (id < 0) throw nb::key_error(("no tensor named '" + name + "'").c_str());
    return id;
}

std::vector<int64_t> tensor_shape(const gguf_context *c, int64_t id) {
    const int64_t *ne = gguf_get_tensor_ne(c, id);
    int n = GGML_MAX_DIMS;
    while (n > 1 && ne[n - 1] == 1) --n;
    std::vector<int64_t> shape;
    for (int i = n - 1; i >= 0; --i) shape.push_back(ne[i]);
    return shape;
}

nb::object tensor_data(nb::handle self, const std::string &name) {
    GGUFFile &f = nb::cast<GGUFFile &>(self);
    gguf_context *c = f.get();
    int64_t id = tensor_id(f, name);
    ggml_type t = gguf_get_tensor_type(c, id);
    size_t offset = gguf_get_data_offset(c) + gguf_get_tensor_offset(c, id);
    size_t nbytes = gguf_get_tensor_size(c, id);
    if (offset + nbytes > f.map_size)
        throw LlamaError("tensor '" + name + "' extends past the end of the file (truncated?)");
    const char *data = static_cast<const char *>(f.map) + offset;
    struct Owner {
        nb::object file;
    };
    f.live_views += 1;
    nb::capsule owner(new Owner{nb::borrow(self)}, [](void *p) noexcept {
        auto *o = static_cast<Owner *>(p);
        GGUFFile &file = nb::cast<GGUFFile &>(o->file);
        file.live_views -= 1;
        if (file.closed) file.free_now();
        delete o;
    });
    std::vector<size_t> shape;
    nb::dlpack::dtype dt;
    if (t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_F64 || t == GGML_TYPE_I8 || t == GGML_TYPE_I16 ||
        t == GGML_TYPE_I32 || t == GGML_TYPE_I64) {
        for (int64_t d : tensor_shape(c, id)) shape.push_back((size_t) d);
        switch (t) {
            case GGML_TYPE_F32:
                dt = nb::dtype<float>();
                break;
            case GGML_TYPE_F64:
                dt = nb::dtype<double>();
                break;
            case GGML_TYPE_F16:
                dt = nb::dlpack::dtype{(uint8_t) nb::dlpack::dtype_code::Float, 16, 1};
                break;
            case GGML_TYPE_I8:
                dt = nb::dtype<int8_t>();
                break;
            case GGML_TYPE_I16:
                dt = nb::dtype<int16_t>();
                break;
            case GGML_TYPE_I32:
                dt = nb::dtype<int32_t>();
                break;
            default:
                dt = nb::dtype<int64_t>();
                break;
        }
    } else {
        // Block-quantized (and bf16): the raw rows as bytes; see ggml.dequantize.
        std::vector<int64_t> s = tensor_shape(c, id);
        // Rows from the other dimensions, not nbytes / row_bytes: a tensor with a zero
        // first dimension has rows of 0 bytes (found by the gguf_reader fuzzer: SIGFPE).
        size_t row_bytes = ggml_row_size(t, s.back());
        size_t rows = 1;
        for (size_t d = 0; d + 1 < s.size(); ++d) rows *= (size_t) s[d];
        if (rows * row_bytes != nbytes)
            throw LlamaError("tensor '" + name + "' has a size that does not match its shape");
        shape.push_back(rows);
        shape.push_back(row_bytes);
        dt = nb::dtype<uint8_t>();
    }
    nb::ndarray<nb::numpy, nb::ro> arr(data, shape.size(), shape.data(), owner, nullptr, dt);
    return nb::cast(arr);
}

}  // namespace

void init_gguf(nb::module_ &g) {
    nb::class_<GGUFFile>(g, "GGUFFile",
                         "A GGUF file opened read-only: metadata, tensor infos, and zero-copy tensor data.")
        .def("__init__", &open_gguf, "path"_a, nb::sig("def __init__(self, path: str | os.PathLike[str]) -> None"),
             "Parse the header (FileNotFoundError / ModelLoadError on bad files) and mmap the file.")
        .def(
            "close",
            [](GGUFFile &f) {
                f.closed = true;
                f.free_now();
            },
            "Release the file. Idempotent; deferred while tensor views are alive.")
        .def_prop_ro(
            "closed", [](const GGUFFile &f) { return f.closed; }, "True after close().")
        .def(
            "__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> GGUFFile"))
        .def(
            "__exit__",
            [](GGUFFile &f, nb::handle, nb::handle, nb::handle) {
                f.closed = true;
                f.free_now();
            },
            "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def_prop_ro(
            "path", [](const GGUFFile &f) { return f.path; }, "The file.")
        .def_prop_ro(
            "version", [](const GGUFFile &f) { return gguf_get_version(f.get()); }, "GGUF format version.")
        .def_prop_ro(
            "alignment", [](const GGUFFile &f) { return gguf_get_alignment(f.get()); }, "Tensor data alignment.")
        .def_prop_ro(
            "data_offset", [](const GGUFFile &f) { return gguf_get_data_offset(f.get()); },
            "File offset of the tensor data.")
        .def_prop_ro(
            "metadata",
            [](const GGUFFile &f) {
                gguf_context *c = f.get();
                nb::dict out;
                for (int64_t k = 0, n = gguf_get_n_kv(c); k < n; ++k) out[gguf_get_key(c, k)] = value(c, k);
                return out;
            },
            nb::sig("def metadata(self) -> dict[str, typing.Any]"),
            "Every key/value with its Python type (int, float, bool, str, or a list of them).")
        .def(
            "value_type",
            [](const GGUFFile &f, const std::string &key) {
                gguf_context *c = f.get();
                int64_t k = gguf_find_key(c, key.c_str());
                if (k < 0) throw nb::key_error(key.c_str());
                gguf_type t = gguf_get_kv_type(c, k);
                std::string name = gguf_type_name(t);
                if (t == GGUF_TYPE_ARRAY) name += std::string("[") + gguf_type_name(gguf_get_arr_type(c, k)) + "]";
                return name;
            },
            "key"_a, "The GGUF type name of a key, e.g. 'u32' or 'arr[str]'.")
        .def_prop_ro(
            "tensors",
            [](const GGUFFile &f) {
                gguf_context *c = f.get();
                std::vector<std::tuple<std::string, int, std::vector<int64_t>, size_t, size_t>> out;
                for (int64_t i = 0, n = gguf_get_n_tensors(c); i < n; ++i)
                    out.emplace_back(gguf_get_tensor_name(c, i), (int) gguf_get_tensor_type(c, i), tensor_shape(c, i),
                                     gguf_get_tensor_offset(c, i), gguf_get_tensor_size(c, i));
                return out;
            },
            "Tensor infos: (name, ggml_type, numpy-order shape, offset in the data section, nbytes).")
        .def("tensor_data", &tensor_data, "name"_a,
             nb::sig("def tensor_data(self, name: str) -> numpy.typing.NDArray[typing.Any]"),
             "Zero-copy read-only view of a tensor's data: typed for float/int tensors, uint8\n"
             "rows (n_rows, row_bytes) for block-quantized ones.");
}
