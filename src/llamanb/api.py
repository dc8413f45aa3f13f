"""One-call helpers: ``llamanb.generate(model, prompt)`` and ``llamanb.embed(model, texts)``.

Given a path, they load the model, run, and free it again; given a ``Llama``, they
use it (and leave it open). For repeated calls, keep a ``Llama``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, ContextManager

import numpy as np
import numpy.typing as npt

from .embedding import Pooling
from .generation import Completion, CompletionKwargs, Prompt
from .llama import Llama

if TYPE_CHECKING:
    from typing_extensions import Unpack

ModelRef = Llama | str | os.PathLike[str] | None
"""A loaded ``Llama``, a GGUF path, or None for the default model."""


def generate(
    model: ModelRef,
    prompt: Prompt,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    **kwargs: Unpack[CompletionKwargs],
) -> Completion:
    """Complete ``prompt`` with ``model``; options as :meth:`Llama.generate`. ``n_ctx``
    and ``n_threads`` apply when a path is given."""
    with _open(model, n_ctx, n_threads) as llm:
        return llm.generate(prompt, **kwargs)


def embed(
    model: ModelRef,
    texts: str | Sequence[str],
    *,
    pooling: Pooling | None = None,
    normalize: bool = True,
    batch_size: int = 64,
    truncate: bool = False,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]:
    """Embeddings of ``texts`` with ``model``, shape ``(n, dim)``; see :meth:`Llama.embed`."""
    with _open(model, 512, n_threads) as llm:
        return llm.embed(texts, pooling=pooling, normalize=normalize, batch_size=batch_size, truncate=truncate)


def _open(model: ModelRef, n_ctx: int, n_threads: int | None) -> ContextManager[Llama]:
    if isinstance(model, Llama):
        return nullcontext(model)
    return Llama(model, n_ctx=n_ctx, n_threads=n_threads)
