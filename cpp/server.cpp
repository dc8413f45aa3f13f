// llama-server's engine in process: its argument parser, server_context (slots, task
// queue, decoding on the engine's own thread) and the route handlers of server_routes,
// exactly as tools/server/server.cpp wires them, minus the cpp-httplib front. The HTTP
// layer is llamanb's ASGI app (src/llamanb/server/), which calls handle() with the GIL
// released and pulls streamed chunks through ServerResponse.next_chunk().
#include "binding.h"

#include "arg.h"  // llama.cpp's common/arg.h: common_params_parse
#include "log.h"  // common_log
#include "server-common.h"
#include "server-context.h"
#include "server-stream.h"
#include "server_response.h"

#include "mtmd-helper.h"

#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace {

using handler_t = server_http_context::handler_t;

// upstream's ex_wrapper (server.cpp): a handler never throws; invalid input is a 400.
server_http_res_ptr error_response(const std::string &message, error_type type) {
    auto res = std::make_unique<server_http_res>();
    json error = format_error_response(message, type);
    res->status = json_value(error, "code", 500);
    res->data = safe_json_to_str({{"error", error}});
    return res;
}

server_http_res_ptr call_handler(const handler_t &handler, const server_http_req &req) {
    try {
        return handler(req);
    } catch (const std::invalid_argument &e) {
        return error_response(e.what(), ERROR_TYPE_INVALID_REQUEST);
    } catch (const common_json_error &e) {
        return error_response(e.what(), ERROR_TYPE_INVALID_REQUEST);
    } catch (const std::exception &e) {
        return error_response(e.what(), ERROR_TYPE_SERVER);
    } catch (...) {
        return error_response("unknown error", ERROR_TYPE_SERVER);
    }
}

server_http_res_ptr json_error(int status, const char *message, const char *type) {
    auto res = std::make_unique<server_http_res>();
    res->status = status;
    res->data = safe_json_to_str({{"error", {{"message", message}, {"type", type}, {"code", status}}}});
    return res;
}

// server_context points libmtmd's log at common_log when it is made and when it loads a
// projector; llama.cpp's own callback (llamanb's, unless server_log_setup() ran) is put
// back, so that the rest of llamanb.core still sees libmtmd's errors.
void restore_mtmd_log() {
    ggml_log_callback cb = nullptr;
    void *ud = nullptr;
    llama_log_get(&cb, &ud);
    mtmd_helper_log_set(cb, ud);
}

// process-wide: the resumable-stream session manager of server-stream.cpp
std::mutex stream_gc_mutex;
int stream_gc_users = 0;

}  // namespace

// a multipart form's files: field name -> (content, file name, content type)
using UploadedFiles = std::map<std::string, std::tuple<nb::bytes, std::string, std::string>>;

class Server {
public:
    // llama-server's own command line (without the program name), parsed by llama.cpp's
    // argument parser with LLAMA_ARG_* environment variables. Raises ValueError when the
    // parser refuses it (it has printed why). Note: -h/--help, --version, --list-devices
    // and --completion-bash print and exit the process, as llama-server does.
    explicit Server(const std::vector<std::string> &args) {
        std::vector<std::string> argv_s;
        argv_s.push_back("llama-server");
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char *> argv;
        for (auto &a : argv_s) argv.push_back(a.data());
        if (!common_params_parse((int) argv.size(), argv.data(), params_, LLAMA_EXAMPLE_SERVER)) {
            throw nb::value_error("invalid llama-server arguments (see the message above)");
        }
        restore_mtmd_log();
        adjust_params();
        routes_ = std::make_unique<server_routes>(params_, ctx_);
        register_routes();
    }

    ~Server() { stop(); }

    // Loads the model on the engine's own thread, then runs its loop there.
    void start() {
        std::lock_guard<std::mutex> lock(state_mutex_);
        if (thread_.joinable()) throw std::runtime_error("the server was started already");
        {
            std::lock_guard<std::mutex> gc(stream_gc_mutex);
            if (stream_gc_users++ == 0) server_stream_session_manager_start();
        }
        thread_ = std::thread([this] { run(); });
    }

