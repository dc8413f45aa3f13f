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
    m.doc() =
        "Low-level bindings mirroring llama.h (model, vocab, context, batch, sampler).\n\n"
        "What is not llama.h lives in submodules: common (llama.cpp's common/ library),\n"
        "mtmd (libmtmd), server (llama-server), fast (llamanb's loops in C++), ggml, gguf.";
    init_errors(m);
    init_callbacks(m);  // first, so that loading backends logs through llamanb
#ifdef LLAMANB_BACKEND_DL
    int level = log_swap_min_level(GGML_LOG_LEVEL_WARN);  // no "loaded backend" chatter at import
    ggml_backend_load_all_from_path(module_dir().c_str());
    log_swap_min_level(level);
#endif
    llama_backend_init();

    // llama.h's mirror, at the top level (llamanb.llama_h_coverage checks it).
    init_model(m);
    init_vocab(m);
    init_context(m);
    init_batch(m);
    init_batch_ext(m);
    init_sampler(m);
    init_chat_template(m);
    init_adapter(m);

    // The rest, by the library it comes from, as MLX keeps mx.fast and mx.random apart.
    nb::module_ common =
        m.def_submodule("common",
                        "llama.cpp's common/ library: the chat engine (Jinja templates, tool calls, reasoning,\n"
                        "output parsers), JSON schema to grammar, and speculative decoding.");
    nb::module_ mtmd =
        m.def_submodule("mtmd", "libmtmd (llama.cpp's tools/mtmd): images and audio for multimodal models.");
    nb::module_ server = m.def_submodule(
        "server", "llama-server's engine in process, and its converters from the Responses and Anthropic APIs.");
    nb::module_ fast = m.def_submodule(
        "fast",
        "llamanb's own loops in C++ (GIL released): what a Python loop over llama.h would do, per call\n"
        "instead of per token.");
    nb::module_ ggml =
        m.def_submodule("ggml",
                        "ggml tensors: types, (de)quantization, a small CPU compute API; its backends and devices\n"
                        "(ggml-backend.h) and RPC (ggml-rpc.h).");
    nb::module_ gguf = m.def_submodule("gguf", "GGUF files read with ggml's gguf.h, tensor data mmapped.");

    init_backend(m, ggml);
    init_rpc(ggml);
    init_ggml(ggml);
    init_gguf(gguf);
    init_chat(common);
    init_speculative(common);        // speculative*.cpp
    init_mtmd(mtmd);                 // mtmd*.cpp
    init_token_loop(fast);           // token_loop.cpp
    init_sample_and_accept_n(fast);  // speculative_accept.cpp
    init_server_chat(server);        // server_chat.cpp
    init_server(server);             // server.cpp
    init_server_feed(server);        // server_feed.cpp

    m.attr("LLAMA_CPP_COMMIT") = LLAMANB_LLAMA_COMMIT;  // vendor/llama.cpp/pin.json
    m.attr("LLAMA_CPP_BUILD") = LLAMANB_LLAMA_BUILD;    // "b11549"
    m.def(
        "system_info", []() { return std::string(llama_print_system_info()); },
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
