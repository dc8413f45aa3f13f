// Evaluation (mtmd_eval.cpp): chunks decoded into a Context sequence, media encoded
// first, as llama.cpp's mtmd_helper_eval_chunks does it.
#pragma once

#include "mtmd_chunks.h"

// MtmdContext.eval_chunks: every chunk into sequence seq of c from n_past; the next position.
llama_pos eval_chunks(MtmdContext &m, Context &c, InputChunks &chunks, llama_pos n_past, llama_seq_id seq,
                      int32_t n_batch, bool logits_last);
// MtmdContext.eval_chunk: one chunk, as eval_chunks().
llama_pos eval_chunk(MtmdContext &m, Context &c, const InputChunk &chunk, llama_pos n_past, llama_seq_id seq,
                     int32_t n_batch, bool logits_last);