    // Waits until the model is loaded (True), failed to load or stopped (False).
    bool wait_ready(double timeout_s) {
        nb::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(state_mutex_);
        state_cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                           [this] { return state_ != SERVER_STATE_LOADING_ || !thread_.joinable(); });
        return state_ == SERVER_STATE_READY_;
    }

    std::string state() const {
        switch (state_.load()) {
            case SERVER_STATE_LOADING_:
                return "loading";
            case SERVER_STATE_READY_:
                return "ready";
            case SERVER_STATE_FAILED_:
                return "failed";
            default:
                return "stopped";
        }
    }

    // Calls the route handler of METHOD PATH (path without the --api-prefix), as
    // llama-server would, with the GIL released. Unknown routes are llama-server's 404;
    // while the model loads every route is its 503.
    void handle(ServerResponse &response, const std::string &method, const std::string &path,
                const std::map<std::string, std::string> &query, const std::map<std::string, std::string> &headers,
                const std::string &query_string, nb::bytes body, const UploadedFiles &files) {
        Exchange &exchange = response.exchange();
        std::string body_s(body.c_str(), body.size());
        std::map<std::string, uploaded_file> uploads;  // a multipart form's files, as server-http.cpp makes them
        for (const auto &[name, file] : files) {
            const auto &[data, filename, content_type] = file;
            const auto *bytes = reinterpret_cast<const uint8_t *>(data.c_str());
            uploads[name] = uploaded_file{raw_buffer(bytes, bytes + data.size()), filename, content_type};
        }
        nb::gil_scoped_release release;
        track(response.shared_exchange());
        std::lock_guard<std::mutex> lock(exchange.next_mutex);
        if (exchange.req) throw std::runtime_error("this response was handled already");
        std::map<std::string, std::string> params = query;
        const handler_t *handler = find(method, path, params);
        exchange.req.reset(new server_http_req{params, headers, path, query_string, std::move(body_s),
                                               std::move(uploads), exchange.should_stop});
        if (state_ != SERVER_STATE_READY_) {
            exchange.res = json_error(503, "Loading model", "unavailable_error");
        } else if (!handler) {
            exchange.res = json_error(404, "File Not Found", "not_found_error");
        } else {
            exchange.res = call_handler(*handler, *exchange.req);
        }
        if (!exchange.res) exchange.res = json_error(500, "no response", "server_error");
        exchange.has_next = exchange.res->is_stream();
    }

    // Ends the engine loop and joins its thread; requests in flight get errors.
    void stop() {
        {
            nb::gil_scoped_release release;
            std::unique_lock<std::mutex> lock(state_mutex_);
            if (!thread_.joinable()) return;
            stopping_ = true;
            // load_model() cannot be interrupted: terminate() once it has returned
            state_cv_.wait(lock, [this] { return state_ != SERVER_STATE_LOADING_; });
            close_exchanges();
            ctx_.terminate();
            lock.unlock();
            thread_.join();
            std::lock_guard<std::mutex> gc(stream_gc_mutex);
            if (--stream_gc_users == 0) server_stream_session_manager_stop();
        }
        if (state_ != SERVER_STATE_FAILED_) state_ = SERVER_STATE_STOPPED_;  // a failed load stays said
        state_cv_.notify_all();
    }

    bool has_route(const std::string &method, const std::string &path) const {
        std::map<std::string, std::string> params;
        return find(method, path, params) != nullptr;
    }

    // (method, path) of every route, sorted: what the front's Vertex AI route dispatches to
    std::vector<std::pair<std::string, std::string>> routes() const {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto &entry : routes_table_) {
            const auto space = entry.first.find(' ');
            out.emplace_back(entry.first.substr(0, space), entry.first.substr(space + 1));
        }
        return out;  // routes_table_ is a std::map: sorted by "METHOD path"
    }

    const common_params &params() const { return params_; }

