// Exception classes of llamanb.core and the helpers that build their messages.
#include "common.h"

void check_tokens(const llama_vocab *vocab, const int32_t *tokens, size_t n) {
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            throw nb::index_error(("token id " + std::to_string(tokens[i]) + " at position " +
                                   std::to_string(i) + " out of range [0, " +
                                   std::to_string(n_vocab) + ")").c_str());
    }
}

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

void init_errors(nb::module_ &m) {
    static nb::exception<LlamaError> llama_error(m, "LlamaError", PyExc_RuntimeError);
    static nb::exception<ClosedError> closed_error(m, "ClosedError", llama_error.ptr());
    static nb::exception<ModelLoadError> load_error(m, "ModelLoadError", llama_error.ptr());
    static nb::exception<DecodeError> decode_error(m, "DecodeError", llama_error.ptr());
    static nb::exception<ContextFullError> full_error(m, "ContextFullError", decode_error.ptr());
    static nb::exception<AbortedError> aborted_error(m, "AbortedError", decode_error.ptr());
    // nanobind matches translators in registration order, most recent first,
    // so the subclasses registered last win over LlamaError.
}
