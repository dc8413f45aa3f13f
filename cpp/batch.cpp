// llama_batch: a reusable buffer of tokens (or embeddings) with positions,
// sequence ids and output flags, for multi-sequence decoding.
#include "common.h"

Batch::Batch(int32_t n_tokens, int32_t embd_, int32_t n_seq_max_)
    : capacity(n_tokens), embd(embd_), n_seq_max(n_seq_max_) {
    if (n_tokens < 1) throw nb::value_error("n_tokens must be >= 1");
    if (embd_ < 0) throw nb::value_error("embd must be >= 0");
    if (n_seq_max_ < 1) throw nb::value_error("n_seq_max must be >= 1");
    b = llama_batch_init(n_tokens, embd_, n_seq_max_);
    b.n_tokens = 0;
}

namespace {

void check_row(const Batch &s, int32_t i) {
    if (i < 0 || i >= s.b.n_tokens)
        throw nb::index_error(("batch row " + std::to_string(i) + " out of range [0, " +
                               std::to_string(s.b.n_tokens) + ")").c_str());
}

void add(Batch &s, llama_token token, llama_pos pos, const std::vector<llama_seq_id> &seq_ids, bool logits) {
    if (s.embd) throw nb::value_error("this batch holds embeddings, not tokens");
    if (s.b.n_tokens >= s.capacity)
        throw nb::index_error(("batch is full (" + std::to_string(s.capacity) + " tokens)").c_str());
    if (seq_ids.empty() || (int32_t) seq_ids.size() > s.n_seq_max)
        throw nb::value_error(("need 1 to " + std::to_string(s.n_seq_max) + " sequence ids per token").c_str());
    if (pos < 0) throw nb::value_error("position must be >= 0");
    int32_t i = s.b.n_tokens;
    s.b.token[i] = token;
    s.b.pos[i] = pos;
    s.b.n_seq_id[i] = (int32_t) seq_ids.size();
    for (size_t j = 0; j < seq_ids.size(); ++j) s.b.seq_id[i][j] = seq_ids[j];
    s.b.logits[i] = logits;
    s.b.n_tokens += 1;
}

}  // namespace

void init_batch(nb::module_ &m) {
    nb::class_<Batch>(m, "Batch",
        "A llama_batch: rows of (token, position, sequence ids, output flag).\n"
        "Token and sequence ids are validated when the batch is decoded.")
        .def(nb::init<int32_t, int32_t, int32_t>(), "n_tokens"_a, "embd"_a = 0, "n_seq_max"_a = 1,
             "Allocate room for n_tokens rows (embd > 0: rows of embd floats instead of tokens).")
        .def_prop_ro("n_tokens", [](const Batch &s) { return s.b.n_tokens; }, "Rows in use.")
        .def_prop_ro("capacity", [](const Batch &s) { return s.capacity; }, "Most rows.")
        .def("__len__", [](const Batch &s) { return s.b.n_tokens; })
        .def("clear", [](Batch &s) { s.b.n_tokens = 0; }, "Remove all rows (keeps the allocation).")
        .def("add", &add, "token"_a, "pos"_a, "seq_ids"_a = std::vector<llama_seq_id>{0}, "logits"_a = false,
             nb::sig("def add(self, token: int, pos: int, seq_ids: collections.abc.Sequence[int] = [0], logits: bool = False) -> None"),
             "Append a token at position pos in the given sequences; logits=True requests its output.")
        .def("add_sequence", [](Batch &s, const std::vector<llama_token> &tokens, llama_pos pos0, llama_seq_id seq_id, bool logits_last) {
                if (s.b.n_tokens + (int64_t) tokens.size() > s.capacity)
                    throw nb::index_error(("batch has room for " + std::to_string(s.capacity - s.b.n_tokens) +
                                           " more tokens, not " + std::to_string(tokens.size())).c_str());
                std::vector<llama_seq_id> seq{seq_id};
                for (size_t i = 0; i < tokens.size(); ++i)
                    add(s, tokens[i], pos0 + (llama_pos) i, seq, logits_last && i + 1 == tokens.size());
            }, "tokens"_a, "pos0"_a, "seq_id"_a = 0, "logits_last"_a = true,
             "Append tokens at positions pos0, pos0+1, ... of one sequence; outputs only the last if logits_last.")
        .def("set_logits", [](Batch &s, int32_t i, bool on) { check_row(s, i); s.b.logits[i] = on; },
             "i"_a, "logits"_a, "Request (or not) the output of row i.")
        .def_prop_ro("tokens", [](const Batch &s) {
                if (s.embd) throw nb::value_error("this batch holds embeddings, not tokens");
                return std::vector<llama_token>(s.b.token, s.b.token + s.b.n_tokens);
            }, "Token ids of the rows in use (a copy).")
        .def_prop_ro("positions", [](const Batch &s) { return std::vector<llama_pos>(s.b.pos, s.b.pos + s.b.n_tokens); },
                     "Positions of the rows in use (a copy).");
}
