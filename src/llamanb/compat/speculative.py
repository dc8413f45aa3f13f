"""``llama_cpp.llama_speculative``: prompt lookup decoding."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..speculative import SpeculativeOptions


class LlamaDraftModel:
    """llama-cpp-python's base class of draft models; only :class:`LlamaPromptLookupDecoding`
    runs here (as llama.cpp's own n-gram speculation, in C++)."""

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: object) -> npt.NDArray[np.intc]:
        raise NotImplementedError


class LlamaPromptLookupDecoding(LlamaDraftModel):
    """Drafts the tokens that followed the last ``max_ngram_size`` tokens where they
    occurred before in the context, up to ``num_pred_tokens`` of them. Generation runs it
    as llama.cpp's ``ngram-simple`` speculation (which looks up that n-gram only, not
    shorter ones as llama-cpp-python's does); the output is what decoding without it gives."""

    def __init__(self, max_ngram_size: int = 2, num_pred_tokens: int = 10) -> None:
        if max_ngram_size < 1 or num_pred_tokens < 1:
            raise ValueError(
                f"max_ngram_size and num_pred_tokens must be >= 1, got {max_ngram_size} and {num_pred_tokens}"
            )
        self.max_ngram_size = max_ngram_size
        self.num_pred_tokens = num_pred_tokens

    @property
    def options(self) -> SpeculativeOptions:
        return SpeculativeOptions(("ngram-simple",), draft_max=self.num_pred_tokens, ngram_size=self.max_ngram_size)

    @staticmethod
    def find_candidate_pred_tokens(
        input_ids: npt.NDArray[np.intc], max_ngram_size: int, num_pred_tokens: int
    ) -> npt.NDArray[np.intc]:
        """llama-cpp-python's lookup, in Python: for n-gram sizes from ``max_ngram_size``
        down to 1, the tokens after the first match of the last n tokens that has any."""
        ids = np.asarray(input_ids)
        n = len(ids)
        for size in range(min(max_ngram_size, n - 1), 0, -1):
            windows = np.lib.stride_tricks.sliding_window_view(ids, (size,))
            for start in np.nonzero(np.all(windows == ids[n - size :], axis=1))[0]:
                follow = ids[start + size : min(start + size + num_pred_tokens, n)]
                if len(follow):
                    return follow
        return np.array([], dtype=np.intc)

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: object) -> npt.NDArray[np.intc]:
        return self.find_candidate_pred_tokens(input_ids, self.max_ngram_size, self.num_pred_tokens)
