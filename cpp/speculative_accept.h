// Acceptance (speculative_accept.cpp): Speculative.accept() reports how much of a
// draft the target kept; sample_and_accept_n (core.fast) is llama.cpp's rule for it.
#pragma once

#include "sampler.h"
#include "speculative_handle.h"

void speculative_accept(Speculative &s, llama_seq_id seq, int32_t n_accepted);
// sample_and_accept_n, on M (core.fast).
void init_sample_and_accept_n(nb::module_ &m);
