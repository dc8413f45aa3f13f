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
#include "common.h"  // llamanb's (cpp/common.h)
#include "batch.h"
#include "context.h"
#include "sampler.h"

#include <nanobind/stl/tuple.h>
#include <tuple>

#include "speculative.h"  // llama.cpp's common/speculative.h

namespace {

const char *type_name(common_speculative_type t) {
    switch (t) {
        case COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE: return "draft-simple";
        case COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE: return "ngram-simple";
        case COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K: return "ngram-map-k";
        case COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K4V: return "ngram-map-k4v";
        case COMMON_SPECULATIVE_TYPE_NGRAM_MOD: return "ngram-mod";
        case COMMON_SPECULATIVE_TYPE_NGRAM_CACHE: return "ngram-cache";
        default: return nullptr;  // not offered
    }
}

void check_range(const char *what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        throw nb::value_error((std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                               "], got " + std::to_string(v)).c_str());
}

// Owns a common_speculative over a target context and, for draft-simple, a draft
// context. Calls run with the GIL released and this object's mutex held, then the
// draft context's (lock order: Speculative, then Context).
struct Speculative {
    common_speculative *ptr = nullptr;
    common_params_speculative params;
    nb::object target_obj, draft_obj;  // keep the Python Contexts alive
    Context *target = nullptr, *draft = nullptr;
    Model *draft_model = nullptr;  // acquired: its free waits for ours
    uint32_t n_seq = 1;
    std::vector<common_speculative_type> types;
    std::vector<size_t> hist_len;    // history length of the last begin()/draft() per sequence
    std::vector<size_t> last_draft;  // tokens of the last draft per sequence, until accept()
    uint64_t n_drafts = 0, n_drafted = 0, n_accept_calls = 0, n_accepted = 0;
    CallMutex mutex;

    void check_open() const {
        if (!ptr) throw ClosedError("Speculative is closed");
    }
    void check_seq(llama_seq_id seq) const {
        if (seq < 0 || (uint32_t) seq >= n_seq)
            throw nb::index_error(("sequence id " + std::to_string(seq) + " out of range [0, " +
                                   std::to_string(n_seq) + ")").c_str());
    }
    void check_tokens_in(const int32_t *t, size_t n) const {
        target->check_open();
        check_tokens(llama_model_get_vocab(target->model->ptr), t, n);
    }
    // GIL held: the draft context may run a decode now (open, and no zero-copy views
    // that a larger output buffer would leave dangling).
    void check_draft_usable() const {
        if (!draft) return;
        draft->check_open();
        if (draft->live_views > 0)
            throw LlamaError("zero-copy logits/embeddings views of the draft context are alive; delete them or "
                             "take copies before drafting");
    }
    // Runs fn() with the GIL released, this object's mutex and the draft context's held.
    template <typename F>
    auto locked(F &&fn) -> decltype(fn()) {
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> guard(mutex);
        if (!ptr) throw ClosedError("Speculative is closed");
        if (!draft) return fn();
        std::lock_guard<CallMutex> dguard(draft->mutex);
        if (!draft->ptr || draft->close_requested) throw ClosedError("the draft Context is closed");
        return fn();
    }
    // GIL held, after a call that may have decoded on the draft context.
    void after_draft_decode() {
        if (!draft) return;
        draft->last_n_outputs = 0;  // its get_logits() rows are no longer known
        draft->output_capacity = std::max<int64_t>(draft->output_capacity, draft->n_seq_max);
        if (draft->abort.error.set()) {
            draft->abort.cancel = false;
            draft->abort.error.raise();
        }
    }
    llama_pos draft_pos_next(llama_seq_id seq) const {
        return llama_memory_seq_pos_max(llama_get_memory(draft->ptr), seq) + 1;
    }

