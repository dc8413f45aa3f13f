// The MtmdContext handle (libmtmd's mtmd_context) and its parameters; mtmd.cpp binds
// the class, mtmd_context.cpp opens and closes it. The other areas of libmtmd: media
// (mtmd_media.h), chunks (mtmd_chunks.h) and evaluation (mtmd_eval.h).
#pragma once

#include "context.h"

#include "mtmd.h"
#include "mtmd-helper.h"

#include <atomic>
#include <filesystem>
#include <mutex>

// mtmd_context_params without the raw pointers (device, callbacks); the marker is
// kept here and lent to mtmd_init_from_file, which copies it.
struct MtmdParams {
    mtmd_context_params p = mtmd_context_params_default();
    std::string media_marker = mtmd_default_marker();
};

// Owns an mtmd_context. It reads the text model (vocabulary, embedding width) for its
// whole life, so it holds the Model open. libmtmd's encode is not thread-safe: every
// call takes `mutex` with the GIL released, and close() waits for a running one.
struct MtmdContext {
    mtmd_context *ptr = nullptr;
    nb::object model_obj;
    Model *model = nullptr;
    std::mutex mutex;
    // Set under `mutex` by close(): a call that was waiting for the mutex then sees the
    // context closed instead of running while close() frees it.
    std::atomic<bool> closing{false};
    std::string path;
    int32_t n_embd = 0;  // the text model's input embedding width (mtmd's output rows)

    mtmd_context *get() const {  // GIL held
        if (!ptr || closing) throw ClosedError("MtmdContext is closed");
        return ptr;
    }
    // Runs fn(mtmd_context*) with the GIL released and the mutex held.
    template <typename F>
    auto locked(F &&fn) -> decltype(fn(ptr)) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> guard(mutex);
        if (!ptr || closing) throw ClosedError("MtmdContext is closed");
        return fn(ptr);
    }
    void free_now() {  // GIL held, no call running
        if (ptr) {
            mtmd_free(ptr);
            ptr = nullptr;
            if (model) model->release();
        }
    }
    ~MtmdContext() { free_now(); }
};

// FileNotFoundError (IsADirectoryError for a directory) naming WHAT and PATH.
[[noreturn]] void raise_missing_file(const char *what, const std::filesystem::path &path);

// MtmdContext(mmproj_path, model, params): loads the projector for model, which it keeps open.
void mtmd_context_init(MtmdContext *self, const std::filesystem::path &path, nb::object model_obj,
                       const MtmdParams *params);
// Frees the projector once a running call is done. Idempotent.
void mtmd_context_close(MtmdContext &c);

// MtmdContextParams, on M.
void init_mtmd_context_params(nb::module_ &m);
