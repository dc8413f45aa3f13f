// Evaluation (mtmd_eval.h).
#include "mtmd_eval.h"

namespace {

struct EvalResult {
    int32_t rc = 0;
    bool encode_failed = false;
    llama_pos n_past = 0;
};

// The chunks [begin, end) of `chunks` into sequence `seq` of `c` from position n_past,
// as mtmd_helper_eval_chunks does it (text: mtmd_helper_eval_chunk_single; media:
// mtmd_encode_chunk, then mtmd_helper_decode_image_chunk), one chunk at a time so that
// an encode failure is told apart from a decode status. GIL released, both locks held.
llama_pos eval_range(MtmdContext &m, Context &c, InputChunks &chunks, size_t begin, size_t end, llama_pos n_past,
                     llama_seq_id seq, int32_t n_batch, bool logits_last) {
    c.check_open();
    check_chunks_of(m, chunks);
    if (c.model != m.model)
        throw nb::value_error("the Context runs another Model than the one this MtmdContext was made for");
    if (n_past < 0) throw nb::value_error("n_past must be >= 0");
    if (n_batch == 0) n_batch = (int32_t) c.n_batch;
    if (n_batch < 1 || (uint32_t) n_batch > c.n_batch)
        throw nb::value_error(
            ("n_batch must be in [1, " + std::to_string(c.n_batch) + "] (the context's), or 0").c_str());
    mtmd_context *mp = m.get();
    for (size_t i = begin; i < end; ++i) {
        const mtmd_input_chunk *ch = mtmd_input_chunks_get(chunks.ptr, i);
        if (mtmd_input_chunk_get_type(ch) != MTMD_INPUT_CHUNK_TYPE_TEXT && mtmd_decode_use_non_causal(mp, ch) &&
            mtmd_input_chunk_get_n_tokens(ch) > c.n_ubatch)
            throw nb::value_error(("this model decodes media with non-causal attention, which needs a whole chunk "
                                   "in one ubatch: " +
                                   std::to_string(mtmd_input_chunk_get_n_tokens(ch)) +
                                   " tokens > n_ubatch=" + std::to_string(c.n_ubatch) +
                                   "; create the context with a larger n_ubatch (and n_batch)")
                                      .c_str());
    }
    // Every decode here outputs at most one row (the last text token), or every row
    // with embeddings on: the output buffer must not grow under live views.
    const int64_t outputs = c.embeddings ? n_batch : 1;
    if (c.live_views > 0 && outputs > c.output_capacity)
        throw LlamaError(
            "this evaluation may need more outputs than the context has produced before, which "
            "reallocates llama.cpp's output buffer, while zero-copy logits/embeddings views are "
            "alive. Delete them or take copies first.");
    EvalResult r = c.locked([&](llama_context *lctx) {
        check_seq(lctx, seq, false);
        std::lock_guard<std::mutex> guard(m.mutex);
        EvalResult out;
        out.n_past = n_past;
        if (!m.ptr || m.closing) throw ClosedError("MtmdContext is closed");
        clear_last_error_log();
        c.abort.last_poll_us = llama_time_us();
        for (size_t i = begin; i < end && out.rc == 0; ++i) {
            const mtmd_input_chunk *ch = mtmd_input_chunks_get(chunks.ptr, i);
            const bool last = logits_last && i + 1 == end;
            if (mtmd_input_chunk_get_type(ch) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
                out.rc = mtmd_helper_eval_chunk_single(m.ptr, lctx, ch, out.n_past, seq, n_batch, last, &out.n_past);
            } else {
                if (mtmd_encode_chunk(m.ptr, ch) != 0) {
                    out.rc = 1;
                    out.encode_failed = true;
                    break;
                }
                out.rc = mtmd_helper_decode_image_chunk(m.ptr, lctx, ch, mtmd_get_output_embd(m.ptr), out.n_past, seq,
                                                        n_batch, &out.n_past, nullptr, nullptr);
            }
        }
        return out;
    });
    c.output_capacity = std::max<int64_t>(c.output_capacity, outputs);
    c.last_n_outputs = r.rc == 0 && logits_last && !c.embeddings ? 1 : 0;
    if (r.encode_failed) throw LlamaError(with_log_reason("mtmd_encode_chunk: encoding the media failed"));
    check_decode_result(c, r.rc, "mtmd eval");
    return r.n_past;
}

}  // namespace

llama_pos eval_chunks(MtmdContext &m, Context &c, InputChunks &chunks, llama_pos n_past, llama_seq_id seq,
                      int32_t n_batch, bool logits_last) {
    return eval_range(m, c, chunks, 0, chunks.size(), n_past, seq, n_batch, logits_last);
}

llama_pos eval_chunk(MtmdContext &m, Context &c, const InputChunk &chunk, llama_pos n_past, llama_seq_id seq,
                     int32_t n_batch, bool logits_last) {
    InputChunks &cs = *chunk.chunks;
    size_t i = 0;
    while (i < cs.size() && mtmd_input_chunks_get(cs.ptr, i) != chunk.ptr) ++i;
    nb::object hold = chunk.parent;
    return eval_range(m, c, cs, i, i + 1, n_past, seq, n_batch, logits_last);
}
