// ggml RPC: serving this machine's devices to other hosts, and connecting models
// to such workers. The RPC backend is reached through the ggml registry (like
// llama.cpp's own tools), so the same code works linked statically or loaded as a
// module in the runtime-dispatch wheel.
#include "rpc.h"
#include "model.h"

#include "ggml-backend.h"

#include <cstdlib>

namespace {

ggml_backend_reg_t rpc_reg() {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    if (!reg) throw LlamaError("this build of llamanb has no ggml RPC backend");
    return reg;
}

template <typename Fn>
Fn *rpc_proc(const char *name) {
    auto *fn = (Fn *) ggml_backend_reg_get_proc_address(rpc_reg(), name);
    if (!fn) throw LlamaError(std::string("the ggml RPC backend lacks ") + name);
    return fn;
}

using add_server_fn = ggml_backend_reg_t(const char *);
using n_failures_fn = uint64_t(const char *);
using start_server_fn = void(const char *, const char *, size_t, size_t, ggml_backend_dev_t *);

// "host:port" with a port in 1..65535; ggml itself would only stoi() it.
void check_endpoint(const std::string &endpoint) {
    size_t colon = endpoint.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < endpoint.size();
    if (ok) {
        char *end = nullptr;
        long port = std::strtol(endpoint.c_str() + colon + 1, &end, 10);
        ok = *end == '\0' && port >= 1 && port <= 65535;
    }
    if (!ok) throw nb::value_error(("RPC endpoint must be 'host:port', got '" + endpoint + "'").c_str());
}

// Serves the local GPUs (or the CPU when there are none); returns only by raising.
void serve(const std::string &endpoint, int n_threads, std::optional<std::string> cache_dir) {
    check_endpoint(endpoint);
    if (n_threads < 1) throw nb::value_error("n_threads must be >= 1");
    auto *start_server = rpc_proc<start_server_fn>("ggml_backend_rpc_start_server");
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    std::vector<ggml_backend_dev_t> devs;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        auto type = ggml_backend_dev_type(d);
        bool remote = std::string(ggml_backend_reg_name(ggml_backend_dev_backend_reg(d))) == "RPC";
        if ((type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) && !remote)
            devs.push_back(d);
    }
    if (devs.empty() && cpu) devs.push_back(cpu);  // no accelerator: serve the CPU
    if (devs.empty()) throw LlamaError("no device to serve");
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        start_server(endpoint.c_str(), cache_dir ? cache_dir->c_str() : nullptr, (size_t) n_threads, devs.size(),
                     devs.data());
    }
    // It only returns when it could not serve (address in use, bad host, ...).
    throw RpcConnectionError(
        with_log_reason("could not serve RPC on " + endpoint + " (address in use or not a local address?)"));
}

}  // namespace

std::vector<ggml_backend_dev_t> rpc_devices(const std::string &endpoint) {
    check_endpoint(endpoint);
    auto *add_server = rpc_proc<add_server_fn>("ggml_backend_rpc_add_server");
    ggml_backend_reg_t reg;
    {
        nb::gil_scoped_release nogil;
        clear_last_error_log();
        reg = add_server(endpoint.c_str());
    }
    if (!reg || ggml_backend_reg_dev_count(reg) == 0)
        throw RpcConnectionError(with_log_reason("could not connect to the RPC server at " + endpoint +
                                                 " (is `llamanb rpc-server` running there?)"));
    std::vector<ggml_backend_dev_t> devs;
    for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) devs.push_back(ggml_backend_reg_dev_get(reg, i));
    return devs;
}

uint64_t rpc_n_failures(const std::string &endpoint) {
    // Looked up once: it runs after every decode of a model with RPC layers.
    static n_failures_fn *n_failures = rpc_proc<n_failures_fn>("ggml_backend_rpc_n_failures");
    return n_failures(endpoint.c_str());
}

void Model::check_rpc() const {
    for (auto &[endpoint, failures] : rpc_endpoints)
        if (rpc_n_failures(endpoint) != failures)
            throw RpcConnectionError("lost the connection to the RPC server at " + endpoint +
                                     " (the worker crashed or was stopped); this model's layers on it are "
                                     "gone: close it and load it again");
}

void init_rpc(nb::module_ &m) {
    m.def("rpc_serve", &serve, "endpoint"_a, "n_threads"_a, "cache_dir"_a = nb::none(),
          "Serve this machine's GPUs (or its CPU when it has none) to llamanb/llama.cpp clients\n"
          "over ggml RPC on endpoint 'host:port'. Blocks for good (GIL released) and raises\n"
          "RpcConnectionError when it cannot listen. The protocol is unauthenticated and\n"
          "unencrypted: serve on loopback or a trusted network only.");
    m.def(
        "rpc_devices",
        [](const std::string &endpoint) {
            std::vector<std::string> names;
            for (ggml_backend_dev_t d : rpc_devices(endpoint)) names.emplace_back(ggml_backend_dev_name(d));
            return names;
        },
        "endpoint"_a,
        "Connect to the RPC server at 'host:port' and list its devices' names\n"
        "(raises RpcConnectionError when nothing answers there).");
}
