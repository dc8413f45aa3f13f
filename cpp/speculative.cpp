// Speculative decoding: llama.cpp's common/speculative.h (the drafting side: a draft
// model, or n-gram lookup over the context) and the acceptance rule that goes with it
// (common_sampler_sample_and_accept_n, here over a core Sampler chain). The facade
// drives them (generation.py); these are thin, checked translations.
//
// Rules kept here, since llama.cpp asserts (aborts the process) instead of failing:
// sequence ids in range, drafts of a sequence over a history that only grows between
// begin() calls (ngram-map aborts otherwise), accept() of at most what was drafted,
// positions that continue the draft context's cache, token ids inside the vocabulary,
// and only the speculative types whose models llamanb can build (no Eagle3/MTP/DFlash
// heads yet). The n-gram lookup-cache files are not exposed: llama.cpp aborts on a
// malformed one.
//
// Files by area: the handle (speculative_handle.h), settings (speculative_params.h),
// drafting (speculative_draft.h), mirroring (speculative_process.h) and acceptance
// (speculative_accept.h). This one binds the class (core.common.Speculative).
#include "speculative_accept.h"
#include "speculative_draft.h"
#include "speculative_params.h"
#include "speculative_process.h"

#include <nanobind/stl/tuple.h>

void init_speculative(nb::module_ &m) {
    init_speculative_params(m);

    nb::class_<Speculative>(m, "Speculative",
                            "common_speculative: drafts tokens for sequences of a target context, from a draft\n"
                            "model's context (DRAFT_SIMPLE) or from n-grams of the history (NGRAM_*).\n\n"
                            "Per step of a sequence: draft() after the last sampled token; decode that token and\n"
                            "the draft on the target with an output for each; process() the same tokens (the\n"
                            "draft context mirrors the target's cache); core.fast.sample_and_accept_n(); accept() how\n"
                            "many draft tokens the target kept; remove the rejected positions from both caches.\n"
                            "Calls release the GIL; the contexts stay alive while this object lives.")
        .def("__init__", &init_speculative_obj, "params"_a, "target"_a, "draft"_a.none() = nb::none(), "n_seq"_a = 1,
             nb::sig("def __init__(self, params: SpeculativeParams, target: llamanb.core.Context, "
                     "draft: llamanb.core.Context | None = None, n_seq: int = 1) -> None"),
             "Set up the types of params for n_seq sequences of target; draft-simple needs draft,\n"
             "a context of a model with the same vocabulary holding n_seq sequences. ValueError if\n"
             "the settings or vocabularies do not fit.")
        .def(
            "begin",
            [](Speculative &s, llama_seq_id seq, TokensIn prompt) {
                speculative_begin(s, seq, prompt.data(), prompt.shape(0));
            },
            "seq_id"_a, "prompt"_a)
        .def(
            "begin",
            [](Speculative &s, llama_seq_id seq, const std::vector<llama_token> &prompt) {
                speculative_begin(s, seq, prompt.data(), prompt.size());
            },
            "seq_id"_a, "prompt"_a,
            "Start a generation of seq_id from prompt (the tokens in the target's cache). The\n"
            "n-gram types index it.")
        .def(
            "draft",
            [](Speculative &s, llama_seq_id seq, TokensIn prompt, llama_token id_last, int32_t n_max, llama_pos pos0) {
                return speculative_draft(s, seq, prompt.data(), prompt.shape(0), id_last, n_max, pos0);
            },
            "seq_id"_a, "prompt"_a, "id_last"_a, "n_max"_a = -1, "pos0"_a = -1)
        .def(
            "draft",
            [](Speculative &s, llama_seq_id seq, const std::vector<llama_token> &prompt, llama_token id_last,
               int32_t n_max, llama_pos pos0) {
                return speculative_draft(s, seq, prompt.data(), prompt.size(), id_last, n_max, pos0);
            },
            "seq_id"_a, "prompt"_a, "id_last"_a, "n_max"_a = -1, "pos0"_a = -1,
            "Draft tokens to follow id_last, the token sampled after prompt (the history in the\n"
            "target's cache, which only grows between begin() calls). At most n_max tokens (-1:\n"
            "each type's own limit; 0: none); possibly none. pos0 is id_last's position in the\n"
            "draft context (-1: right after what it holds); the draft context's cache is left as\n"
            "it was. GIL released.")
        .def("draft_many", &speculative_draft_many, "requests"_a,
             "draft() for several sequences at once: requests holds (seq_id, prompt, id_last, n_max)\n"
             "per sequence (each sequence once; pos0 as draft()'s default). One call into\n"
             "llama.cpp, so draft-simple decodes the sequences' drafts together. Returns the drafts\n"
             "in the order of requests. GIL released.")
        .def(
            "process",
            [](Speculative &s, TokensIn tokens, llama_pos pos0, llama_seq_id seq) {
                speculative_process(s, seq, tokens.data(), tokens.shape(0), pos0);
            },
            "tokens"_a, "pos0"_a = -1, "seq_id"_a = 0)
        .def(
            "process",
            [](Speculative &s, const std::vector<llama_token> &tokens, llama_pos pos0, llama_seq_id seq) {
                speculative_process(s, seq, tokens.data(), tokens.size(), pos0);
            },
            "tokens"_a, "pos0"_a = -1, "seq_id"_a = 0,
            "Feed the draft side the tokens the target just decoded for seq_id from pos0 (-1:\n"
            "right after what the draft context holds). A no-op for the n-gram types. GIL released.")
        .def("process_batch", &speculative_process_batch, "batch"_a, "seq_ids"_a,
             "process() for every entry of batch (which the target just decoded) that belongs to one\n"
             "of seq_ids: the draft context mirrors those sequences in one decode. Each entry must\n"
             "belong to one sequence, and each sequence's entries must continue what the draft side\n"
             "holds. GIL released.")
        .def("accept", &speculative_accept, "seq_id"_a, "n_accepted"_a,
             "Report how many tokens of seq_id's last draft the target kept (0..len(draft)).")
        .def("close", &Speculative::close, "Free it. Idempotent.")
        .def_prop_ro(
            "closed", [](const Speculative &s) { return s.ptr == nullptr; }, "True after close().")
        .def(
            "__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> Speculative"))
        .def(
            "__exit__", [](Speculative &s, nb::handle, nb::handle, nb::handle) { s.close(); }, "exc_type"_a.none(),
            "exc"_a.none(), "tb"_a.none())
        .def_prop_ro(
            "types", [](const Speculative &s) { return s.types; }, "The types in use.")
        .def_prop_ro(
            "n_seq", [](const Speculative &s) { return s.n_seq; }, "Sequences it drafts for.")
        .def_prop_ro(
            "n_max",
            [](const Speculative &s) {
                s.check_open();
                return common_speculative_n_max(s.ptr);
            },
            "The longest draft its implementations make.")
        .def_prop_ro(
            "n_drafts", [](const Speculative &s) { return s.n_drafts; }, "Drafts made (non-empty).")
        .def_prop_ro(
            "n_drafted", [](const Speculative &s) { return s.n_drafted; }, "Tokens drafted.")
        .def_prop_ro(
            "n_accept_calls", [](const Speculative &s) { return s.n_accept_calls; },
            "Drafts the target verified (accept() after a non-empty draft).")
        .def_prop_ro(
            "n_accepted", [](const Speculative &s) { return s.n_accepted; }, "Drafted tokens the target kept.")
        .def("__repr__", [](const Speculative &s) {
            if (!s.ptr) return std::string("<llamanb.core.common.Speculative closed>");
            std::string names;
            for (auto t : s.types) names += (names.empty() ? "" : ",") + common_speculative_type_to_str(t);
            return "<llamanb.core.common.Speculative " + names + ">";
        });
}
