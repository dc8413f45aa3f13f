// One llama-server request and its response, shared by the route call (server.cpp)
// and whoever pulls a stream's chunks: ServerResponse.next_chunk() or a ChunkFeed
// thread (server_feed.cpp).
#pragma once

#include "binding.h"

#include "server-http.h"  // llama.cpp's tools/server/server-http.h: server_http_req/res

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

// One request and its response. The handler keeps a reference to should_stop (and a
// streaming response keeps reading the request), so both live as long as the response.
struct Exchange {
    std::atomic<bool> cancelled{false};
    std::function<bool()> should_stop;
    std::unique_ptr<server_http_req> req;
    server_http_res_ptr res;
    std::mutex next_mutex;  // next() and close() never overlap
    bool has_next = false;

    Exchange() : should_stop([this] { return cancelled.load(); }) {}
    ~Exchange() { close(); }

    void close() {
        cancelled = true;
        std::lock_guard<std::mutex> lock(next_mutex);
        if (res) res->on_complete();  // upstream: "fired before req and res are destroyed"
        res.reset();
        req.reset();
        has_next = false;
    }

    // The stream's next chunk into `chunk` (blocks until the engine produces it); false
    // when the stream had ended already. Call without the GIL.
    bool pull(std::string &chunk) {
        std::lock_guard<std::mutex> lock(next_mutex);
        if (!has_next || !res) return false;
        has_next = res->next(chunk);
        return true;
    }
};

// A llama-server response: a whole body, or a stream of chunks (server-sent events).
class ServerResponse {
public:
    ServerResponse() : exchange_(std::make_shared<Exchange>()) {}
    int status() const { return res().status; }
    std::string content_type() const { return res().content_type; }
    std::map<std::string, std::string> headers() const { return res().headers; }
    bool is_stream() const { return res().is_stream(); }
    nb::bytes body() const { return nb::bytes(res().data.data(), res().data.size()); }

    // The next chunk, None at the end. Blocks until the engine produces it (GIL released).
    std::optional<nb::bytes> next_chunk() {
        std::string chunk;
        bool pulled;
        {
            nb::gil_scoped_release release;
            pulled = exchange_->pull(chunk);
        }
        if (!pulled) return std::nullopt;
        return nb::bytes(chunk.data(), chunk.size());
    }

    // The client went away (or the server stops): the handler sees should_stop() and the
    // engine drops the task. Thread-safe, also while handle() runs.
    void cancel() { exchange_->cancelled = true; }
    bool cancelled() const { return exchange_->cancelled; }

    void close() {
        nb::gil_scoped_release release;
        exchange_->close();
    }

    Exchange &exchange() { return *exchange_; }
    std::shared_ptr<Exchange> shared_exchange() const { return exchange_; }

private:
    const server_http_res &res() const {
        if (!exchange_->res) throw std::runtime_error("no response: not handled yet, or closed");
        return *exchange_->res;
    }
    std::shared_ptr<Exchange> exchange_;
};
