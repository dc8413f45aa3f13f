"""Whether a speculative run's difference from plain decoding is the kernels' rounding.

On some CPUs (AMX, llamafile's sgemm) a batch of tokens goes through other kernels than
one token, and their rounding may flip a greedy near-tie. Verification decodes a draft
as a batch, so a speculative run may take the other candidate there. That is allowed
only when it is proved: the plain path picks the same token when it re-decodes the last
tokens before that position as one batch, and the two candidates are closer than
batching moves the logits there.
Used by tests/test_speculative.py (and the server's) and by bench/speculative.py.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from llamanb import Llama, core


def unexplained_difference(
    llm: Llama, prompt: str, want: list[int], got: list[int], *, n_ctx: int, near_tie: float = 0.05
) -> str | None:
    """None if ``got`` (speculative) equals ``want`` (plain decoding on ``llm``'s model)
    or differs from it by batched rounding alone; else why the difference is not that.

    Proved means: at the first difference, the plain path re-decoding the tokens before
    it one at a time picks plain decoding's token, re-decoding the last 2 to 9 of them as
    one batch (as verification does) picks the speculative run's, and the two candidates'
    logits are closer than batching moves that position's logits (or than ``near_tie``)."""
    if got == want:
        return None
    i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
    # A run that ended there took an end-of-generation token (not among its tokens).
    plain_next, spec_next = (want[i] if i < len(want) else None), (got[i] if i < len(got) else None)
    ids = llm.tokenize(prompt, parse_special=True) + want[:i]
    params = core.ContextParams()
    params.n_ctx = n_ctx
    params.n_threads = params.n_threads_batch = 2
    with core.Context(llm.model, params) as ctx:
        one = logits_after(ctx, ids, batch_tail=1)
        rows = [logits_after(ctx, ids, batch_tail=tail) for tail in range(2, 10)]
    batched = {int(np.argmax(row)) for row in rows}
    # How far batching moves this position's logits: the rounding a flip must fit in.
    spread = max(float(np.max(np.abs(row - one))) for row in rows)
    vocab = llm.model.vocab
    picked = int(np.argmax(one))
    if picked != plain_next and not (plain_next is None and vocab.is_eog(picked)):
        return f"at token {i} the plain path re-decoded picks {picked}, not {plain_next or 'the end'}"
    spec_picks = [t for t in batched if (vocab.is_eog(t) if spec_next is None else t == spec_next)]
    if not spec_picks:
        return (
            f"at token {i} the speculative choice ({spec_next or 'the end'}) is not what batched decoding "
            f"picks {sorted(batched)}"
        )
    gap = abs(float(one[picked]) - float(one[spec_picks[0]]))
    if gap >= max(near_tie, spread):
        return (
            f"at token {i} the logits differ by {gap:.3f}, more than batching moves them ({spread:.3f}): "
            f"a real divergence"
        )
    return None


def logits_after(ctx: core.Context, ids: list[int], batch_tail: int) -> npt.NDArray[np.float32]:
    """Logits after ``ids`` when its last ``batch_tail`` tokens are one batch."""
    ctx.memory_clear(False)
    head, tail = ids[:-batch_tail], ids[-batch_tail:]
    for start in range(0, len(head), 256):
        ctx.decode_tokens(head[start : start + 256])
    batch = core.Batch(len(tail), 0, 1)
    for i, t in enumerate(tail):
        batch.add(t, len(head) + i, [0], True)
    ctx.decode(batch)
    return np.asarray(ctx.get_logits_ith(len(tail) - 1, copy=True))
