// Mirroring (speculative_process.h).
#include "speculative_process.h"

namespace {

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
                               " tokens exceeds the draft context's n_batch=" + std::to_string(s.draft->n_batch))
                                  .c_str());
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

}  // namespace

void speculative_process(Speculative &s, llama_seq_id seq, const int32_t *tokens, size_t n, llama_pos pos0) {
    if (n == 0) throw nb::value_error("no tokens to process");
    std::vector<MirrorEntry> entries;
    entries.reserve(n);
    for (size_t i = 0; i < n; ++i) entries.push_back({tokens[i], pos0 < 0 ? -1 : pos0 + (llama_pos) i, seq});
    process_entries(s, entries);
}

void speculative_process_batch(Speculative &s, const Batch &b, const std::vector<llama_seq_id> &seqs) {
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
                                   " belongs to several sequences: it cannot be mirrored per sequence")
                                      .c_str());
        entries.push_back({b.b.token[i], b.b.pos[i], b.b.seq_id[i][0]});
    }
    process_entries(s, entries);
}
