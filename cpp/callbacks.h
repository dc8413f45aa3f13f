// C callbacks into Python (callbacks.cpp): the states their user_data points at,
// the trampolines, and the log level switch.
#pragma once

#include "errors.h"

#include <atomic>

// Sets the lowest log level that is shown; returns the previous one.
int log_swap_min_level(int min_level);

// Model-load progress: Python's callback and the exception it raised, if any.
struct ProgressState {
    nb::object fn;  // Callable[[float], bool | None]
    PendingError error;
};
bool progress_trampoline(float progress, void *user_data);

// Abort check for decode/encode: ctx.cancel() sets `cancel` from any thread
// (no GIL needed); a Python callback and pending Ctrl-C are polled at most
// every few milliseconds so the check costs nothing per graph node.
struct AbortState {
    std::atomic<bool> cancel{false};
    nb::object fn;  // Callable[[], bool] or None
    PendingError error;
    int64_t last_poll_us = 0;
};
bool abort_trampoline(void *user_data);
