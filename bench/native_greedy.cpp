// Native reference for bench/: the same work as llamanb's benchmark worker, done over
// llama.h in C++ with no Python in the loop. It is built by bench/native.py against the
// very static libraries linked into llamanb.core, so the only difference measured is
// the binding layer.
//
//   native_greedy MODEL N_CTX N_BATCH N_THREADS PROMPT_FILE PP_TOKENS_FILE CORPUS_FILE
//
// It loads once, prints {"ready": ...}, then answers one JSON line per command read
// from stdin (so bench/run.py can interleave it with the Python workers):
//   gen N   greedy generation of N tokens from PROMPT_FILE, timed like Llama.generate:
//           tokenize (special tokens parsed) + clear memory + prefill + loop of
//           (sample, is_eog, piece, decode one token); also the us per generated token
//           spent outside llama.cpp's decode (wall minus the context's perf eval times),
//           and those timings (t_eval_ms, t_p_eval_ms, n_eval)
//   chain N the same with llamanb's default chain (top-k 40, top-p 0.95, min-p 0.05,
//           temp 0.8, dist seed 1) through llama_sampler_sample
//   outside N B   gen N and chain N: {"greedy": us, "chain": us} outside decode per token
//           (B, the batch rows' tokens, is llamanb's; a single sequence here)
//   pp      decode the token ids of PP_TOKENS_FILE as one batch after clearing memory;
//           only the decode (and synchronize) is timed, as ctx.decode_tokens is
//   load    load the model and create a context with the same params, then free them
//   tok     tokenize CORPUS_FILE in one llama_tokenize call (no special-token parsing)
//   detok   llama_detokenize the corpus' token ids in one call
//   quit
#include "ggml-cpu.h"
#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

void quiet(ggml_log_level, const char *, void *) {}

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string read_file(const char *path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::vector<llama_token> read_tokens(const char *path) {
    std::ifstream f(path);
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    std::vector<llama_token> out;
    llama_token t;
    while (f >> t) out.push_back(t);
    return out;
}

struct Settings {
    int n_ctx;
    int n_batch;
    int n_threads;
};

// "no-repack" as the 8th argument: weights stay in the file's layout (no AMX /
// CPU_REPACK buffers), as with llamanb's repack=False.
bool g_repack = true;

llama_model_params model_params() {
    llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = g_repack;
    return mp;
}

// The same params llamanb.Llama sets: n_ctx, n_batch, n_ubatch = min(n_batch, default),
// threads for both single-token and batch decoding; everything else llama.cpp's default.
llama_context_params context_params(const Settings &s) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) s.n_ctx;
    cp.n_batch = (uint32_t) s.n_batch;
    if ((uint32_t) s.n_batch < cp.n_ubatch) cp.n_ubatch = (uint32_t) s.n_batch;
    cp.n_threads = cp.n_threads_batch = s.n_threads;
    cp.no_perf = false;  // eval times for the outside-decode figure (llamanb.Llama keeps them too)
    return cp;
}

// The pool llamanb's Context runs its decodes on (cpp/backend.cpp: one pool for both
// thread counts, threads asleep between graphs); llama.cpp's tools attach one the same way.
ggml_threadpool *attach_pool(llama_context *ctx, int n_threads) {
    ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads);
    tpp.poll = 0;
    ggml_threadpool *tp = ggml_threadpool_new(&tpp);
    llama_attach_threadpool(ctx, tp, tp);
    return tp;
}

// One pass with a buffer of one token per byte (plus specials), as llamanb.core does.
std::vector<llama_token> tokenize(const llama_vocab *vocab, const std::string &text, bool parse_special) {
    std::vector<llama_token> toks(text.size() + 4);
    int n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), toks.data(), (int32_t) toks.size(),
                           /*add_special*/ true, parse_special);
    if (n < 0) {
        toks.resize((size_t) -n);
        n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), toks.data(), (int32_t) toks.size(), true,
                           parse_special);
    }
    toks.resize((size_t) (n < 0 ? 0 : n));
    return toks;
}

std::string detokenize(const llama_vocab *vocab, const std::vector<llama_token> &toks, size_t size_hint) {
    std::string out(size_hint + 16, '\0');
    int n = llama_detokenize(vocab, toks.data(), (int32_t) toks.size(), out.data(), (int32_t) out.size(), false, false);
    if (n < 0) {
        out.resize((size_t) -n);
        n = llama_detokenize(vocab, toks.data(), (int32_t) toks.size(), out.data(), (int32_t) out.size(), false, false);
    }
    out.resize((size_t) (n < 0 ? 0 : n));
    return out;
}

