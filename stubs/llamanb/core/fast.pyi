"""
llamanb's own loops in C++ (GIL released): what a Python loop over llama.h would do, per call
instead of per token.
"""

from collections.abc import Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray

import llamanb.core


def sample_and_decode(ctx: llamanb.core.Context, sampler: llamanb.core.Sampler, pending: Sequence[int], max_tokens: int, max_ms: float) -> list[int]:
    """
    The token loop in C++ (GIL released): decode `pending` (tokens sampled before and
    not yet decoded; may be empty), then repeat: sample and accept a token from the
    last output with `sampler`, and decode it, until an end-of-generation token,
    `max_tokens` sampled, or `max_ms` milliseconds since the first sample.

    Returns the sampled tokens. All but the last were decoded; the last was not (pass
    it as `pending` to go on). The tokens and the sampler's state are those of a loop
    of Sampler.sample(ctx, -1) and Context.decode_tokens([token]).

    Raises as Context.decode_tokens and Sampler.sample do; after an exception the
    context holds an unknown number of the sampled tokens (clear it).
    """

def sample_and_accept_n(sampler: llamanb.core.Sampler, ctx: llamanb.core.Context, draft: Sequence[int], idxs: Sequence[int] = []) -> Annotated[NDArray[numpy.int32], dict(shape=(None,))]:
    """
    llama.cpp's acceptance rule (common_sampler_sample_and_accept_n) over a sampler chain:
    sample (and accept) the token at output idxs[i] of ctx's last decode (default: 0, 1,
    ...) while it equals draft[i], never past an end-of-generation token, and the one after
    a fully kept draft. Returns those 1..len(draft)+1 tokens: exactly what sampling one
    token at a time would pick at those positions. GIL released.
    """
