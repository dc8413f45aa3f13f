// llama_sampler: the built-in samplers and chains. A chain owns what is added
// to it; the Python handle of an added sampler is then spent. Sampling a token with
// one is sampling.cpp's.
#include "sampler.h"
#include "sampling.h"

#include <nanobind/stl/pair.h>

#include <cmath>

namespace {

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
    if (!(p >= 0.0f && p <= 1.0f)) throw nb::value_error((std::string(name) + " must be in [0, 1]").c_str());
}

std::vector<const char *> c_strings(const std::vector<std::string> &v) {
    std::vector<const char *> out;
    out.reserve(v.size());
    for (auto &s : v) out.push_back(s.c_str());
    return out;
}

// llama_sampler_copy asserts that both samplers have the same type (and, for
// chains, the same structure): check first.
bool same_shape(llama_sampler *a, llama_sampler *b) {
    if (a->iface != b->iface) return false;
    if (std::string(llama_sampler_name(a)) != "chain") return true;
    int32_t n = llama_sampler_chain_n(a);
    if (n != llama_sampler_chain_n(b)) return false;
    for (int32_t i = 0; i < n; ++i)
        if (!same_shape(llama_sampler_chain_get(a, i), llama_sampler_chain_get(b, i))) return false;
    return true;
}

void chain_add(Sampler &chain, Sampler &s) {
    if (&chain == &s) throw nb::value_error("cannot add a chain to itself");
    if (s.chain_owner.is_valid()) throw nb::value_error("this Sampler already belongs to a chain");
    llama_sampler *child = s.get();
    chain.locked([&](llama_sampler *cp) {
        if (!is_chain(cp)) throw nb::type_error("add() needs a chain sampler");
        std::lock_guard<CallMutex> lock(s.mutex);
        llama_sampler_chain_add(cp, child);
        s.ptr = nullptr;
        s.version += 1;
        chain.version += 1;
    });
    s.spent_reason = "this Sampler was added to a chain, which now owns it";
    for (auto &mm : s.models) chain.models.push_back(std::move(mm));
    s.models.clear();
}

Sampler *chain_get(nb::object self, int32_t i) {
    Sampler &chain = nb::cast<Sampler &>(self);
    llama_sampler *el = chain.locked([&](llama_sampler *cp) {
        if (!is_chain(cp)) throw nb::type_error("get() needs a chain sampler");
        if (i < 0 || i >= llama_sampler_chain_n(cp)) throw nb::index_error("sampler index out of range");
        return llama_sampler_chain_get(cp, i);
    });
    auto *view = new Sampler();
    view->ptr = el;
    view->chain_owner = self;
    view->chain_version = chain.version;
    return view;
}

Sampler *chain_remove(Sampler &chain, int32_t i) {
    llama_sampler *el = chain.locked([&](llama_sampler *cp) {
        if (!is_chain(cp)) throw nb::type_error("remove() needs a chain sampler");
        if (i < 0 || i >= llama_sampler_chain_n(cp)) throw nb::index_error("sampler index out of range");
        chain.version += 1;
        return llama_sampler_chain_remove(cp, i);
    });
    Sampler *owned = wrap(el, "removed");
    // The vocab users stay with the chain (we cannot tell which element used them).
    for (auto &mm : chain.models) {
        mm.second->acquire();
        owned->models.push_back(mm);
    }
    return owned;
}

void apply_sampler(Sampler &s, TokenDataArray &arr) {
    size_t n = arr.ids.shape(0);
    if (arr.logits.shape(0) != n || arr.p.shape(0) != n)
        throw nb::value_error("ids, logits and p must have the same length");
    std::vector<llama_token_data> cur(n);
    auto ids = arr.ids.view();
    auto logits = arr.logits.view();
    auto probs = arr.p.view();
    for (size_t i = 0; i < n; ++i) cur[i] = llama_token_data{ids(i), logits(i), probs(i)};
    llama_token_data_array cur_p{cur.data(), cur.size(), arr.selected, arr.sorted};
    s.locked([&](llama_sampler *p) { llama_sampler_apply(p, &cur_p); });
    raise_py_sampler_error();
    arr = to_python(cur_p);
}

}  // namespace