llama_sampler *new_chain(bool default_chain) {
    llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (!default_chain) {
        llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
        return smpl;
    }
    llama_sampler_chain_add(smpl, llama_sampler_init_top_k(40));
    llama_sampler_chain_add(smpl, llama_sampler_init_top_p(0.95f, 1));
    llama_sampler_chain_add(smpl, llama_sampler_init_min_p(0.05f, 1));
    llama_sampler_chain_add(smpl, llama_sampler_init_temp(0.8f));
    llama_sampler_chain_add(smpl, llama_sampler_init_dist(1));
    return smpl;
}

struct Gen {
    std::vector<llama_token> ids;
    double seconds = 0, outside_us = 0;
    size_t prompt_tokens = 0;
    llama_perf_context_data perf{};  // llama.cpp's decode timings (bench/gpu.py reads them)
};

Gen generate(llama_context *ctx, const llama_vocab *vocab, const std::string &prompt, int n_gen, bool default_chain) {
    std::vector<llama_token> produced_ids;
    produced_ids.reserve((size_t) n_gen);
    std::string text;
    char piece[256];
    llama_perf_context_reset(ctx);
    auto t0 = clock_type::now();
    std::vector<llama_token> toks = tokenize(vocab, prompt, /*parse_special*/ true);
    const int n_ctx = (int) llama_n_ctx(ctx);
    const int n_batch = (int) llama_n_batch(ctx);
    llama_memory_clear(llama_get_memory(ctx), true);
    for (size_t start = 0; start < toks.size(); start += (size_t) n_batch) {
        int n = (int) std::min(toks.size() - start, (size_t) n_batch);
        if (llama_decode(ctx, llama_batch_get_one(toks.data() + start, n))) {
            fprintf(stderr, "prefill decode failed\n");
            exit(1);
        }
    }
    llama_sampler *smpl = new_chain(default_chain);
    int n_past = (int) toks.size();
    for (int i = 0; i < n_gen; ++i) {
        llama_token t = llama_sampler_sample(smpl, ctx, -1);
        if (llama_vocab_is_eog(vocab, t)) break;
        produced_ids.push_back(t);
        int len = llama_token_to_piece(vocab, t, piece, sizeof piece, 0, false);
        if (len > 0) text.append(piece, (size_t) len);  // llamanb builds its text too
        if (n_past >= n_ctx) break;
        if (llama_decode(ctx, llama_batch_get_one(&t, 1))) {
            fprintf(stderr, "decode failed\n");
            exit(1);
        }
        ++n_past;
    }
    llama_sampler_free(smpl);
    // The last decode's eval time is added to the perf counters only at a synchronize;
    // without one it would also start the next run's prompt timer early.
    llama_synchronize(ctx);
    double s = seconds_since(t0);
    llama_perf_context_data perf = llama_perf_context(ctx);
    Gen g;
    g.seconds = s;
    g.outside_us = (s - (perf.t_eval_ms + perf.t_p_eval_ms) / 1e3) * 1e6 / (double) std::max<size_t>(1, produced_ids.size());
    g.prompt_tokens = toks.size();
    g.perf = perf;
    g.ids = std::move(produced_ids);
    return g;
}

void run_gen(llama_context *ctx, const llama_vocab *vocab, const std::string &prompt, int n_gen, bool default_chain) {
    Gen g = generate(ctx, vocab, prompt, n_gen, default_chain);
    printf("{\"tokens\": %zu, \"seconds\": %.9f, \"outside_us\": %.3f, \"prompt_tokens\": %zu, "
           "\"t_eval_ms\": %.6f, \"t_p_eval_ms\": %.6f, \"n_eval\": %d, \"ids\": [",
           g.ids.size(), g.seconds, g.outside_us, g.prompt_tokens, g.perf.t_eval_ms, g.perf.t_p_eval_ms, g.perf.n_eval);
    for (size_t i = 0; i < g.ids.size(); ++i) printf(i ? ", %d" : "%d", g.ids[i]);
    printf("]}\n");
}

