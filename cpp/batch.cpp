// llama_batch: a reusable buffer of tokens (or embeddings) with positions,
// sequence ids and output flags, for multi-sequence decoding; and llama_batch_ext,
// which Context.process() (bound in context.cpp) runs.
#include "batch.h"
#include "context.h"

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
        throw nb::index_error(
            ("batch row " + std::to_string(i) + " out of range [0, " + std::to_string(s.b.n_tokens) + ")").c_str());
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
        .def_prop_ro(
            "n_tokens", [](const Batch &s) { return s.b.n_tokens; }, "Rows in use.")
        .def_prop_ro(
            "capacity", [](const Batch &s) { return s.capacity; }, "Most rows.")
        .def("__len__", [](const Batch &s) { return s.b.n_tokens; })
        .def(
            "clear", [](Batch &s) { s.b.n_tokens = 0; }, "Remove all rows (keeps the allocation).")
        .def("add", &add, "token"_a, "pos"_a, "seq_ids"_a = std::vector<llama_seq_id>{0}, "logits"_a = false,
             nb::sig("def add(self, token: int, pos: int, seq_ids: collections.abc.Sequence[int] = [0], logits: bool = "
                     "False) -> None"),
             "Append a token at position pos in the given sequences; logits=True requests its output.")
        .def(
            "add_sequence",
            [](Batch &s, const std::vector<llama_token> &tokens, llama_pos pos0, llama_seq_id seq_id,
               bool logits_last) {
                if (s.b.n_tokens + (int64_t) tokens.size() > s.capacity)
                    throw nb::index_error(("batch has room for " + std::to_string(s.capacity - s.b.n_tokens) +
                                           " more tokens, not " + std::to_string(tokens.size()))
                                              .c_str());
                std::vector<llama_seq_id> seq{seq_id};
                for (size_t i = 0; i < tokens.size(); ++i)
                    add(s, tokens[i], pos0 + (llama_pos) i, seq, logits_last && i + 1 == tokens.size());
            },
            "tokens"_a, "pos0"_a, "seq_id"_a = 0, "logits_last"_a = true,
            "Append tokens at positions pos0, pos0+1, ... of one sequence; outputs only the last if logits_last.")
        .def(
            "set_logits",
            [](Batch &s, int32_t i, bool on) {
                check_row(s, i);
                s.b.logits[i] = on;
            },
            "i"_a, "logits"_a, "Request (or not) the output of row i.")
        .def_prop_ro(
            "tokens",
            [](const Batch &s) {
                if (s.embd) throw nb::value_error("this batch holds embeddings, not tokens");
                return std::vector<llama_token>(s.b.token, s.b.token + s.b.n_tokens);
            },
            "Token ids of the rows in use (a copy).")
        .def_prop_ro(
            "positions", [](const Batch &s) { return std::vector<llama_pos>(s.b.pos, s.b.pos + s.b.n_tokens); },
            "Positions of the rows in use (a copy).");
}

// ---- llama_batch_ext (the newer batch API) -------------------------------------

void process(Context &c, llama_process_type type, BatchExt &b) {
    llama_batch_ext *bp = b.get();
    if (b.ctx != &c) throw nb::value_error("this BatchExt was made for another context");
    if (b.pos_set.empty()) throw nb::value_error("batch is empty");
    for (size_t i = 0; i < b.pos_set.size(); ++i)
        if (!b.pos_set[i]) throw nb::value_error(("entry " + std::to_string(i) + " has no position (set_pos)").c_str());
    if (b.pos_set.size() > c.n_batch)
        throw nb::value_error(
            ("batch of " + std::to_string(b.pos_set.size()) + " entries exceeds n_batch=" + std::to_string(c.n_batch))
                .c_str());
    if (c.live_views > 0)
        throw LlamaError("zero-copy logits/embeddings views are alive; delete them or take copies before process()");
    int32_t rc = c.locked([&](llama_context *ctx) {
        clear_last_error_log();
        if (b.pos_set.size() > c.n_ubatch && !llama_get_causal_attn(ctx))
            throw nb::value_error("non-causal attention needs the whole batch in one ubatch");
        return llama_process(ctx, type, bp);
    });
    c.last_n_outputs = 0;  // get_logits() needs per-row counts the ext API does not report yet
    check_decode_result(c, rc, type == LLAMA_PROCESS_TYPE_DECODE ? "llama_process(decode)" : "llama_process(encode)");
}

namespace {

using EmbdIn = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

llama_embd to_embd(const EmbdIn &a) {
    if (a.ndim() == 1) return llama_embd{a.data(), 1, a.shape(0)};
    if (a.ndim() == 2) return llama_embd{a.data(), a.shape(0), a.shape(1)};
    throw nb::value_error("embeddings must be 1-D (one row) or 2-D (rows x n_embd)");
}

void ok_or(bool ok, const char *what) {
    if (!ok) throw nb::value_error(with_log_reason(what).c_str());
}

}  // namespace

