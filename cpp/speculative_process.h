// Mirroring (speculative_process.cpp): the draft side is fed every token the target
// decodes, so that the draft context's cache follows the target's.
#pragma once

#include "batch.h"
#include "speculative_handle.h"

// tokens decoded by the target for seq from pos0 (-1: right after what the draft holds).
void speculative_process(Speculative &s, llama_seq_id seq, const int32_t *tokens, size_t n, llama_pos pos0);
// The entries of a core Batch that belong to the sequences in seqs, in one decode.
void speculative_process_batch(Speculative &s, const Batch &b, const std::vector<llama_seq_id> &seqs);
