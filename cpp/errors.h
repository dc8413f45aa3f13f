// The exceptions of llamanb.core (their Python classes are registered in errors.cpp)
// and the helpers that attach llama.cpp's own error messages to them.
#pragma once

#include "binding.h"

#include <stdexcept>

struct LlamaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// Operation on an object after close() (or a sampler handed to a chain).
struct ClosedError : LlamaError {
    using LlamaError::LlamaError;
};
struct ModelLoadError : LlamaError {
    using LlamaError::LlamaError;
};
struct DecodeError : LlamaError {
    using LlamaError::LlamaError;
};
// llama_decode returned 1: no KV-cache slot for the batch (context full).
struct ContextFullError : DecodeError {
    using DecodeError::DecodeError;
};
// llama_decode/encode returned 2: aborted by ctx.cancel() or the abort callback.
struct AbortedError : DecodeError {
    using DecodeError::DecodeError;
};
// A ggml RPC worker could not be reached, or its connection was lost.
struct RpcConnectionError : LlamaError {
    using LlamaError::LlamaError;
};

// The last ERROR-level message llama.cpp logged on this thread (kept by the log
// trampoline in callbacks.cpp); appended to exception messages so a failure says why.
std::string take_last_error_log();
inline void clear_last_error_log() { (void) take_last_error_log(); }
std::string with_log_reason(const std::string &what);

// Python exceptions raised inside C callbacks are parked here and re-raised on
// the calling thread once the C call returns.
struct PendingError {
    nb::object type, value, traceback;
    bool set() const { return type.is_valid(); }
    void capture();             // from the current Python error state (GIL held)
    [[noreturn]] void raise();  // restore and throw nb::python_error (GIL held)
};
