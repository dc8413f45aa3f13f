// llama_sampler: the built-in samplers and chains. A chain owns what is added
// to it; the Python handle of an added sampler is then spent.
#include "common.h"

#include <nanobind/stl/pair.h>

#include <cmath>

namespace {

struct Sampler {
    llama_sampler *ptr = nullptr;
    std::string spent_reason;  // why ptr is null
    // Models whose vocab a (sub)sampler references: kept alive and in use.
    std::vector<std::pair<nb::object, Model *>> models;
    std::mutex mutex;  // one sampling at a time per sampler

    llama_sampler *get() const {
        if (!ptr) throw ClosedError(spent_reason.empty() ? "Sampler is closed" : spent_reason);
        return ptr;
    }
    void free_now() {
        if (ptr) { llama_sampler_free(ptr); ptr = nullptr; }
        for (auto &mm : models) mm.second->release();
        models.clear();
    }
    ~Sampler() { free_now(); }
};

Sampler *wrap(llama_sampler *p, const char *what) {
    if (!p) throw nb::value_error(with_log_reason(std::string("could not create ") + what + " sampler").c_str());
    auto *s = new Sampler();
    s->ptr = p;
    return s;
}

Sampler *wrap_with_vocab(const Vocab &v, llama_sampler *p, const char *what) {
    Sampler *s = wrap(p, what);
    v.model->acquire();
    s->models.emplace_back(v.owner, v.model);
    return s;
}

void check_prob(float p, const char *name) {
    if (!(p >= 0.0f && p <= 1.0f))
        throw nb::value_error((std::string(name) + " must be in [0, 1]").c_str());
}

std::vector<const char *> c_strings(const std::vector<std::string> &v) {
    std::vector<const char *> out;
    out.reserve(v.size());
    for (auto &s : v) out.push_back(s.c_str());
    return out;
}

llama_token sample(Sampler &s, Context &c, int32_t idx) {
    nb::gil_scoped_release nogil;
    std::lock_guard<std::mutex> sg(s.mutex);
    std::lock_guard<std::mutex> cg(c.mutex);
    if (!c.ptr || c.close_requested) throw ClosedError("Context is closed");
    llama_sampler *smpl = s.get();
    clear_last_error_log();
    // llama_sampler_sample asserts on a missing output: check first.
    if (llama_get_sampled_token_ith(c.ptr, idx) == LLAMA_TOKEN_NULL && !llama_get_sampled_logits_ith(c.ptr, idx) &&
        !llama_get_logits_ith(c.ptr, idx))
        throw nb::index_error(with_log_reason("no logits at output index " + std::to_string(idx) +
                                              " (decode a batch that requests them first)").c_str());
    return llama_sampler_sample(smpl, c.ptr, idx);
}

}  // namespace

#define SAMPLER(name, args, body, doc) \
    def_static(name, [] args { return body; }, doc, nb::rv_policy::take_ownership)

