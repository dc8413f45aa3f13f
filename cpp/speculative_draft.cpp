// Drafting (speculative_draft.h).
#include "speculative_draft.h"

void speculative_begin(Speculative &s, llama_seq_id seq, const int32_t *tokens, size_t n) {
    s.check_open();
    s.check_seq(seq);
    s.check_tokens_in(tokens, n);
    llama_tokens prompt(tokens, tokens + n);
    s.locked([&] { common_speculative_begin(s.ptr, seq, prompt); });
    s.hist_len[(size_t) seq] = n;
    s.last_draft[(size_t) seq] = 0;
}

namespace {

// One sequence's part of a draft_requests() call.
struct DraftRequest {
    llama_seq_id seq;
    const int32_t *tokens;  // the history in the target's cache
    size_t n;
    llama_token id_last;
    int32_t n_max;   // -1: each type's own limit; 0: no draft
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
                                   "): call begin() with the new prompt first")
                                      .c_str());
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

}  // namespace

nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> speculative_draft(Speculative &s, llama_seq_id seq,
                                                                   const int32_t *tokens, size_t n, llama_token id_last,
                                                                   int32_t n_max, llama_pos pos0) {
    std::vector<DraftRequest> reqs{{seq, tokens, n, id_last, n_max, pos0}};
    return to_numpy(std::move(draft_requests(s, reqs)[0]));
}

std::vector<nb::ndarray<nb::numpy, llama_token, nb::ndim<1>>> speculative_draft_many(
    Speculative &s, const std::vector<DraftTuple> &requests) {
    std::vector<DraftRequest> reqs;
    reqs.reserve(requests.size());
    for (auto &[seq, history, id_last, n_max] : requests)
        reqs.push_back({seq, history.data(), history.size(), id_last, n_max, -1});
    std::vector<nb::ndarray<nb::numpy, llama_token, nb::ndim<1>>> out;
    for (auto &result : draft_requests(s, reqs)) out.push_back(to_numpy(std::move(result)));
    return out;
}