bool is_chain(llama_sampler *s) { return llama_sampler_chain_get(s, -1) == s; }

void set_sampler(Context &c, llama_seq_id seq, Sampler &chain) {
    llama_sampler *cp = chain.get();
    if (!is_chain(cp)) throw nb::type_error("set_sampler() needs a sampler chain");
    bool ok = c.locked([&](llama_context *ctx) {
        if (seq < 0 || (uint32_t) seq >= llama_n_seq_max(ctx)) throw nb::index_error("sequence id out of range");
        clear_last_error_log();
        return llama_set_sampler(ctx, seq, cp);
    });
    if (!ok) throw LlamaError(with_log_reason("llama_set_sampler failed"));
    // The context now uses the chain: it takes it over, like Sampler.add().
    auto *owned = new Sampler();
    owned->ptr = cp;
    owned->models = std::move(chain.models);
    chain.models.clear();
    chain.ptr = nullptr;
    chain.version += 1;
    chain.spent_reason = "this sampler chain was given to a context with set_sampler()";
    c.attached.push_back(nb::cast(owned, nb::rv_policy::take_ownership));
}

void init_sampler(nb::module_ &m) {
    m.attr("DEFAULT_SEED") = LLAMA_DEFAULT_SEED;

    init_token_data_array(m);  // listed before Sampler, whose apply() takes it

    nb::class_<Sampler>(m, "Sampler",
                        "A llama_sampler. Build with the static constructors; combine with chain().add().")
        .def_static(
            "chain",
            [](bool no_perf) {
                llama_sampler_chain_params p = llama_sampler_chain_default_params();
                p.no_perf = no_perf;
                return wrap(llama_sampler_chain_init(p), "chain");
            },
            "no_perf"_a = true, nb::rv_policy::take_ownership, "An empty sampler chain.")
        .def_static(
            "greedy", []() { return wrap(llama_sampler_init_greedy(), "greedy"); }, nb::rv_policy::take_ownership,
            "Pick the most likely token.")
        .def_static(
            "dist", [](uint32_t seed) { return wrap(llama_sampler_init_dist(seed), "dist"); },
            "seed"_a = LLAMA_DEFAULT_SEED, nb::rv_policy::take_ownership,
            "Sample from the distribution (DEFAULT_SEED: a random seed).")
        .def_static(
            "top_k", [](int32_t k) { return wrap(llama_sampler_init_top_k(k), "top_k"); }, "k"_a,
            nb::rv_policy::take_ownership, "Keep the k most likely tokens (k <= 0: no-op).")
        .def_static(
            "top_p",
            [](float p, size_t min_keep) {
                check_prob(p, "p");
                return wrap(llama_sampler_init_top_p(p, min_keep), "top_p");
            },
            "p"_a, "min_keep"_a = 1, nb::rv_policy::take_ownership, "Nucleus sampling.")
        .def_static(
            "min_p",
            [](float p, size_t min_keep) {
                check_prob(p, "p");
                return wrap(llama_sampler_init_min_p(p, min_keep), "min_p");
            },
            "p"_a, "min_keep"_a = 1, nb::rv_policy::take_ownership, "Drop tokens below p times the top probability.")
        .def_static(
            "typical",
            [](float p, size_t min_keep) {
                check_prob(p, "p");
                return wrap(llama_sampler_init_typical(p, min_keep), "typical");
            },
            "p"_a, "min_keep"_a = 1, nb::rv_policy::take_ownership, "Locally typical sampling.")
        .def_static(
            "temp", [](float t) { return wrap(llama_sampler_init_temp(t), "temp"); }, "t"_a,
            nb::rv_policy::take_ownership, "Divide logits by t (t <= 0: keep only the top token).")
        .def_static(
            "temp_ext",
            [](float t, float delta, float exponent) {
                return wrap(llama_sampler_init_temp_ext(t, delta, exponent), "temp_ext");
            },
            "t"_a, "delta"_a, "exponent"_a, nb::rv_policy::take_ownership, "Dynamic temperature.")
        .def_static(
            "xtc",
            [](float p, float t, size_t min_keep, uint32_t seed) {
                check_prob(p, "p");
                return wrap(llama_sampler_init_xtc(p, t, min_keep, seed), "xtc");
            },
            "p"_a, "t"_a, "min_keep"_a = 1, "seed"_a = LLAMA_DEFAULT_SEED, nb::rv_policy::take_ownership,
            "Exclude-top-choices sampling.")
        .def_static(
            "top_n_sigma", [](float n) { return wrap(llama_sampler_init_top_n_sigma(n), "top_n_sigma"); }, "n"_a,
            nb::rv_policy::take_ownership, "Keep tokens within n standard deviations of the top logit.")
        .def_static(
            "mirostat",
            [](const Vocab &v, uint32_t seed, float tau, float eta, int32_t mm) {
                return wrap(llama_sampler_init_mirostat(v.n_tokens(), seed, tau, eta, mm), "mirostat");
            },
            "vocab"_a, "seed"_a, "tau"_a, "eta"_a, "m"_a = 100, nb::rv_policy::take_ownership, "Mirostat 1.0.")
        .def_static(
            "mirostat_v2",
            [](uint32_t seed, float tau, float eta) {
                return wrap(llama_sampler_init_mirostat_v2(seed, tau, eta), "mirostat_v2");
            },
            "seed"_a, "tau"_a, "eta"_a, nb::rv_policy::take_ownership, "Mirostat 2.0.")
        .def_static(
            "grammar",
            [](const Vocab &v, const std::string &grammar, const std::string &root) {
                clear_last_error_log();
                return wrap_with_vocab(v, llama_sampler_init_grammar(v.get(), grammar.c_str(), root.c_str()),
                                       "grammar");
            },
            "vocab"_a, "grammar"_a, "root"_a = "root", nb::rv_policy::take_ownership,
            "Constrain output to a GBNF grammar. Raises ValueError if it does not parse.")
        .def_static(
            "grammar_lazy_patterns",
            [](const Vocab &v, const std::string &grammar, const std::string &root,
               const std::vector<std::string> &patterns, const std::vector<llama_token> &tokens) {
                for (auto t : tokens) v.check_token(t);
                auto pats = c_strings(patterns);
                clear_last_error_log();
                return wrap_with_vocab(
                    v,
                    llama_sampler_init_grammar_lazy_patterns(v.get(), grammar.c_str(), root.c_str(), pats.data(),
                                                             pats.size(), tokens.data(), tokens.size()),
                    "lazy grammar");
            },
            "vocab"_a, "grammar"_a, "root"_a, "trigger_patterns"_a, "trigger_tokens"_a, nb::rv_policy::take_ownership,
            "A grammar that applies only after a trigger pattern or token appears.")
        .def_static(
            "penalties",
            [](int32_t last_n, float repeat, float freq, float present) {
                if (!(repeat > 0.0f)) throw nb::value_error("penalty_repeat must be > 0");
                if (!std::isfinite(freq) || !std::isfinite(present)) throw nb::value_error("penalties must be finite");
                if (last_n < -1) throw nb::value_error("penalty_last_n must be >= -1");
                return wrap(llama_sampler_init_penalties(0, last_n, repeat, freq, present), "penalties");
            },
            "penalty_last_n"_a = 64, "penalty_repeat"_a = 1.0f, "penalty_freq"_a = 0.0f, "penalty_present"_a = 0.0f,
            nb::rv_policy::take_ownership, "Repetition, frequency and presence penalties over the last n tokens.")
        .def_static(
            "dry",
            [](const Vocab &v, float multiplier, float base, int32_t allowed_length, int32_t last_n,
               const std::vector<std::string> &breakers) {
                auto b = c_strings(breakers);
                return wrap_with_vocab(
                    v, llama_sampler_init_dry(v.get(), multiplier, base, allowed_length, last_n, b.data(), b.size()),
                    "dry");
            },
            "vocab"_a, "multiplier"_a = 0.0f, "base"_a = 1.75f, "allowed_length"_a = 2, "penalty_last_n"_a = -1,
            "seq_breakers"_a = std::vector<std::string>{"\n", ":", "\"", "*"}, nb::rv_policy::take_ownership,
            "DRY (don't repeat yourself) penalty.")
        .def_static(
            "adaptive_p",
            [](float target, float decay, uint32_t seed) {
                return wrap(llama_sampler_init_adaptive_p(target, decay, seed), "adaptive_p");
            },
            "target"_a, "decay"_a, "seed"_a = LLAMA_DEFAULT_SEED, nb::rv_policy::take_ownership,
            "Select tokens near a target probability over time.")
        .def_static(
            "logit_bias",
            [](const Vocab &v, const std::vector<std::pair<llama_token, float>> &bias) {
                std::vector<llama_logit_bias> b;
                for (auto &[tok, val] : bias) {
                    v.check_token(tok);
                    b.push_back({tok, val});
                }
                return wrap(llama_sampler_init_logit_bias(v.n_tokens(), (int32_t) b.size(), b.data()), "logit_bias");
            },
            "vocab"_a, "bias"_a, nb::rv_policy::take_ownership, "Add a bias to the logits of some tokens.")
        .def_static(
            "infill", [](const Vocab &v) { return wrap_with_vocab(v, llama_sampler_init_infill(v.get()), "infill"); },
            "vocab"_a, nb::rv_policy::take_ownership, "Fill-in-the-middle post-processing.")
        .def_static(
            "from_python",
            [](nb::object obj, std::optional<std::string> name) {
                if (!nb::hasattr(obj, "apply"))
                    throw nb::type_error("a Python sampler needs an apply(candidates) method");
                std::string n = name ? *name : nb::cast<std::string>(nb::str(obj.type().attr("__name__")));
                return wrap(init_py_sampler(obj, n), "Python");
            },
            "sampler"_a, "name"_a = nb::none(), nb::rv_policy::take_ownership,
            "Wrap a Python object as a llama_sampler (llama_sampler_i). It must have\n"
            "apply(candidates: TokenDataArray) -> None, which may rewrite candidates.logits/p,\n"
            "shrink or reorder the arrays, and set candidates.selected; accept(token) and\n"
            "reset() are optional. Exceptions it raises propagate from sample()/apply().")
        .def("add", &chain_add, "sampler"_a, "Append a sampler to this chain; the chain takes ownership of it.")
        .def("get", &chain_get, "i"_a, nb::rv_policy::take_ownership,
             "A borrowed handle to element i; it raises ClosedError once the chain changes or closes.")
        .def("remove", &chain_remove, "i"_a, nb::rv_policy::take_ownership,
             "Take element i out of the chain; the caller now owns it.")
        .def_prop_ro(
            "n",
            [](Sampler &s) {
                return s.locked([](llama_sampler *p) {
                    if (!is_chain(p)) throw nb::type_error("not a chain sampler");
                    return llama_sampler_chain_n(p);
                });
            },
            "Number of samplers in this chain.")
        .def_prop_ro(
            "is_chain", [](Sampler &s) { return s.locked([](llama_sampler *p) { return is_chain(p); }); },
            "True for a sampler chain.")
        .def_prop_ro(
            "name",
            [](Sampler &s) { return s.locked([](llama_sampler *p) { return std::string(llama_sampler_name(p)); }); },
            "The sampler's name.")
        .def_prop_ro(
            "seed", [](Sampler &s) { return s.locked([](llama_sampler *p) { return llama_sampler_get_seed(p); }); },
            "Seed in use (DEFAULT_SEED if none).")
        .def(
            "accept",
            [](Sampler &s, llama_token t) {
                s.locked([&](llama_sampler *p) { llama_sampler_accept(p, t); });
                raise_py_sampler_error();
            },
            "token"_a, "Update the sampler's state with a token (e.g. prompt tokens for penalties).")
        .def("apply", &apply_sampler, "candidates"_a, "Apply the sampler to candidates in place (llama_sampler_apply).")
        .def(
            "reset",
            [](Sampler &s) {
                s.locked([](llama_sampler *p) { llama_sampler_reset(p); });
                raise_py_sampler_error();
            },
            "Reset the sampler's state (RNG, history, grammar).")
        .def(
            "clone",
            [](Sampler &s) {
                llama_sampler *c = s.locked([](llama_sampler *p) { return llama_sampler_clone(p); });
                Sampler *out = wrap(c, "clone of");
                for (auto &mm : s.models) {
                    mm.second->acquire();
                    out->models.push_back(mm);
                }
                return out;
            },
            nb::rv_policy::take_ownership, "An independent copy with the same state.")
        .def(
            "copy",
            [](Sampler &src, Sampler &dst) {
                if (&src == &dst) return;
                llama_sampler *d = dst.get();
                src.locked([&](llama_sampler *p) {
                    if (!same_shape(p, d))
                        throw nb::type_error("copy() needs two samplers of the same type and structure");
                    llama_sampler_copy(p, d);
                });
            },
            "dst"_a, "Copy this sampler's state into dst (same type and structure).")
        .def("sample", &sample, "ctx"_a, "idx"_a = -1,
             "Sample (and accept) a token from output idx of the last decode. GIL released.\n"
             "Raises ValueError if no sampler in the chain selects a token. The token and the\n"
             "sampler's state are llama_sampler_sample's; two shortcuts get there without its\n"
             "candidate array of the whole vocabulary: a chain that is only greedy takes the\n"
             "argmax, and a chain that starts with top-k (k <= 128) gets only the candidates\n"
             "top-k can keep (ties and their order included).")
        .def("sample_logits", &sample_logits, "logits"_a,
             "Sample (and accept) a token from a row of logits (token i has logits[i]), as sample()\n"
             "does from a context's output: the token llama_sampler_sample picks from the\n"
             "candidate array of all of them. GIL released. Raises ValueError if no sampler in\n"
             "the chain selects a token.")
        .def("close", &Sampler::close, "Free the sampler. Idempotent.")
        .def_prop_ro(
            "closed", [](const Sampler &s) { return s.ptr == nullptr; }, "True after close().")
        .def(
            "perf",
            [](Sampler &s) {
                llama_perf_sampler_data d = s.locked([](llama_sampler *p) {
                    if (!is_chain(p)) throw nb::type_error("perf counters exist only on chains");
                    return llama_perf_sampler(p);
                });
                return std::make_pair(d.t_sample_ms, d.n_sample);
            },
            "(t_sample_ms, n_sample) of a chain.")
        .def(
            "perf_reset",
            [](Sampler &s) {
                s.locked([](llama_sampler *p) {
                    if (!is_chain(p)) throw nb::type_error("perf counters exist only on chains");
                    llama_perf_sampler_reset(p);
                });
            },
            "Reset a chain's perf counters.")
        .def(
            "perf_print",
            [](Sampler &s) {
                s.locked([](llama_sampler *p) {
                    if (!is_chain(p)) throw nb::type_error("perf counters exist only on chains");
                    llama_perf_sampler_print(p);
                });
            },
            "Log a chain's perf counters through llama.cpp's log.")
        .def("__repr__", [](Sampler &s) {
            if (!s.ptr) return std::string("<llamanb.core.Sampler closed>");
            return "<llamanb.core.Sampler " + std::string(llama_sampler_name(s.ptr)) + ">";
        });
}
