// C callbacks into Python: logging, model-load progress, decode abort/Ctrl-C.
// They run on llama.cpp's threads, so each takes the GIL itself, never lets a
// Python exception cross into C, and does nothing once the interpreter is going away.
#include "callbacks.h"

#include <cstdio>
#include <mutex>

namespace {

// Logging (the default): the Python logger "llamanb" through llamanb.logs.forward,
// imported on the first message, so the core is as quiet as the facade unless the
// application configures logging.
enum class LogMode { Logging, Stderr, Callback, Disabled };

struct LogState {
    std::mutex lock;
    LogMode mode = LogMode::Logging;
    int min_level = GGML_LOG_LEVEL_DEBUG;
    nb::object fn;  // Callable[[LogLevel, str], None]
};
LogState *log_state = new LogState();  // leaked on purpose: outlives module teardown

thread_local std::string last_error;
thread_local int last_level = GGML_LOG_LEVEL_INFO;

bool python_usable() { return Py_IsInitialized() && nb::is_alive(); }

void log_trampoline(ggml_log_level level, const char *text, void *) {
    int effective = level == GGML_LOG_LEVEL_CONT ? last_level : static_cast<int>(level);
    if (level != GGML_LOG_LEVEL_CONT) last_level = level;
    if (effective == GGML_LOG_LEVEL_ERROR) {  // every error line of the current call, joined
        std::string line(text);
        while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
        if (level != GGML_LOG_LEVEL_CONT && !last_error.empty() && !line.empty()) last_error += "; ";
        last_error += line;
    }
    LogMode mode;
    int min_level;
    {
        std::lock_guard<std::mutex> g(log_state->lock);
        mode = log_state->mode;
        min_level = log_state->min_level;
    }
    if (mode == LogMode::Disabled || effective < min_level) return;
    if (mode == LogMode::Stderr) {
        fputs(text, stderr);
        fflush(stderr);
        return;
    }
    if (!python_usable()) return;  // interpreter shutting down: the callback is gone
    nb::gil_scoped_acquire gil;
    nb::object fn;
    {
        std::lock_guard<std::mutex> g(log_state->lock);
        fn = log_state->fn;
    }
    try {
        if (!fn.is_valid() && mode == LogMode::Logging) {
            fn = nb::module_::import_("llamanb.logs").attr("forward");
            std::lock_guard<std::mutex> g(log_state->lock);
            if (log_state->mode == LogMode::Logging) log_state->fn = fn;
        }
        if (!fn.is_valid()) return;
        fn(effective, text);
    } catch (nb::python_error &e) {
        e.discard_as_unraisable("llamanb log callback");
    }
}

void set_mode(LogMode mode, int min_level, nb::object fn) {
    nb::object old;
    {
        std::lock_guard<std::mutex> g(log_state->lock);
        old = std::move(log_state->fn);
        log_state->mode = mode;
        log_state->min_level = min_level;
        log_state->fn = std::move(fn);
    }
}

}  // namespace

int log_swap_min_level(int min_level) {
    std::lock_guard<std::mutex> g(log_state->lock);
    int old = log_state->min_level;
    log_state->min_level = min_level;
    return old;
}

std::string take_last_error_log() {
    std::string out;
    out.swap(last_error);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

bool progress_trampoline(float progress, void *user_data) {
    auto *state = static_cast<ProgressState *>(user_data);
    if (!python_usable()) return false;
    nb::gil_scoped_acquire gil;
    if (state->error.set()) return false;
    try {
        nb::object result = state->fn(progress);
        return result.is_none() || nb::cast<bool>(result);
    } catch (nb::python_error &e) {
        e.restore();
        state->error.capture();
    } catch (std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        state->error.capture();
    }
    return false;
}

bool abort_trampoline(void *user_data) {
    auto *state = static_cast<AbortState *>(user_data);
    if (state->cancel.load(std::memory_order_relaxed)) return true;
    // Polling Python needs the GIL: do it at most every 20 ms.
    int64_t now = llama_time_us();
    if (now - state->last_poll_us < 20000) return false;
    state->last_poll_us = now;
    if (!python_usable()) return false;
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {  // Ctrl-C (main thread only): abort and re-raise
        state->error.capture();
        return true;
    }
    if (!state->fn.is_valid() || state->fn.is_none()) return false;
    try {
        return nb::cast<bool>(state->fn());
    } catch (nb::python_error &e) {
        e.restore();
        state->error.capture();
    } catch (std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        state->error.capture();
    }
    return true;
}

void init_callbacks(nb::module_ &m) {
    nb::enum_<ggml_log_level>(m, "LogLevel", nb::is_arithmetic(), "ggml log levels.")
        .value("NONE", GGML_LOG_LEVEL_NONE)
        .value("DEBUG", GGML_LOG_LEVEL_DEBUG)
        .value("INFO", GGML_LOG_LEVEL_INFO)
        .value("WARN", GGML_LOG_LEVEL_WARN)
        .value("ERROR", GGML_LOG_LEVEL_ERROR)
        .value("CONT", GGML_LOG_LEVEL_CONT);

    llama_log_set(log_trampoline, nullptr);
    // Nothing may reach Python once the interpreter is finalizing (handles freed then log).
    nb::module_::import_("atexit").attr("register")(
        nb::cpp_function([]() { set_mode(LogMode::Disabled, GGML_LOG_LEVEL_NONE, nb::object()); }));

    m.def(
        "log_to_stderr", [](int min_level) { set_mode(LogMode::Stderr, min_level, nb::object()); },
        "min_level"_a = (int) GGML_LOG_LEVEL_DEBUG,
        "Send llama.cpp/ggml log messages at or above `min_level` to stderr.");
    m.def(
        "log_to_logging", [](int min_level) { set_mode(LogMode::Logging, min_level, nb::object()); },
        "min_level"_a = (int) GGML_LOG_LEVEL_DEBUG,
        "Send log messages to the Python logger 'llamanb' (the default; it has a NullHandler,\n"
        "so nothing shows unless the application configures logging).");
    m.def(
        "log_to_callback",
        [](nb::callable fn, int min_level) { set_mode(LogMode::Callback, min_level, nb::borrow(fn)); }, "callback"_a,
        "min_level"_a = (int) GGML_LOG_LEVEL_DEBUG,
        nb::sig("def log_to_callback(callback: collections.abc.Callable[[int, str], None], "
                "min_level: int = 1) -> None"),
        "Send log messages to `callback(level, text)`; it runs with the GIL held, on\n"
        "whichever thread logged. Exceptions it raises are reported as unraisable.");
    m.def(
        "log_disable", []() { set_mode(LogMode::Disabled, GGML_LOG_LEVEL_NONE, nb::object()); },
        "Drop all llama.cpp/ggml log messages. Error messages are still attached to exceptions.");
}