    void close() {
        common_speculative *victim = nullptr;
        {
            nb::gil_scoped_release nogil;
            std::lock_guard<CallMutex> guard(mutex);
            victim = ptr;
            ptr = nullptr;
        }
        if (victim) common_speculative_free(victim);
        if (draft_model) {
            draft_model->release();
            draft_model = nullptr;
        }
        target_obj = nb::object();
        draft_obj = nb::object();
        target = draft = nullptr;
    }
    ~Speculative() {
        if (ptr) common_speculative_free(ptr);
        if (draft_model) draft_model->release();
    }
};

void validate_params(const common_params_speculative &p) {
    if (p.types.empty()) throw nb::value_error("no speculative type given");
    for (auto t : p.types) {
        if (t == COMMON_SPECULATIVE_TYPE_NONE)
            throw nb::value_error("speculative type 'none' turns speculation off: do not create a Speculative");
        if (!type_name(t))
            throw nb::value_error(("speculative type '" + common_speculative_type_to_str(t) +
                                   "' needs a model with its own drafting head (Eagle3, MTP, DFlash, DSpark), "
                                   "which llamanb does not build yet; offered: draft-simple, ngram-simple, "
                                   "ngram-map-k, ngram-map-k4v, ngram-mod, ngram-cache").c_str());
    }
    check_range("draft.n_max", p.draft.n_max, 1, 1024);
    check_range("draft.n_min", p.draft.n_min, 0, p.draft.n_max);
    if (!(p.draft.p_min >= 0.0f && p.draft.p_min <= 1.0f))
        throw nb::value_error("draft.p_min must be in [0, 1]");
    check_range("ngram_mod.n_match", p.ngram_mod.n_match, 1, 1024);
    check_range("ngram_mod.n_max", p.ngram_mod.n_max, 1, 1024);
    check_range("ngram_mod.n_min", p.ngram_mod.n_min, 0, p.ngram_mod.n_max);
    for (auto *m : {&p.ngram_simple, &p.ngram_map_k, &p.ngram_map_k4v}) {
        check_range("ngram size_n", m->size_n, 1, 1024);
        check_range("ngram size_m", m->size_m, 1, 1024);
    }
}

void init_speculative_obj(Speculative *self, const common_params_speculative &p, nb::object target_obj,
                          nb::object draft_obj, uint32_t n_seq) {
    validate_params(p);
    Context &target = nb::cast<Context &>(target_obj);
    target.check_open();
    Context *draft = draft_obj.is_none() ? nullptr : &nb::cast<Context &>(draft_obj);
    bool wants_draft = std::find(p.types.begin(), p.types.end(), COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE) != p.types.end();
    if (wants_draft && !draft) throw nb::value_error("speculative type 'draft-simple' needs a draft context");
    if (!wants_draft && draft) throw nb::value_error("a draft context is used only by the 'draft-simple' type");
    check_range("n_seq", n_seq, 1, (int64_t) llama_max_parallel_sequences());
    if (draft) {
        if (draft == &target) throw nb::value_error("the draft context must not be the target context");
        draft->check_open();
        if (draft->n_seq_max != n_seq)
            throw nb::value_error(("the draft context holds " + std::to_string(draft->n_seq_max) +
                                   " sequences (n_seq_max) but n_seq is " + std::to_string(n_seq)).c_str());
        if (draft->n_batch < n_seq) throw nb::value_error("the draft context's n_batch is smaller than n_seq");
        if (draft->embeddings) throw nb::value_error("the draft context must not have embeddings on");
        if (draft->live_views > 0)
            throw LlamaError("zero-copy views of the draft context are alive; delete them first");
    }
    common_params_speculative params = p;
    common_speculative *created = nullptr;
    std::string err;
    {
        // draft-simple's set-up reads both models (vocabulary check) and samples on the draft's.
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> tg(target.mutex);
        std::unique_lock<CallMutex> dg;
        if (draft) dg = std::unique_lock<CallMutex>(draft->mutex);
        if (!target.ptr || target.close_requested) throw ClosedError("the target Context is closed");
        if (draft && (!draft->ptr || draft->close_requested)) throw ClosedError("the draft Context is closed");
        params.draft.ctx_tgt = target.ptr;
        params.draft.ctx_dft = draft ? draft->ptr : nullptr;
        try {
            created = common_speculative_init(params, n_seq);
        } catch (const std::exception &e) {
            err = e.what();
        }
    }
    if (!created)
        throw nb::value_error(("could not set up speculative decoding: " +
                               (err.empty() ? std::string("no implementation for these types") : err)).c_str());
    auto *s = new (self) Speculative();
    s->ptr = created;
    s->params = params;
    s->n_seq = n_seq;
    s->types = p.types;
    s->hist_len.assign(n_seq, 0);
    s->last_draft.assign(n_seq, 0);
    s->target_obj = target_obj;
    s->target = &target;
    if (draft) {
        s->draft_obj = draft_obj;
        s->draft = draft;
        draft->model->acquire();
        s->draft_model = draft->model;
    }
}

void begin(Speculative &s, llama_seq_id seq, const int32_t *tokens, size_t n) {
    s.check_open();
    s.check_seq(seq);
    s.check_tokens_in(tokens, n);
    llama_tokens prompt(tokens, tokens + n);
    s.locked([&] { common_speculative_begin(s.ptr, seq, prompt); });
    s.hist_len[(size_t) seq] = n;
    s.last_draft[(size_t) seq] = 0;
}

// One sequence's part of a draft_requests() call.
struct DraftRequest {
    llama_seq_id seq;
    const int32_t *tokens;  // the history in the target's cache
    size_t n;
    llama_token id_last;
    int32_t n_max;  // -1: each type's own limit; 0: no draft
    llama_pos pos0;  // id_last's position in the draft context (-1: right after what it holds)
};

// Drafts for several sequences in one common_speculative_draft: draft-simple decodes
// them together on its context (one decode per draft position, not per sequence).
std::vector<llama_tokens> draft_requests(Speculative &s, std::vector<DraftRequest> &reqs) {
    s.check_open();
    std::vector<bool> seen(s.n_seq, false);
    for (auto &r : reqs) {
        s.check_seq(r.seq);
        if (seen[(size_t) r.seq])
            throw nb::value_error(("sequence id " + std::to_string(r.seq) + " is drafted twice in one call").c_str());
        seen[(size_t) r.seq] = true;
        s.check_tokens_in(r.tokens, r.n);
        s.check_tokens_in(&r.id_last, 1);
        if (r.n_max < -1) throw nb::value_error("n_max must be -1 (each type's own limit) or >= 0");
        if (r.n < s.hist_len[(size_t) r.seq])
            throw nb::value_error(("the history of sequence " + std::to_string(r.seq) + " is shorter (" +
                                   std::to_string(r.n) + " tokens) than at the last begin()/draft() (" +
                                   std::to_string(s.hist_len[(size_t) r.seq]) +
                                   "): call begin() with the new prompt first").c_str());
    }
    s.check_draft_usable();
    std::vector<llama_tokens> prompts(reqs.size()), results(reqs.size());
    for (size_t k = 0; k < reqs.size(); ++k) prompts[k].assign(reqs[k].tokens, reqs[k].tokens + reqs[k].n);
    std::string pos_err;
    s.locked([&] {
        for (auto &r : reqs) {
            if (r.n_max == 0) continue;  // nothing is decoded for it
            if (!s.draft) {
                if (r.pos0 < 0) r.pos0 = (llama_pos) r.n;
                continue;
            }
            llama_pos next = s.draft_pos_next(r.seq);
            if (r.pos0 < 0) r.pos0 = next;
            if (r.pos0 != next) {
                pos_err = "pos0=" + std::to_string(r.pos0) + " but the draft context holds sequence " +
                          std::to_string(r.seq) + " up to position " + std::to_string(next - 1) +
                          ": feed it every batch the target decodes (process())";
                return;
            }
        }
        for (llama_seq_id i = 0; i < (llama_seq_id) s.n_seq; ++i) {
            auto &dp = common_speculative_get_draft_params(s.ptr, i);
            dp.drafting = false;
            dp.prompt = nullptr;
            dp.result = nullptr;
        }
        for (size_t k = 0; k < reqs.size(); ++k) {
            if (reqs[k].n_max == 0) continue;
            auto &dp = common_speculative_get_draft_params(s.ptr, reqs[k].seq);
            dp.drafting = true;
            dp.n_max = reqs[k].n_max;
            dp.pos0 = reqs[k].pos0;
            dp.id_last = reqs[k].id_last;
            dp.prompt = &prompts[k];
            dp.result = &results[k];
        }
        common_speculative_draft(s.ptr);
        for (auto &r : reqs) {
            auto &dp = common_speculative_get_draft_params(s.ptr, r.seq);
            dp.prompt = nullptr;
            dp.result = nullptr;
            // draft-simple decoded the draft on its context: leave that cache as it was.
            if (s.draft && r.n_max != 0) llama_memory_seq_rm(llama_get_memory(s.draft->ptr), r.seq, r.pos0, -1);
        }
    });
    s.after_draft_decode();
    if (!pos_err.empty()) throw nb::value_error(pos_err.c_str());
    for (size_t k = 0; k < reqs.size(); ++k) {
        auto &r = reqs[k];
        auto &result = results[k];
        if (r.n_max > 0 && result.size() > (size_t) r.n_max) result.resize((size_t) r.n_max);
        s.hist_len[(size_t) r.seq] = r.n;
        s.last_draft[(size_t) r.seq] = result.size();
        if (!result.empty()) {
            s.n_drafts += 1;
            s.n_drafted += result.size();
        }
    }
    return results;
}

nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> draft(Speculative &s, llama_seq_id seq, const int32_t *tokens,
                                                       size_t n, llama_token id_last, int32_t n_max, llama_pos pos0) {
    std::vector<DraftRequest> reqs{{seq, tokens, n, id_last, n_max, pos0}};
    return to_numpy(std::move(draft_requests(s, reqs)[0]));
}

// (sequence id, history, id_last, n_max) per sequence, as Python passes them.
using DraftTuple = std::tuple<llama_seq_id, std::vector<llama_token>, llama_token, int32_t>;

std::vector<nb::ndarray<nb::numpy, llama_token, nb::ndim<1>>> draft_many(Speculative &s,
                                                                         const std::vector<DraftTuple> &requests) {
    std::vector<DraftRequest> reqs;
    reqs.reserve(requests.size());
    for (auto &[seq, history, id_last, n_max] : requests)
        reqs.push_back({seq, history.data(), history.size(), id_last, n_max, -1});
    std::vector<nb::ndarray<nb::numpy, llama_token, nb::ndim<1>>> out;
    for (auto &result : draft_requests(s, reqs)) out.push_back(to_numpy(std::move(result)));
    return out;
}

// One mirrored entry of a process_entries() call.
struct MirrorEntry {
    llama_token token;
    llama_pos pos;
    llama_seq_id seq;
};

// Feeds the draft side what the target decoded: entries of one or more sequences, each
// sequence's positions consecutive and continuing what the draft context holds (a
// position of -1: the next one). One decode on the draft context.
void process_entries(Speculative &s, std::vector<MirrorEntry> &entries) {
    s.check_open();
    if (entries.empty()) return;
    if (s.draft && entries.size() > (size_t) s.draft->n_batch)
        throw nb::value_error(("batch of " + std::to_string(entries.size()) +
                               " tokens exceeds the draft context's n_batch=" + std::to_string(s.draft->n_batch)).c_str());
    for (auto &e : entries) {
        s.check_seq(e.seq);
        s.check_tokens_in(&e.token, 1);
    }
    s.check_draft_usable();
    std::string pos_err;
    bool ok = s.locked([&] {
        std::vector<llama_pos> next(s.n_seq, -1);  // the position each sequence's next entry must have
        for (auto &e : entries) {
            llama_pos &want = next[(size_t) e.seq];
            if (want < 0) want = s.draft ? s.draft_pos_next(e.seq) : (e.pos < 0 ? 0 : e.pos);
            if (e.pos < 0) e.pos = want;
            if (e.pos != want) {
                pos_err = "position " + std::to_string(e.pos) + " of sequence " + std::to_string(e.seq) +
                          " does not continue it" +
                          (s.draft ? " (the draft context holds it up to position " +
                                         std::to_string(s.draft_pos_next(e.seq) - 1) + ")"
                                   : std::string());
                return true;
            }
            want = e.pos + 1;
        }
        common_batch batch;  // entries only: the implementations copy what they need
        for (size_t i = 0; i < entries.size(); ++i)
            batch.add(entries[i].token, entries[i].pos, entries[i].seq, i + 1 == entries.size());
        clear_last_error_log();
        return common_speculative_process(s.ptr, batch);
    });
    s.after_draft_decode();
    if (!pos_err.empty()) throw nb::value_error(pos_err.c_str());
    if (!ok) throw DecodeError(with_log_reason("the draft context failed to decode the batch"));
}

void process(Speculative &s, llama_seq_id seq, const int32_t *tokens, size_t n, llama_pos pos0) {
    if (n == 0) throw nb::value_error("no tokens to process");
    std::vector<MirrorEntry> entries;
    entries.reserve(n);
    for (size_t i = 0; i < n; ++i) entries.push_back({tokens[i], pos0 < 0 ? -1 : pos0 + (llama_pos) i, seq});
    process_entries(s, entries);
}

// The entries of a core Batch that belong to the sequences in seqs (each entry of one
// sequence; entries of other sequences are left out).
void process_batch(Speculative &s, const Batch &b, const std::vector<llama_seq_id> &seqs) {
    s.check_open();
    std::vector<bool> wanted(s.n_seq, false);
    for (auto q : seqs) {
        s.check_seq(q);
        wanted[(size_t) q] = true;
    }
    if (b.embd) throw nb::value_error("an embeddings batch cannot be mirrored on the draft side");
    std::vector<MirrorEntry> entries;
    for (int32_t i = 0; i < b.b.n_tokens; ++i) {
        int32_t n_ids = b.b.n_seq_id[i];
        bool any = false;
        for (int32_t k = 0; k < n_ids; ++k) {
            llama_seq_id q = b.b.seq_id[i][k];
            any = any || (q >= 0 && (uint32_t) q < s.n_seq && wanted[(size_t) q]);
        }
        if (!any) continue;
        if (n_ids != 1)
            throw nb::value_error(("batch entry " + std::to_string(i) +
                                   " belongs to several sequences: it cannot be mirrored per sequence").c_str());
        entries.push_back({b.b.token[i], b.b.pos[i], b.b.seq_id[i][0]});
    }
    process_entries(s, entries);
}

void accept(Speculative &s, llama_seq_id seq, int32_t n_accepted) {
    s.check_open();
    s.check_seq(seq);
    size_t drafted = s.last_draft[(size_t) seq];
    if (n_accepted < 0 || (size_t) n_accepted > drafted)
        throw nb::value_error(("n_accepted=" + std::to_string(n_accepted) + " but the last draft of sequence " +
                               std::to_string(seq) + " had " + std::to_string(drafted) +
                               " token(s) (accept() once per draft)").c_str());
    if (drafted > 0) {
        s.locked([&] { common_speculative_accept(s.ptr, seq, (uint16_t) n_accepted); });
        s.n_accept_calls += 1;
        s.n_accepted += (uint64_t) n_accepted;
    }
    s.last_draft[(size_t) seq] = 0;
}

// common_sampler_sample_and_accept_n over a core Sampler chain: sample (and accept)
// the target's token at output idxs[i]; go on while it equals draft[i], and never past
// an end-of-generation token. The tokens are exactly those plain decoding samples at
// those positions (same chain, same order of draws).
nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> sample_and_accept_n(Sampler &s, Context &c,
                                                                     const std::vector<llama_token> &draft,
                                                                     std::vector<int32_t> idxs) {
    c.check_open();
    if (idxs.empty()) {
        idxs.resize(draft.size() + 1);
        for (size_t i = 0; i < idxs.size(); ++i) idxs[i] = (int32_t) i;
    }
    if (idxs.size() != draft.size() + 1)
        throw nb::value_error(("idxs must hold len(draft) + 1 = " + std::to_string(draft.size() + 1) +
                               " output indices, got " + std::to_string(idxs.size())).c_str());
    const llama_vocab *vocab = llama_model_get_vocab(c.model->ptr);
    check_tokens(vocab, draft.data(), draft.size());
    std::vector<llama_token> result;
    result.reserve(idxs.size());
    s.locked([&](llama_sampler *smpl) {
        std::lock_guard<CallMutex> cg(c.mutex);  // lock order: sampler, then context
        if (!c.ptr || c.close_requested) throw ClosedError("Context is closed");
        clear_last_error_log();
        for (size_t i = 0; i < idxs.size(); ++i) {
            llama_token id = sample_locked_public(s, smpl, c.ptr, idxs[i]);
            if (id == LLAMA_TOKEN_NULL) return;  // a Python sampler raised: re-raised below
            result.push_back(id);
            if (i == draft.size()) break;
            if (draft[i] != id || (llama_vocab_is_eog(vocab, id) && i + 1 < draft.size())) break;
        }
    });
    raise_py_sampler_error();
    return to_numpy(std::move(result));
}

}  // namespace

