// Drafting (speculative_draft.cpp): begin() a sequence's history, then draft the
// tokens to follow its last sampled one, for one sequence or several in one call.
#pragma once

#include "speculative_handle.h"

#include <tuple>

void speculative_begin(Speculative &s, llama_seq_id seq, const int32_t *tokens, size_t n);

nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> speculative_draft(Speculative &s, llama_seq_id seq,
                                                                   const int32_t *tokens, size_t n, llama_token id_last,
                                                                   int32_t n_max, llama_pos pos0);

// (sequence id, history, id_last, n_max) per sequence, as Python passes them.
using DraftTuple = std::tuple<llama_seq_id, std::vector<llama_token>, llama_token, int32_t>;

std::vector<nb::ndarray<nb::numpy, llama_token, nb::ndim<1>>> speculative_draft_many(
    Speculative &s, const std::vector<DraftTuple> &requests);
