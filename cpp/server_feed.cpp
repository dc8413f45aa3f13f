// The chunks of llama-server's streams, handed to an event loop in batches, with no
// Python code on the way. A thread per stream pulls it from the engine (as cpp-httplib's
// thread per connection does in llama-server) into one list; the loop is woken through a
// pipe only when that list goes from empty to non-empty, so the chunks of one decode step
// (one per busy slot) reach Python in one wakeup, and no thread but the loop's takes the
// GIL per token. The ASGI front (src/llamanb/server/stream_feed.py) reads it.
#include "binding.h"

#include "server_response.h"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <fcntl.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

namespace {

struct FeedState {
    int read_fd = -1;
    int write_fd = -1;
    std::mutex mutex;
    std::vector<std::pair<uint64_t, std::optional<std::string>>> ready;  // nullopt: that stream ended
    uint64_t next_key = 0;
    int running = 0;  // pulling threads
    bool closed = false;
    std::condition_variable idle;

    FeedState() {
        int fds[2];
        if (pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
        read_fd = fds[0];
        write_fd = fds[1];
        for (int fd : fds) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }

    // Only when every thread has ended (each holds the state): a loop may still watch the
    // read end until the Python object that owns it is gone.
    ~FeedState() {
        ::close(read_fd);
        ::close(write_fd);
    }

    void push(uint64_t key, std::optional<std::string> chunk) {
        bool wake;
        {
            std::lock_guard<std::mutex> lock(mutex);
            wake = ready.empty();
            ready.emplace_back(key, std::move(chunk));
        }
        if (wake) {  // a full pipe (EAGAIN) has a wakeup pending already
            const char byte = 1;
            while (write(write_fd, &byte, 1) < 0 && errno == EINTR) {}
        }
    }

    void drain_pipe() const {
        char buf[256];
        while (true) {
            ssize_t n = read(read_fd, buf, sizeof buf);
            if (n > 0) continue;
            if (n < 0 && errno == EINTR) continue;
            return;  // empty (EAGAIN)
        }
    }
};

void pump(const std::shared_ptr<FeedState> &state, std::shared_ptr<Exchange> exchange, uint64_t key) {
    std::string chunk;
    try {
        while (exchange->pull(chunk)) {
            if (!chunk.empty()) state->push(key, std::move(chunk));
            chunk.clear();
        }
    } catch (...) {  // upstream's chunk producer failed: the stream ends there, as a closed connection
    }
    exchange.reset();
    state->push(key, std::nullopt);
    std::lock_guard<std::mutex> lock(state->mutex);
    if (--state->running == 0) state->idle.notify_all();
}

class ChunkFeed {
public:
    ChunkFeed() : state_(std::make_shared<FeedState>()) {}

    int fileno() const { return state_->read_fd; }

    // Starts pulling RESPONSE's stream on a thread of its own; its chunks come out of
    // take() under the returned key, then None.
    uint64_t follow(ServerResponse &response) {
        if (!response.is_stream()) throw nb::value_error("the response is not a stream");
        uint64_t key;
        {
            std::lock_guard<std::mutex> lock(state_->mutex);
            if (state_->closed) throw std::runtime_error("the chunk feed is closed");
            key = state_->next_key++;
            ++state_->running;
        }
        try {
            std::thread(pump, state_, response.shared_exchange(), key).detach();
        } catch (const std::system_error &e) {
            std::lock_guard<std::mutex> lock(state_->mutex);
            --state_->running;
            throw std::runtime_error(std::string("could not start a thread for the stream: ") + e.what());
        }
        return key;
    }

    // Every chunk pulled since the last call, in order: (key, bytes), and (key, None)
    // once a stream has ended. Never blocks.
    std::vector<std::pair<uint64_t, std::optional<nb::bytes>>> take() {
        // With the GIL held: a non-blocking read and a lock no GIL holder waits on take
        // microseconds, and releasing it on every wakeup would let another thread take
        // the loop's GIL for up to a switch interval.
        std::vector<std::pair<uint64_t, std::optional<std::string>>> batch;
        state_->drain_pipe();  // before the swap: a push after it wakes the loop again
        {
            std::lock_guard<std::mutex> lock(state_->mutex);
            batch.swap(state_->ready);
        }
        std::vector<std::pair<uint64_t, std::optional<nb::bytes>>> out;
        out.reserve(batch.size());
        for (auto &[key, chunk] : batch) {
            out.emplace_back(key,
                             chunk ? std::optional<nb::bytes>(nb::bytes(chunk->data(), chunk->size())) : std::nullopt);
        }
        return out;
    }

    int running() {
        std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->running;
    }

    // Takes no new streams and waits up to TIMEOUT_S for the threads to end (cancel the
    // responses first); True when none is left.
    bool close(double timeout_s) {
        nb::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(state_->mutex);
        state_->closed = true;
        return state_->idle.wait_for(lock, std::chrono::duration<double>(timeout_s),
                                     [this] { return state_->running == 0; });
    }

private:
    std::shared_ptr<FeedState> state_;
};

}  // namespace

void init_server_feed(nb::module_ &m) {
    nb::class_<ChunkFeed>(m, "ChunkFeed",
                          "The chunks of streamed responses for an event loop: a thread per stream pulls\n"
                          "it without the GIL, and fileno() turns readable when take() has chunks.")
        .def(nb::init<>())
        .def("fileno", &ChunkFeed::fileno, "The pipe's read end, for loop.add_reader().")
        .def("follow", &ChunkFeed::follow, "response"_a,
             "Pulls RESPONSE's stream on a thread of its own; returns the key its chunks come\n"
             "under. ValueError when it is not a stream.")
        .def("take", &ChunkFeed::take,
             "The chunks pulled since the last call, in order, as (key, bytes), and (key, None)\n"
             "after a stream's last chunk. Never blocks.")
        .def_prop_ro("running", &ChunkFeed::running, "Streams still being pulled.")
        .def("close", &ChunkFeed::close, "timeout_s"_a,
             "Takes no new streams and waits up to TIMEOUT_S for the pulling threads to end\n"
             "(cancel their responses first); True when none is left.");
}
