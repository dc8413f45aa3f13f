// Speculative decoding settings (speculative_params.h).
#include "speculative_params.h"

namespace {

// llama.cpp's name of an offered type; nullptr for the types llamanb cannot build.
const char *offered_type_name(common_speculative_type t) {
    switch (t) {
        case COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE:
            return "draft-simple";
        case COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE:
            return "ngram-simple";
        case COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K:
            return "ngram-map-k";
        case COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K4V:
            return "ngram-map-k4v";
        case COMMON_SPECULATIVE_TYPE_NGRAM_MOD:
            return "ngram-mod";
        case COMMON_SPECULATIVE_TYPE_NGRAM_CACHE:
            return "ngram-cache";
        default:
            return nullptr;  // not offered
    }
}

}  // namespace

void check_range(const char *what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        throw nb::value_error((std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                               "], got " + std::to_string(v))
                                  .c_str());
}

void validate_speculative_params(const common_params_speculative &p) {
    if (p.types.empty()) throw nb::value_error("no speculative type given");
    for (auto t : p.types) {
        if (t == COMMON_SPECULATIVE_TYPE_NONE)
            throw nb::value_error("speculative type 'none' turns speculation off: do not create a Speculative");
        if (!offered_type_name(t))
            throw nb::value_error(("speculative type '" + common_speculative_type_to_str(t) +
                                   "' needs a model with its own drafting head (Eagle3, MTP, DFlash, DSpark), "
                                   "which llamanb does not build yet; offered: draft-simple, ngram-simple, "
                                   "ngram-map-k, ngram-map-k4v, ngram-mod, ngram-cache")
                                      .c_str());
    }
    check_range("draft.n_max", p.draft.n_max, 1, 1024);
    check_range("draft.n_min", p.draft.n_min, 0, p.draft.n_max);
    if (!(p.draft.p_min >= 0.0f && p.draft.p_min <= 1.0f)) throw nb::value_error("draft.p_min must be in [0, 1]");
    check_range("ngram_mod.n_match", p.ngram_mod.n_match, 1, 1024);
    check_range("ngram_mod.n_max", p.ngram_mod.n_max, 1, 1024);
    check_range("ngram_mod.n_min", p.ngram_mod.n_min, 0, p.ngram_mod.n_max);
    for (auto *m : {&p.ngram_simple, &p.ngram_map_k, &p.ngram_map_k4v}) {
        check_range("ngram size_n", m->size_n, 1, 1024);
        check_range("ngram size_m", m->size_m, 1, 1024);
    }
}

void init_speculative_params(nb::module_ &m) {
    nb::enum_<common_speculative_type>(m, "SpeculativeType", nb::is_arithmetic(),
                                       "common_speculative_type: how drafts are made. llamanb offers DRAFT_SIMPLE (a "
                                       "smaller model with the same vocabulary) and the NGRAM_* self-speculation "
                                       "types; the others need models with their own drafting heads.")
        .value("NONE", COMMON_SPECULATIVE_TYPE_NONE)
        .value("DRAFT_SIMPLE", COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE, "a standalone draft model")
        .value("DRAFT_EAGLE3", COMMON_SPECULATIVE_TYPE_DRAFT_EAGLE3, "Eagle3 head (not offered)")
        .value("DRAFT_MTP", COMMON_SPECULATIVE_TYPE_DRAFT_MTP, "multi-token prediction head (not offered)")
        .value("DRAFT_DFLASH", COMMON_SPECULATIVE_TYPE_DRAFT_DFLASH, "DFlash (not offered)")
        .value("DRAFT_DSPARK", COMMON_SPECULATIVE_TYPE_DRAFT_DSPARK, "DSpark (not offered)")
        .value("NGRAM_SIMPLE", COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE, "the last n-gram looked up in the context")
        .value("NGRAM_MAP_K", COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K, "a map of the context's n-grams (keys only)")
        .value("NGRAM_MAP_K4V", COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K4V, "a map of n-grams to up to 4 m-gram values")
        .value("NGRAM_MOD", COMMON_SPECULATIVE_TYPE_NGRAM_MOD, "a hashed n-gram pool shared across requests")
        .value("NGRAM_CACHE", COMMON_SPECULATIVE_TYPE_NGRAM_CACHE, "a 3-level n-gram cache of the context");
    m.def(
        "speculative_type_from_name",
        [](const std::string &name) {
            auto t = common_speculative_type_from_name(name);
            if (t == COMMON_SPECULATIVE_TYPE_COUNT)
                throw nb::value_error(
                    ("unknown speculative type '" + name + "'; llama.cpp knows: " + common_speculative_all_types_str())
                        .c_str());
            return t;
        },
        "name"_a, "The type llama.cpp names `name` (\"ngram-mod\", \"draft-simple\", ...); ValueError if unknown.");
    m.def(
        "speculative_type_name", [](common_speculative_type t) { return common_speculative_type_to_str(t); }, "type"_a,
        "llama.cpp's name of a speculative type.");

    nb::class_<common_params_speculative_draft>(m, "SpeculativeDraftParams",
                                                "common_params_speculative_draft: draft-model settings.")
        .def(nb::init<>())
        .def_rw("n_max", &common_params_speculative_draft::n_max, "Most tokens drafted per step.")
        .def_rw("n_min", &common_params_speculative_draft::n_min, "Drafts shorter than this are dropped.")
        .def_rw("p_min", &common_params_speculative_draft::p_min,
                "Drafting stops at a token the draft model gives less probability than this.");
    nb::class_<common_params_speculative_ngram_map>(
        m, "NgramMapParams", "common_params_speculative_ngram_map: ngram-simple and ngram-map-* settings.")
        .def(nb::init<>())
        .def_rw("size_n", &common_params_speculative_ngram_map::size_n, "Length of the n-gram looked up.")
        .def_rw("size_m", &common_params_speculative_ngram_map::size_m, "Length of the m-gram drafted after it.")
        .def_rw("min_hits", &common_params_speculative_ngram_map::min_hits,
                "Occurrences an n-gram needs before it drafts (ngram-map-*).");
    nb::class_<common_params_speculative_ngram_mod>(m, "NgramModParams",
                                                    "common_params_speculative_ngram_mod: ngram-mod settings.")
        .def(nb::init<>())
        .def_rw("n_match", &common_params_speculative_ngram_mod::n_match, "Length of the n-gram matched.")
        .def_rw("n_max", &common_params_speculative_ngram_mod::n_max, "Most tokens drafted.")
        .def_rw("n_min", &common_params_speculative_ngram_mod::n_min, "Drafts shorter than this are dropped.");
    nb::class_<common_params_speculative>(m, "SpeculativeParams",
                                          "common_params_speculative: the types to use (tried in llama.cpp's order: "
                                          "n-gram types first, then the draft model) and their settings, with "
                                          "llama.cpp's defaults.")
        .def(nb::init<>())
        .def_prop_rw(
            "types", [](const common_params_speculative &p) { return p.types; },
            [](common_params_speculative &p, std::vector<common_speculative_type> v) { p.types = std::move(v); },
            "The types in use (a copy; assign a new list).")
        .def_rw("draft", &common_params_speculative::draft)
        .def_rw("ngram_simple", &common_params_speculative::ngram_simple)
        .def_rw("ngram_map_k", &common_params_speculative::ngram_map_k)
        .def_rw("ngram_map_k4v", &common_params_speculative::ngram_map_k4v)
        .def_rw("ngram_mod", &common_params_speculative::ngram_mod)
        .def_prop_ro(
            "n_max", [](const common_params_speculative &p) { return common_speculative_n_max(&p); },
            "The longest draft these settings allow.");
}
