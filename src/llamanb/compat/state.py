"""``llama_cpp.LlamaState``: a saved context state with its tokens, scores and seed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass
class LlamaState:
    """A saved context state, as ``llama_cpp.LlamaState``. ``scores`` holds the logits
    rows kept for ``input_ids`` (the last one, or every one with ``logits_all=True``)."""

    input_ids: npt.NDArray[np.intc]
    scores: npt.NDArray[np.single]
    n_tokens: int
    llama_state: bytes = field(repr=False)
    llama_state_size: int
    seed: int
