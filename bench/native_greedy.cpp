// Native reference for bench/: a greedy loop over llama.h with the same shape as
// llamanb's (sample, piece, decode one token), timed in C++.
//   native_greedy MODEL N_TOKENS N_THREADS PROMPT
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL N_TOKENS N_THREADS PROMPT\n", argv[0]);
        return 2;
    }
    const int n_gen = atoi(argv[2]);
    const int n_threads = atoi(argv[3]);
    const std::string prompt = argv[4];
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    const llama_vocab *vocab = llama_model_get_vocab(model);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = cp.n_threads_batch = n_threads;
    llama_context *ctx = llama_init_from_model(model, cp);

    std::vector<llama_token> toks(prompt.size() + 8);
    int n = llama_tokenize(vocab, prompt.c_str(), (int) prompt.size(), toks.data(), (int) toks.size(), true, true);
    toks.resize(n);
    llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    auto t0 = std::chrono::steady_clock::now();
    llama_decode(ctx, llama_batch_get_one(toks.data(), (int) toks.size()));
    auto t1 = std::chrono::steady_clock::now();
    int produced = 0;
    char piece[256];
    for (; produced < n_gen; ++produced) {
        llama_token t = llama_sampler_sample(smpl, ctx, -1);
        if (llama_vocab_is_eog(vocab, t)) break;
        llama_token_to_piece(vocab, t, piece, sizeof piece, 0, false);
        if (llama_decode(ctx, llama_batch_get_one(&t, 1))) break;
    }
    auto t2 = std::chrono::steady_clock::now();
    double pp = std::chrono::duration<double>(t1 - t0).count();
    double tg = std::chrono::duration<double>(t2 - t1).count();
    printf("{\"prompt_tokens\": %d, \"prompt_s\": %.6f, \"gen_tokens\": %d, \"gen_s\": %.6f}\n", n, pp, produced, tg);
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