private:
    enum State { SERVER_STATE_LOADING_, SERVER_STATE_READY_, SERVER_STATE_FAILED_, SERVER_STATE_STOPPED_ };

    // what llama_server() in server.cpp does to the parsed params before loading
    void adjust_params() {
        if (params_.embedding && params_.n_batch > params_.n_ubatch) params_.n_batch = params_.n_ubatch;
        if (params_.n_parallel < 0) {
            params_.n_parallel = 4;
            params_.kv_unified = true;
        }
        if (params_.kv_unified_per_slot > 0 && params_.n_ctx == 0 &&
            (uint32_t) params_.fit_params_min_ctx != UINT32_MAX) {
            params_.n_ctx = params_.n_parallel * params_.kv_unified_per_slot;
        }
        auto model_name = params_.model.get_name();
        if (params_.model_alias.empty() && !model_name.empty()) params_.model_alias.insert(model_name);
    }

    void run() {
        bool loaded = ctx_.load_model(params_);
        restore_mtmd_log();
        {
            std::lock_guard<std::mutex> lock(state_mutex_);
            if (loaded) routes_->update_meta(ctx_);
            state_ = loaded ? SERVER_STATE_READY_ : SERVER_STATE_FAILED_;
        }
        state_cv_.notify_all();
        if (loaded && !stopping_) ctx_.start_loop();  // blocks until terminate()
    }

    // Every handled exchange, so that stop() can close those still open: a stream pulled by
    // a ChunkFeed thread (server_feed.cpp) outlives its Python ServerResponse, which alone
    // keeps this Server alive.
    void track(const std::shared_ptr<Exchange> &exchange) {
        std::lock_guard<std::mutex> lock(exchanges_mutex_);
        if (exchanges_.size() >= 2 * exchanges_live_ + 64) {  // prune the ended ones, amortized
            exchanges_.erase(std::remove_if(exchanges_.begin(), exchanges_.end(),
                                            [](const std::weak_ptr<Exchange> &e) { return e.expired(); }),
                             exchanges_.end());
            exchanges_live_ = exchanges_.size();
        }
        exchanges_.push_back(exchange);
    }

    // Cancels every open exchange, then closes each (waiting for a chunk being pulled), so
    // that no thread reads the engine after it ends.
    void close_exchanges() {
        std::vector<std::shared_ptr<Exchange>> open;
        {
            std::lock_guard<std::mutex> lock(exchanges_mutex_);
            for (auto &weak : exchanges_) {
                if (auto exchange = weak.lock()) open.push_back(std::move(exchange));
            }
            exchanges_.clear();
            exchanges_live_ = 0;
        }
        for (auto &exchange : open) exchange->cancelled = true;
        for (auto &exchange : open) exchange->close();
    }

    void route(const char *method, const char *path, const handler_t &handler) {
        routes_table_[std::string(method) + " " + path] = handler;
    }

    const handler_t *find(const std::string &method, const std::string &path,
                          std::map<std::string, std::string> &params) const {
        auto it = routes_table_.find(method + " " + path);
        if (it != routes_table_.end()) return &it->second;
        const std::string slots = "/slots/";  // the one route with a path parameter
        if (method == "POST" && path.rfind(slots, 0) == 0 && path.size() > slots.size() &&
            path.find('/', slots.size()) == std::string::npos) {
            params["id_slot"] = path.substr(slots.size());
            return &routes_table_.at("POST /slots/:id_slot");
        }
        return nullptr;
    }

    // server.cpp's route table for one model (no router mode, built-in tools, MCP or CORS
    // proxy: docs/server.md)
    void register_routes() {
        server_routes &r = *routes_;
        route("GET", "/health", r.get_health);
        route("GET", "/v1/health", r.get_health);
        route("GET", "/metrics", r.get_metrics);
        route("GET", "/props", r.get_props);
        route("POST", "/props", r.post_props);
        route("GET", "/models", r.get_models);
        route("GET", "/v1/models", r.get_models);
        route("POST", "/completion", r.post_completions);
        route("POST", "/completions", r.post_completions);
        route("POST", "/v1/completions", r.post_completions_oai);
        route("POST", "/chat/completions", r.post_chat_completions);
        route("POST", "/v1/chat/completions", r.post_chat_completions);
        route("POST", "/v1/chat/completions/control", r.post_control);
        route("POST", "/v1/responses", r.post_responses_oai);
        route("POST", "/responses", r.post_responses_oai);
        route("POST", "/v1/audio/transcriptions", r.post_transcriptions_oai);
        route("POST", "/audio/transcriptions", r.post_transcriptions_oai);
        route("POST", "/v1/messages", r.post_anthropic_messages);
        route("POST", "/infill", r.post_infill);
        route("POST", "/embedding", r.post_embeddings);
        route("POST", "/embeddings", r.post_embeddings);
        route("POST", "/v1/embeddings", r.post_embeddings_oai);
        route("POST", "/rerank", r.post_rerank);
        route("POST", "/reranking", r.post_rerank);
        route("POST", "/v1/rerank", r.post_rerank);
        route("POST", "/v1/reranking", r.post_rerank);
        route("POST", "/v1/systemone", r.post_systemone);
        route("POST", "/tokenize", r.post_tokenize);
        route("POST", "/detokenize", r.post_detokenize);
        route("POST", "/apply-template", r.post_apply_template);
        route("POST", "/chat/completions/input_tokens", r.post_chat_completions_tok);
        route("POST", "/v1/chat/completions/input_tokens", r.post_chat_completions_tok);
        route("POST", "/responses/input_tokens", r.post_responses_tok_oai);
        route("POST", "/v1/responses/input_tokens", r.post_responses_tok_oai);
        route("POST", "/v1/messages/count_tokens", r.post_anthropic_count_tokens);
        route("GET", "/lora-adapters", r.get_lora_adapters);
        route("POST", "/lora-adapters", r.post_lora_adapters);
        route("GET", "/slots", r.get_slots);
        route("POST", "/slots/:id_slot", r.post_slots);
        route("GET", "/v1/stream", server_stream_make_get_handler());
        route("POST", "/v1/streams/lookup", server_stream_make_lookup_handler());
        route("DELETE", "/v1/stream", server_stream_make_delete_handler());
    }

    common_params params_;
    server_context ctx_;
    std::unique_ptr<server_routes> routes_;
    std::map<std::string, handler_t> routes_table_;
    std::thread thread_;
    std::mutex state_mutex_;
    std::condition_variable state_cv_;
    std::atomic<int> state_{SERVER_STATE_LOADING_};
    std::atomic<bool> stopping_{false};
    std::mutex exchanges_mutex_;
    std::vector<std::weak_ptr<Exchange>> exchanges_;
    size_t exchanges_live_ = 0;  // live at the last pruning
};

