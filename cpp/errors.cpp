// Exception classes of llamanb.core and the helpers that build their messages.
#include "errors.h"

std::string with_log_reason(const std::string &what) {
    std::string reason = take_last_error_log();
    return reason.empty() ? what : what + " (llama.cpp: " + reason + ")";
}

void PendingError::capture() {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    type = nb::steal(t);
    value = nb::steal(v);
    traceback = nb::steal(tb);
}

void PendingError::raise() {
    PyErr_Restore(type.release().ptr(), value.release().ptr(), traceback.release().ptr());
    throw nb::python_error();
}

namespace {

// Python exception classes, created once and owned by the module.
PyObject *llama_error, *closed_error, *load_error, *decode_error, *full_error, *aborted_error, *rpc_error;

PyObject *new_exception(nb::module_ &m, const char *name, std::initializer_list<PyObject *> bases, const char *doc) {
    nb::tuple base_tuple = nb::steal<nb::tuple>(PyTuple_New((Py_ssize_t) bases.size()));
    Py_ssize_t i = 0;
    for (PyObject *b : bases) PyTuple_SET_ITEM(base_tuple.ptr(), i++, nb::borrow(b).release().ptr());
    std::string qualified = std::string("llamanb.core.") + name;
    PyObject *type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base_tuple.ptr(), nullptr);
    if (!type) throw nb::python_error();
    m.attr(name) = nb::steal(type);
    return type;
}

}  // namespace

void init_errors(nb::module_ &m) {
    llama_error = new_exception(m, "LlamaError", {PyExc_RuntimeError}, "Base class of llama.cpp failures.");
    closed_error = new_exception(m, "ClosedError", {llama_error, PyExc_ValueError},
                                 "An operation on a closed object (like I/O on a closed file).");
    load_error = new_exception(m, "ModelLoadError", {llama_error},
                               "A model or adapter file could not be loaded (not GGUF, corrupt, unsupported).");
    decode_error = new_exception(m, "DecodeError", {llama_error}, "llama_decode/llama_encode failed.");
    full_error =
        new_exception(m, "ContextFullError", {decode_error}, "No KV-cache slot for the batch: the context is full.");
    aborted_error = new_exception(m, "AbortedError", {decode_error},
                                  "A decode was aborted by Context.cancel() or the abort callback.");
    rpc_error = new_exception(m, "RpcConnectionError", {llama_error, PyExc_ConnectionError},
                              "A ggml RPC worker could not be reached, or the connection to it was lost.");
    // Most derived first: one translator for the whole hierarchy.
    nb::register_exception_translator([](const std::exception_ptr &p, void *) {
        try {
            std::rethrow_exception(p);
        } catch (const AbortedError &e) {
            PyErr_SetString(aborted_error, e.what());
        } catch (const ContextFullError &e) {
            PyErr_SetString(full_error, e.what());
        } catch (const DecodeError &e) {
            PyErr_SetString(decode_error, e.what());
        } catch (const ModelLoadError &e) {
            PyErr_SetString(load_error, e.what());
        } catch (const ClosedError &e) {
            PyErr_SetString(closed_error, e.what());
        } catch (const RpcConnectionError &e) {
            PyErr_SetString(rpc_error, e.what());
        } catch (const LlamaError &e) {
            PyErr_SetString(llama_error, e.what());
        }
    });
}