void init_batch_ext(nb::module_ &m) {
    nb::enum_<llama_process_type>(m, "ProcessType", nb::is_arithmetic(), "Encode or decode, for Context.process.")
        .value("ENCODE", LLAMA_PROCESS_TYPE_ENCODE)
        .value("DECODE", LLAMA_PROCESS_TYPE_DECODE);

    nb::class_<BatchExt>(m, "BatchExt",
                         "[EXPERIMENTAL] llama_batch_ext: tokens or embeddings with explicit positions, for\n"
                         "Context.process(). Every entry needs set_pos() before processing.")
        .def(
            "__init__",
            [](BatchExt *self, nb::object ctx_obj) {
                Context &c = nb::cast<Context &>(ctx_obj);
                llama_batch_ext *b = c.locked([](llama_context *ctx) { return llama_batch_ext_init(ctx); });
                new (self) BatchExt();
                self->ptr = b;
                self->ctx_obj = ctx_obj;
                self->ctx = &c;
            },
            "ctx"_a, nb::sig("def __init__(self, ctx: Context) -> None"))
        .def(
            "close",
            [](BatchExt &b) {
                if (b.ptr) {
                    llama_batch_ext_free(b.ptr);
                    b.ptr = nullptr;
                }
            },
            "Free the batch. Idempotent.")
        .def(
            "clear",
            [](BatchExt &b) {
                llama_batch_ext_clear(b.get());
                b.pos_set.clear();
            },
            "Remove all entries.")
        .def("__len__", [](const BatchExt &b) { return b.pos_set.size(); })
        .def(
            "add", [](BatchExt &b, llama_seq_id seq) { return b.track(llama_batch_ext_add(b.get(), seq)); }, "seq_id"_a,
            "Add an entry with no token or embedding yet; returns its index.")
        .def(
            "add_token",
            [](BatchExt &b, llama_seq_id seq, llama_token t) {
                return b.track(llama_batch_ext_add_token(b.get(), seq, t));
            },
            "seq_id"_a, "token"_a, "Add a token; returns its index.")
        .def(
            "add_embd",
            [](BatchExt &b, llama_seq_id seq, EmbdIn e) {
                clear_last_error_log();
                return b.track(llama_batch_ext_add_embd(b.get(), seq, to_embd(e)));
            },
            "seq_id"_a, "embd"_a, "Add an input embedding (float32, n_embd or rows x n_embd); returns its index.")
        .def(
            "add_seq",
            [](BatchExt &b, int32_t idx, llama_seq_id seq) {
                b.check_idx(idx);
                ok_or(llama_batch_ext_add_seq(b.get(), idx, seq), "sequence id out of range");
            },
            "idx"_a, "seq_id"_a, "Put entry idx in another sequence too (same position).")
        .def(
            "set_embd_token",
            [](BatchExt &b, int32_t idx, EmbdIn e) {
                b.check_idx(idx);
                clear_last_error_log();
                ok_or(llama_batch_ext_set_embd_token(b.get(), idx, to_embd(e)), "could not set the token embedding");
            },
            "idx"_a, "embd"_a, "Give entry idx an input embedding (in addition to a token id).")
        .def(
            "set_embd_state",
            [](BatchExt &b, int32_t idx, EmbdIn e) {
                b.check_idx(idx);
                ok_or(llama_batch_ext_set_embd_state(b.get(), idx, to_embd(e)),
                      "llama.cpp does not support state embeddings at this version");
            },
            "idx"_a, "embd"_a, "Set a hidden-state embedding carried from another stage (not yet supported upstream).")
        .def(
            "set_output_embd",
            [](BatchExt &b, int32_t idx, bool on) {
                b.check_idx(idx);
                ok_or(llama_batch_ext_set_output_embd(b.get(), idx, on), "index out of range");
            },
            "idx"_a, "value"_a, "Request the embedding output of entry idx.")
        .def(
            "set_output_logits",
            [](BatchExt &b, int32_t idx, bool on) {
                b.check_idx(idx);
                ok_or(llama_batch_ext_set_output_logits(b.get(), idx, on), "index out of range");
            },
            "idx"_a, "value"_a, "Request the logits of entry idx.")
        .def(
            "set_pos",
            [](BatchExt &b, int32_t idx, const std::vector<llama_pos> &pos) {
                b.check_idx(idx);
                if (pos.empty()) throw nb::value_error("need at least one position");
                std::vector<llama_pos> padded(pos);
                padded.resize(std::max<size_t>(pos.size(), 4), pos.back());  // M-RoPE reads up to 4
                ok_or(llama_batch_ext_set_pos(b.get(), idx, padded.data()), "index out of range");
                b.pos_set[(size_t) idx] = true;
            },
            "idx"_a, "pos"_a, "Position(s) of entry idx (M-RoPE embeddings take several).");
}