void init_server(nb::module_ &m) {
    nb::class_<ServerResponse>(m, "ServerResponse",
                               "A llama-server route's response: a whole body, or a stream of chunks.\n"
                               "Made empty, filled by Server.handle(), cancellable all along.")
        .def(nb::init<>())
        .def_prop_ro("status", &ServerResponse::status)
        .def_prop_ro("content_type", &ServerResponse::content_type)
        .def_prop_ro("headers", &ServerResponse::headers)
        .def_prop_ro("is_stream", &ServerResponse::is_stream)
        .def_prop_ro("body", &ServerResponse::body, "The whole body (empty for a stream).")
        .def("next_chunk", &ServerResponse::next_chunk,
             "The next chunk of a stream, None after the last; blocks without the GIL until the\n"
             "engine produces it (a chunk can be empty).")
        .def("cancel", &ServerResponse::cancel,
             "The client went away: the engine cancels the request's task. Thread-safe, also\n"
             "while Server.handle() runs.")
        .def_prop_ro("cancelled", &ServerResponse::cancelled)
        .def("close", &ServerResponse::close, "Ends the response and frees its request.");

    nb::class_<Server>(m, "Server", "llama-server's engine in process (server_context and its route handlers).")
        .def(nb::init<const std::vector<std::string> &>(), "args"_a,
             "Parses llama-server's command line (without the program name) and LLAMA_ARG_*\n"
             "environment variables with llama.cpp's own parser. Raises ValueError if it refuses\n"
             "them. -h/--help, --version and --list-devices print and exit, as in llama-server.")
        .def("start", &Server::start, "Loads the model and runs the engine, on the engine's own thread.")
        .def("wait_ready", &Server::wait_ready, "timeout_s"_a,
             "Waits for the model: True once loaded, False if it failed or timeout_s passed.")
        .def_prop_ro("state", &Server::state, "'loading', 'ready', 'failed' or 'stopped'.")
        .def("handle", &Server::handle, "response"_a, "method"_a, "path"_a, "query"_a, "headers"_a, "query_string"_a,
             "body"_a, "files"_a = UploadedFiles(), nb::keep_alive<2, 1>(),
             "Calls llama-server's handler of METHOD PATH (without --api-prefix) into RESPONSE;\n"
             "the GIL is released. Unknown routes get llama-server's 404, every route a 503\n"
             "while loading. FILES: a multipart form's files (name -> (content, file name,\n"
             "content type)), its text fields being BODY as a JSON object.")
        .def("has_route", &Server::has_route, "method"_a, "path"_a)
        .def_prop_ro("routes", &Server::routes, "(method, path) of every route llama-server serves here, sorted.")
        .def("stop", &Server::stop, "Ends the engine loop and joins its thread.")
        // the parsed llama-server arguments the HTTP layer needs
        .def_prop_ro("hostnames", [](const Server &s) { return s.params().hostnames; })
        .def_prop_ro("port", [](const Server &s) { return s.params().port; })
        .def_prop_ro("api_prefix", [](const Server &s) { return s.params().api_prefix; })
        .def_prop_ro("api_keys", [](const Server &s) { return s.params().api_keys; })
        .def_prop_ro("cors_origins", [](const Server &s) { return s.params().cors_origins; })
        .def_prop_ro("cors_credentials", [](const Server &s) { return s.params().cors_credentials; })
        .def_prop_ro("cors_methods", [](const Server &s) { return s.params().cors_methods; })
        .def_prop_ro("cors_headers", [](const Server &s) { return s.params().cors_headers; })
        .def_prop_ro("cors_origins_explicit", [](const Server &s) { return s.params().cors_origins_explicit; })
        .def_prop_ro("ui", [](const Server &s) { return s.params().ui; })
        .def_prop_ro("public_path", [](const Server &s) { return s.params().public_path; })
        .def_prop_ro("ssl_file_key", [](const Server &s) { return s.params().ssl_file_key; })
        .def_prop_ro("ssl_file_cert", [](const Server &s) { return s.params().ssl_file_cert; })
        .def_prop_ro("n_threads_http", [](const Server &s) { return s.params().n_threads_http; })
        .def_prop_ro("n_parallel", [](const Server &s) { return s.params().n_parallel; })
        .def_prop_ro("timeout_read", [](const Server &s) { return s.params().timeout_read; })
        .def_prop_ro("timeout_write", [](const Server &s) { return s.params().timeout_write; })
        .def_prop_ro("model_path", [](const Server &s) { return s.params().model.path; });

    m.def("set_remote_media", &server_set_remote_media_allowed, "allowed"_a,
          "Whether llama-server's handlers download http(s) media URLs (process-wide; llama.cpp's\n"
          "default is yes, llamanb's front turns it off unless asked; patch 0020).");
    m.def(
        "log_setup", []() { common_init(); },
        "llama-server's logging: llama.cpp's log lines go through common_log with its\n"
        "prefixes and timestamps (the `llamanb serve` process; call once, before Server).");
}
