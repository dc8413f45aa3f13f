// llamanb.core: the nanobind module over llama.h. Each area lives in its own
// file and is initialised here in dependency order.
#include "callbacks.h"  // log_swap_min_level

#ifdef LLAMANB_BACKEND_DL
#include "ggml-backend.h"

#include <dlfcn.h>

// The ggml backend libraries ship next to this module.
static std::string module_dir() {
    Dl_info info{};
    if (!dladdr((void *) &module_dir, &info) || !info.dli_fname) return ".";
    std::string path(info.dli_fname);
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}
#endif

#ifndef LLAMANB_LLAMA_COMMIT
#define LLAMANB_LLAMA_COMMIT "unknown"
#endif
#ifndef LLAMANB_LLAMA_BUILD
#define LLAMANB_LLAMA_BUILD "unknown"
#endif

NB_MODULE(core, m) {
    m.doc() = "Low-level bindings mirroring llama.h (model, vocab, context, batch, sampler).";
    init_errors(m);
    init_callbacks(m);  // first, so that loading backends logs through llamanb
#ifdef LLAMANB_BACKEND_DL
    int level = log_swap_min_level(GGML_LOG_LEVEL_WARN);  // no "loaded backend" chatter at import
    ggml_backend_load_all_from_path(module_dir().c_str());
    log_swap_min_level(level);
#endif
    llama_backend_init();
    init_model(m);
    init_vocab(m);
    init_context(m);
    init_batch(m);
    init_batch_ext(m);
    init_sampler(m);
    init_chat(m);
    init_adapter(m);
    init_backend(m);
    init_rpc(m);
    init_ggml(m);
    init_gguf(m);
    init_mtmd(m);
    init_speculative(m);  // speculative.cpp
    init_token_loop(m);   // token_loop.cpp
    init_server_chat(m);  // server_chat.cpp
    init_server(m);       // server.cpp

    m.attr("LLAMA_CPP_COMMIT") = LLAMANB_LLAMA_COMMIT;  // vendor/llama.cpp/pin.json
    m.attr("LLAMA_CPP_BUILD") = LLAMANB_LLAMA_BUILD;    // "b11549"
    m.def("system_info", []() { return std::string(llama_print_system_info()); },
          "llama.cpp's build and CPU feature summary.");
    m.def("supports_mmap", &llama_supports_mmap, "Whether mmap is available.");
    m.def("supports_mlock", &llama_supports_mlock, "Whether mlock is available.");
    m.def("supports_gpu_offload", &llama_supports_gpu_offload, "Whether a GPU backend is compiled in.");
    m.def("supports_rpc", &llama_supports_rpc, "Whether the RPC backend is compiled in.");
    m.def("max_devices", &llama_max_devices, "Most devices a model can use.");
    m.def("max_parallel_sequences", &llama_max_parallel_sequences, "Most sequences a context can hold.");
    m.def("time_us", &llama_time_us, "llama.cpp's clock in microseconds.");
    m.def("version", []() { return std::string(llama_version()); }, "llama.cpp's version string.");
}
