// Speculative decoding settings: the types llamanb offers and the ranges llama.cpp
// would otherwise assert on (speculative_params.cpp), and their bindings
// (SpeculativeType, SpeculativeParams and its parts).
#pragma once

#include "binding.h"

#include "speculative.h"  // llama.cpp's common/speculative.h

// ValueError "WHAT must be in [LO, HI], got V" unless LO <= V <= HI.
void check_range(const char *what, int64_t v, int64_t lo, int64_t hi);
// ValueError unless every type is offered and every setting in its range.
void validate_speculative_params(const common_params_speculative &p);
// SpeculativeType, speculative_type_from_name/_name and the params classes, on M.
void init_speculative_params(nb::module_ &m);