void run_outside(llama_context *ctx, const llama_vocab *vocab, const std::string &prompt, int n_gen) {
    double greedy = generate(ctx, vocab, prompt, n_gen, false).outside_us;
    double chain = generate(ctx, vocab, prompt, n_gen, true).outside_us;
    printf("{\"greedy\": %.3f, \"chain\": %.3f}\n", greedy, chain);
}

void run_pp(llama_context *ctx, std::vector<llama_token> &toks) {
    if ((int) toks.size() > (int) llama_n_batch(ctx)) {
        fprintf(stderr, "pp prompt (%zu tokens) exceeds n_batch\n", toks.size());
        exit(1);
    }
    llama_memory_clear(llama_get_memory(ctx), true);
    auto t0 = clock_type::now();
    if (llama_decode(ctx, llama_batch_get_one(toks.data(), (int32_t) toks.size()))) {
        fprintf(stderr, "pp decode failed\n");
        exit(1);
    }
    llama_synchronize(ctx);
    double s = seconds_since(t0);
    printf("{\"tokens\": %zu, \"seconds\": %.9f}\n", toks.size(), s);
}

void run_tok(const llama_vocab *vocab, const std::string &corpus) {
    auto t0 = clock_type::now();
    std::vector<llama_token> toks = tokenize(vocab, corpus, false);
    double s = seconds_since(t0);
    printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.9f}\n", corpus.size(), toks.size(), s);
}

void run_detok(const llama_vocab *vocab, const std::string &corpus, const std::vector<llama_token> &corpus_ids) {
    auto t0 = clock_type::now();
    std::string text = detokenize(vocab, corpus_ids, corpus.size());
    double s = seconds_since(t0);
    printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.9f, \"roundtrip\": %s}\n", corpus.size(),
           corpus_ids.size(), s, text == corpus ? "true" : "false");
}

void run_load(const char *model_path, const Settings &settings) {
    auto t0 = clock_type::now();
    llama_model *model = llama_model_load_from_file(model_path, model_params());
    if (!model) {
        fprintf(stderr, "load failed\n");
        exit(1);
    }
    llama_context *ctx = llama_init_from_model(model, context_params(settings));
    ggml_threadpool *pool = attach_pool(ctx, settings.n_threads);
    double s = seconds_since(t0);
    llama_free(ctx);
    ggml_threadpool_free(pool);
    llama_model_free(model);
    printf("{\"seconds\": %.9f}\n", s);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 8 && !(argc == 9 && std::string(argv[8]) == "no-repack")) {
        fprintf(stderr, "usage: %s MODEL N_CTX N_BATCH N_THREADS PROMPT_FILE PP_TOKENS_FILE CORPUS_FILE [no-repack]\n", argv[0]);
        return 2;
    }
    g_repack = argc == 8;
    const char *model_path = argv[1];
    const Settings settings{atoi(argv[2]), atoi(argv[3]), atoi(argv[4])};
    const std::string prompt = read_file(argv[5]);
    std::vector<llama_token> pp_tokens = read_tokens(argv[6]);
    const std::string corpus = read_file(argv[7]);

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model *model = llama_model_load_from_file(model_path, model_params());
    if (!model) {
        fprintf(stderr, "cannot load %s\n", model_path);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    llama_context *ctx = llama_init_from_model(model, context_params(settings));
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    ggml_threadpool *pool = attach_pool(ctx, settings.n_threads);
    const std::vector<llama_token> corpus_ids = tokenize(vocab, corpus, false);
    printf("{\"ready\": true, \"system_info\": \"%s\"}\n", llama_print_system_info());
    fflush(stdout);

    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream cmd(line);
        std::string name;
        cmd >> name;
        if (name == "gen") {
            int n = 0;
            cmd >> n;
            run_gen(ctx, vocab, prompt, n, false);
        } else if (name == "outside") {
            int n = 0;
            cmd >> n;
            run_outside(ctx, vocab, prompt, n);
        } else if (name == "chain") {
            int n = 0;
            cmd >> n;
            run_gen(ctx, vocab, prompt, n, true);
        } else if (name == "pp") {
            run_pp(ctx, pp_tokens);
        } else if (name == "tok") {
            run_tok(vocab, corpus);
        } else if (name == "detok") {
            run_detok(vocab, corpus, corpus_ids);
        } else if (name == "load") {
            run_load(model_path, settings);
        } else if (name == "quit") {
            break;
        } else {
            printf("{\"error\": \"unknown command\"}\n");
        }
        fflush(stdout);
    }
    llama_free(ctx);
    ggml_threadpool_free(pool);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
