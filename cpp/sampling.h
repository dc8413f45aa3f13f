// Sampling a token with a Sampler (sampling.cpp): Sampler.sample and Sampler.sample_logits.
#pragma once

#include "sampler.h"

using LogitsIn = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// Samples (and accepts) a token from output idx of c's last decode; GIL held on entry,
// released while sampling. A chain that selects no token is a ValueError.
llama_token sample(Sampler &s, Context &c, int32_t idx);
// Samples (and accepts) a token from a row of logits (token i has logits[i]).
llama_token sample_logits(Sampler &s, LogitsIn logits);
