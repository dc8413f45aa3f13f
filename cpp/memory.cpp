// A context's memory (the KV cache, llama_memory_*): clearing, removing, copying
// and shifting the positions of sequences. Bound as Context methods in context.cpp.
#include "context.h"

namespace {

// The memory of ctx, after checking that seq names one of its sequences.
llama_memory_t memory_of(llama_context *ctx, llama_seq_id seq) {
    check_seq(ctx, seq, false);
    return llama_get_memory(ctx);
}

// seq_add/seq_div on memory that cannot shift would assert inside llama.cpp.
llama_memory_t shiftable_memory_of(llama_context *ctx, llama_seq_id seq) {
    llama_memory_t mem = memory_of(ctx, seq);
    if (!llama_memory_can_shift(mem)) throw LlamaError("this context's memory cannot shift positions");
    return mem;
}

}  // namespace

void memory_clear(Context &c, bool data) {
    c.locked([&](llama_context *ctx) { llama_memory_clear(llama_get_memory(ctx), data); });
}

bool memory_seq_rm(Context &c, llama_seq_id seq, llama_pos p0, llama_pos p1) {
    return c.locked([&](llama_context *ctx) {
        check_seq(ctx, seq, true);  // -1: every sequence
        return llama_memory_seq_rm(llama_get_memory(ctx), seq, p0, p1);
    });
}

void memory_seq_cp(Context &c, llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1) {
    c.locked([&](llama_context *ctx) {
        check_seq(ctx, src, false);
        check_seq(ctx, dst, false);
        llama_memory_seq_cp(llama_get_memory(ctx), src, dst, p0, p1);
    });
}

void memory_seq_keep(Context &c, llama_seq_id seq) {
    c.locked([&](llama_context *ctx) { llama_memory_seq_keep(memory_of(ctx, seq), seq); });
}

void memory_seq_add(Context &c, llama_seq_id seq, llama_pos p0, llama_pos p1, llama_pos delta) {
    c.locked([&](llama_context *ctx) { llama_memory_seq_add(shiftable_memory_of(ctx, seq), seq, p0, p1, delta); });
}

void memory_seq_div(Context &c, llama_seq_id seq, llama_pos p0, llama_pos p1, int d) {
    if (d < 1) throw nb::value_error("divisor must be >= 1");
    c.locked([&](llama_context *ctx) { llama_memory_seq_div(shiftable_memory_of(ctx, seq), seq, p0, p1, d); });
}

llama_pos memory_seq_pos_min(Context &c, llama_seq_id seq) {
    return c.locked([&](llama_context *ctx) { return llama_memory_seq_pos_min(memory_of(ctx, seq), seq); });
}

llama_pos memory_seq_pos_max(Context &c, llama_seq_id seq) {
    return c.locked([&](llama_context *ctx) { return llama_memory_seq_pos_max(memory_of(ctx, seq), seq); });
}

bool memory_can_shift(Context &c) {
    return c.locked([](llama_context *ctx) { return llama_memory_can_shift(llama_get_memory(ctx)); });
}