void init_speculative(nb::module_ &m) {
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
    m.def("speculative_type_from_name", [](const std::string &name) {
            auto t = common_speculative_type_from_name(name);
            if (t == COMMON_SPECULATIVE_TYPE_COUNT)
                throw nb::value_error(("unknown speculative type '" + name + "'; llama.cpp knows: " +
                                       common_speculative_all_types_str()).c_str());
            return t;
        }, "name"_a, "The type llama.cpp names `name` (\"ngram-mod\", \"draft-simple\", ...); ValueError if unknown.");
    m.def("speculative_type_name", [](common_speculative_type t) { return common_speculative_type_to_str(t); },
          "type"_a, "llama.cpp's name of a speculative type.");

    nb::class_<common_params_speculative_draft>(m, "SpeculativeDraftParams",
                                                 "common_params_speculative_draft: draft-model settings.")
        .def(nb::init<>())
        .def_rw("n_max", &common_params_speculative_draft::n_max, "Most tokens drafted per step.")
        .def_rw("n_min", &common_params_speculative_draft::n_min, "Drafts shorter than this are dropped.")
        .def_rw("p_min", &common_params_speculative_draft::p_min,
                "Drafting stops at a token the draft model gives less probability than this.");
    nb::class_<common_params_speculative_ngram_map>(m, "NgramMapParams",
                                                     "common_params_speculative_ngram_map: ngram-simple and ngram-map-* settings.")
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
        .def_prop_rw("types", [](const common_params_speculative &p) { return p.types; },
                     [](common_params_speculative &p, std::vector<common_speculative_type> v) { p.types = std::move(v); },
                     "The types in use (a copy; assign a new list).")
        .def_rw("draft", &common_params_speculative::draft)
        .def_rw("ngram_simple", &common_params_speculative::ngram_simple)
        .def_rw("ngram_map_k", &common_params_speculative::ngram_map_k)
        .def_rw("ngram_map_k4v", &common_params_speculative::ngram_map_k4v)
        .def_rw("ngram_mod", &common_params_speculative::ngram_mod)
        .def_prop_ro("n_max", [](const common_params_speculative &p) { return common_speculative_n_max(&p); },
                     "The longest draft these settings allow.");

    nb::class_<Speculative>(m, "Speculative",
                            "common_speculative: drafts tokens for sequences of a target context, from a draft\n"
                            "model's context (DRAFT_SIMPLE) or from n-grams of the history (NGRAM_*).\n\n"
                            "Per step of a sequence: draft() after the last sampled token; decode that token and\n"
                            "the draft on the target with an output for each; process() the same tokens (the\n"
                            "draft context mirrors the target's cache); sample_and_accept_n(); accept() how many\n"
                            "draft tokens the target kept; remove the rejected positions from both caches.\n"
                            "Calls release the GIL; the contexts stay alive while this object lives.")
        .def("__init__", &init_speculative_obj, "params"_a, "target"_a, "draft"_a.none() = nb::none(), "n_seq"_a = 1,
             nb::sig("def __init__(self, params: SpeculativeParams, target: Context, draft: Context | None = None, "
                     "n_seq: int = 1) -> None"),
             "Set up the types of params for n_seq sequences of target; draft-simple needs draft,\n"
             "a context of a model with the same vocabulary holding n_seq sequences. ValueError if\n"
             "the settings or vocabularies do not fit.")
        .def("begin", [](Speculative &s, llama_seq_id seq, TokensIn prompt) { begin(s, seq, prompt.data(), prompt.shape(0)); },
             "seq_id"_a, "prompt"_a)
        .def("begin", [](Speculative &s, llama_seq_id seq, const std::vector<llama_token> &prompt) {
                begin(s, seq, prompt.data(), prompt.size());
            }, "seq_id"_a, "prompt"_a,
             "Start a generation of seq_id from prompt (the tokens in the target's cache). The\n"
             "n-gram types index it.")
        .def("draft", [](Speculative &s, llama_seq_id seq, TokensIn prompt, llama_token id_last, int32_t n_max, llama_pos pos0) {
                return draft(s, seq, prompt.data(), prompt.shape(0), id_last, n_max, pos0);
            }, "seq_id"_a, "prompt"_a, "id_last"_a, "n_max"_a = -1, "pos0"_a = -1)
        .def("draft", [](Speculative &s, llama_seq_id seq, const std::vector<llama_token> &prompt, llama_token id_last,
                         int32_t n_max, llama_pos pos0) {
                return draft(s, seq, prompt.data(), prompt.size(), id_last, n_max, pos0);
            }, "seq_id"_a, "prompt"_a, "id_last"_a, "n_max"_a = -1, "pos0"_a = -1,
             "Draft tokens to follow id_last, the token sampled after prompt (the history in the\n"
             "target's cache, which only grows between begin() calls). At most n_max tokens (-1:\n"
             "each type's own limit; 0: none); possibly none. pos0 is id_last's position in the\n"
             "draft context (-1: right after what it holds); the draft context's cache is left as\n"
             "it was. GIL released.")
        .def("draft_many", &draft_many, "requests"_a,
             "draft() for several sequences at once: requests holds (seq_id, prompt, id_last, n_max)\n"
             "per sequence (each sequence once; pos0 as draft()'s default). One call into\n"
             "llama.cpp, so draft-simple decodes the sequences' drafts together. Returns the drafts\n"
             "in the order of requests. GIL released.")
        .def("process", [](Speculative &s, TokensIn tokens, llama_pos pos0, llama_seq_id seq) {
                process(s, seq, tokens.data(), tokens.shape(0), pos0);
            }, "tokens"_a, "pos0"_a = -1, "seq_id"_a = 0)
        .def("process", [](Speculative &s, const std::vector<llama_token> &tokens, llama_pos pos0, llama_seq_id seq) {
                process(s, seq, tokens.data(), tokens.size(), pos0);
            }, "tokens"_a, "pos0"_a = -1, "seq_id"_a = 0,
             "Feed the draft side the tokens the target just decoded for seq_id from pos0 (-1:\n"
             "right after what the draft context holds). A no-op for the n-gram types. GIL released.")
        .def("process_batch", &process_batch, "batch"_a, "seq_ids"_a,
             "process() for every entry of batch (which the target just decoded) that belongs to one\n"
             "of seq_ids: the draft context mirrors those sequences in one decode. Each entry must\n"
             "belong to one sequence, and each sequence's entries must continue what the draft side\n"
             "holds. GIL released.")
        .def("accept", &accept, "seq_id"_a, "n_accepted"_a,
             "Report how many tokens of seq_id's last draft the target kept (0..len(draft)).")
        .def("close", &Speculative::close, "Free it. Idempotent.")
        .def_prop_ro("closed", [](const Speculative &s) { return s.ptr == nullptr; }, "True after close().")
        .def("__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> Speculative"))
        .def("__exit__", [](Speculative &s, nb::handle, nb::handle, nb::handle) { s.close(); },
             "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def_prop_ro("types", [](const Speculative &s) { return s.types; }, "The types in use.")
        .def_prop_ro("n_seq", [](const Speculative &s) { return s.n_seq; }, "Sequences it drafts for.")
        .def_prop_ro("n_max", [](const Speculative &s) { s.check_open(); return common_speculative_n_max(s.ptr); },
                     "The longest draft its implementations make.")
        .def_prop_ro("n_drafts", [](const Speculative &s) { return s.n_drafts; }, "Drafts made (non-empty).")
        .def_prop_ro("n_drafted", [](const Speculative &s) { return s.n_drafted; }, "Tokens drafted.")
        .def_prop_ro("n_accept_calls", [](const Speculative &s) { return s.n_accept_calls; },
                     "Drafts the target verified (accept() after a non-empty draft).")
        .def_prop_ro("n_accepted", [](const Speculative &s) { return s.n_accepted; }, "Drafted tokens the target kept.")
        .def("__repr__", [](const Speculative &s) {
            if (!s.ptr) return std::string("<llamanb.core.Speculative closed>");
            std::string names;
            for (auto t : s.types) names += (names.empty() ? "" : ",") + common_speculative_type_to_str(t);
            return "<llamanb.core.Speculative " + names + ">";
        });

    m.def("sample_and_accept_n", &sample_and_accept_n, "sampler"_a, "ctx"_a, "draft"_a,
          "idxs"_a = std::vector<int32_t>{},
          "llama.cpp's acceptance rule (common_sampler_sample_and_accept_n) over a sampler chain:\n"
          "sample (and accept) the token at output idxs[i] of ctx's last decode (default: 0, 1,\n"
          "...) while it equals draft[i], never past an end-of-generation token, and the one after\n"
          "a fully kept draft. Returns those 1..len(draft)+1 tokens: exactly what sampling one\n"
          "token at a time would pick at those positions. GIL released.");
}