void init_sampler(nb::module_ &m) {
    m.attr("DEFAULT_SEED") = LLAMA_DEFAULT_SEED;

    nb::class_<Sampler>(m, "Sampler",
        "A llama_sampler. Build with the static constructors; combine with chain().add().")
        .def_static("chain", [](bool no_perf) {
                llama_sampler_chain_params p = llama_sampler_chain_default_params();
                p.no_perf = no_perf;
                return wrap(llama_sampler_chain_init(p), "chain");
            }, "no_perf"_a = true, nb::rv_policy::take_ownership, "An empty sampler chain.")
        .def_static("greedy", []() { return wrap(llama_sampler_init_greedy(), "greedy"); },
                    nb::rv_policy::take_ownership, "Pick the most likely token.")
        .def_static("dist", [](uint32_t seed) { return wrap(llama_sampler_init_dist(seed), "dist"); },
                    "seed"_a = LLAMA_DEFAULT_SEED, nb::rv_policy::take_ownership,
                    "Sample from the distribution (DEFAULT_SEED: a random seed).")
        .def_static("top_k", [](int32_t k) { return wrap(llama_sampler_init_top_k(k), "top_k"); },
                    "k"_a, nb::rv_policy::take_ownership, "Keep the k most likely tokens (k <= 0: no-op).")
        .def_static("top_p", [](float p, size_t min_keep) { check_prob(p, "p"); return wrap(llama_sampler_init_top_p(p, min_keep), "top_p"); },
                    "p"_a, "min_keep"_a = 1, nb::rv_policy::take_ownership, "Nucleus sampling.")
        .def_static("min_p", [](float p, size_t min_keep) { check_prob(p, "p"); return wrap(llama_sampler_init_min_p(p, min_keep), "min_p"); },
                    "p"_a, "min_keep"_a = 1, nb::rv_policy::take_ownership, "Drop tokens below p times the top probability.")
        .def_static("typical", [](float p, size_t min_keep) { check_prob(p, "p"); return wrap(llama_sampler_init_typical(p, min_keep), "typical"); },
                    "p"_a, "min_keep"_a = 1, nb::rv_policy::take_ownership, "Locally typical sampling.")
        .def_static("temp", [](float t) { return wrap(llama_sampler_init_temp(t), "temp"); },
                    "t"_a, nb::rv_policy::take_ownership, "Divide logits by t (t <= 0: keep only the top token).")
        .def_static("temp_ext", [](float t, float delta, float exponent) { return wrap(llama_sampler_init_temp_ext(t, delta, exponent), "temp_ext"); },
                    "t"_a, "delta"_a, "exponent"_a, nb::rv_policy::take_ownership, "Dynamic temperature.")
        .def_static("xtc", [](float p, float t, size_t min_keep, uint32_t seed) {
                check_prob(p, "p");
                return wrap(llama_sampler_init_xtc(p, t, min_keep, seed), "xtc");
            }, "p"_a, "t"_a, "min_keep"_a = 1, "seed"_a = LLAMA_DEFAULT_SEED, nb::rv_policy::take_ownership,
            "Exclude-top-choices sampling.")
        .def_static("top_n_sigma", [](float n) { return wrap(llama_sampler_init_top_n_sigma(n), "top_n_sigma"); },
                    "n"_a, nb::rv_policy::take_ownership, "Keep tokens within n standard deviations of the top logit.")
        .def_static("mirostat", [](const Vocab &v, uint32_t seed, float tau, float eta, int32_t mm) {
                return wrap(llama_sampler_init_mirostat(v.n_tokens(), seed, tau, eta, mm), "mirostat");
            }, "vocab"_a, "seed"_a, "tau"_a, "eta"_a, "m"_a = 100, nb::rv_policy::take_ownership, "Mirostat 1.0.")
        .def_static("mirostat_v2", [](uint32_t seed, float tau, float eta) {
                return wrap(llama_sampler_init_mirostat_v2(seed, tau, eta), "mirostat_v2");
            }, "seed"_a, "tau"_a, "eta"_a, nb::rv_policy::take_ownership, "Mirostat 2.0.")
        .def_static("grammar", [](const Vocab &v, const std::string &grammar, const std::string &root) {
                clear_last_error_log();
                return wrap_with_vocab(v, llama_sampler_init_grammar(v.get(), grammar.c_str(), root.c_str()), "grammar");
            }, "vocab"_a, "grammar"_a, "root"_a = "root", nb::rv_policy::take_ownership,
            "Constrain output to a GBNF grammar. Raises ValueError if it does not parse.")
        .def_static("grammar_lazy_patterns", [](const Vocab &v, const std::string &grammar, const std::string &root,
                                                const std::vector<std::string> &patterns, const std::vector<llama_token> &tokens) {
                for (auto t : tokens) v.check_token(t);
                auto pats = c_strings(patterns);
                clear_last_error_log();
                return wrap_with_vocab(v, llama_sampler_init_grammar_lazy_patterns(v.get(), grammar.c_str(), root.c_str(),
                    pats.data(), pats.size(), tokens.data(), tokens.size()), "lazy grammar");
            }, "vocab"_a, "grammar"_a, "root"_a, "trigger_patterns"_a, "trigger_tokens"_a, nb::rv_policy::take_ownership,
            "A grammar that applies only after a trigger pattern or token appears.")
        .def_static("penalties", [](int32_t last_n, float repeat, float freq, float present) {
                if (!(repeat > 0.0f)) throw nb::value_error("penalty_repeat must be > 0");
                if (!std::isfinite(freq) || !std::isfinite(present)) throw nb::value_error("penalties must be finite");
                if (last_n < -1) throw nb::value_error("penalty_last_n must be >= -1");
                return wrap(llama_sampler_init_penalties(0, last_n, repeat, freq, present), "penalties");
            }, "penalty_last_n"_a = 64, "penalty_repeat"_a = 1.0f, "penalty_freq"_a = 0.0f, "penalty_present"_a = 0.0f,
            nb::rv_policy::take_ownership, "Repetition, frequency and presence penalties over the last n tokens.")
        .def_static("dry", [](const Vocab &v, float multiplier, float base, int32_t allowed_length, int32_t last_n,
                              const std::vector<std::string> &breakers) {
                auto b = c_strings(breakers);
                return wrap_with_vocab(v, llama_sampler_init_dry(v.get(), multiplier, base, allowed_length, last_n, b.data(), b.size()), "dry");
            }, "vocab"_a, "multiplier"_a = 0.0f, "base"_a = 1.75f, "allowed_length"_a = 2, "penalty_last_n"_a = -1,
            "seq_breakers"_a = std::vector<std::string>{"\n", ":", "\"", "*"}, nb::rv_policy::take_ownership,
            "DRY (don't repeat yourself) penalty.")
        .def_static("adaptive_p", [](float target, float decay, uint32_t seed) {
                return wrap(llama_sampler_init_adaptive_p(target, decay, seed), "adaptive_p");
            }, "target"_a, "decay"_a, "seed"_a = LLAMA_DEFAULT_SEED, nb::rv_policy::take_ownership,
            "Select tokens near a target probability over time.")
        .def_static("logit_bias", [](const Vocab &v, const std::vector<std::pair<llama_token, float>> &bias) {
                std::vector<llama_logit_bias> b;
                for (auto &[tok, val] : bias) { v.check_token(tok); b.push_back({tok, val}); }
                return wrap(llama_sampler_init_logit_bias(v.n_tokens(), (int32_t) b.size(), b.data()), "logit_bias");
            }, "vocab"_a, "bias"_a, nb::rv_policy::take_ownership, "Add a bias to the logits of some tokens.")
        .def_static("infill", [](const Vocab &v) { return wrap_with_vocab(v, llama_sampler_init_infill(v.get()), "infill"); },
                    "vocab"_a, nb::rv_policy::take_ownership, "Fill-in-the-middle post-processing.")
        .def("add", [](Sampler &chain, Sampler &s) {
                llama_sampler *cp = chain.get();
                if (std::string(llama_sampler_name(cp)) != "chain") throw nb::type_error("add() needs a chain sampler");
                if (&chain == &s) throw nb::value_error("cannot add a chain to itself");
                llama_sampler_chain_add(cp, s.get());
                s.ptr = nullptr;
                s.spent_reason = "this Sampler was added to a chain, which now owns it";
                for (auto &mm : s.models) chain.models.push_back(std::move(mm));
                s.models.clear();
            }, "sampler"_a, "Append a sampler to this chain; the chain takes ownership of it.")
        .def_prop_ro("n", [](Sampler &s) {
                llama_sampler *p = s.get();
                if (std::string(llama_sampler_name(p)) != "chain") throw nb::type_error("not a chain sampler");
                return llama_sampler_chain_n(p);
            }, "Number of samplers in this chain.")
        .def_prop_ro("name", [](Sampler &s) { return std::string(llama_sampler_name(s.get())); }, "The sampler's name.")
        .def_prop_ro("seed", [](Sampler &s) { return llama_sampler_get_seed(s.get()); }, "Seed in use (DEFAULT_SEED if none).")
        .def("accept", [](Sampler &s, llama_token t) {
                std::lock_guard<std::mutex> g(s.mutex);
                llama_sampler_accept(s.get(), t);
            }, "token"_a, "Update the sampler's state with a token (e.g. prompt tokens for penalties).")
        .def("reset", [](Sampler &s) { std::lock_guard<std::mutex> g(s.mutex); llama_sampler_reset(s.get()); },
             "Reset the sampler's state (RNG, history, grammar).")
        .def("clone", [](Sampler &s) {
                Sampler *c = wrap(llama_sampler_clone(s.get()), "clone of");
                for (auto &mm : s.models) { mm.second->acquire(); c->models.push_back(mm); }
                return c;
            }, nb::rv_policy::take_ownership, "An independent copy with the same state.")
        .def("sample", &sample, "ctx"_a, "idx"_a = -1,
             "Sample (and accept) a token from output idx of the last decode. GIL released.")
        .def("close", &Sampler::free_now, "Free the sampler. Idempotent.")
        .def("perf", [](Sampler &s) {
                llama_perf_sampler_data d = llama_perf_sampler(s.get());
                return std::make_pair(d.t_sample_ms, d.n_sample);
            }, "(t_sample_ms, n_sample) of a chain.")
        .def("__repr__", [](Sampler &s) {
                if (!s.ptr) return std::string("<llamanb.core.Sampler closed>");
                return "<llamanb.core.Sampler " + std::string(llama_sampler_name(s.ptr)) + ">";
            });
}
