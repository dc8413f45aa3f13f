"""GGUF files read with ggml's gguf.h, tensor data mmapped."""

import os
from typing import Any

import numpy.typing


class GGUFFile:
    """
    A GGUF file opened read-only: metadata, tensor infos, and zero-copy tensor data.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """
        Parse the header (FileNotFoundError / ModelLoadError on bad files) and mmap the file.
        """

    def close(self) -> None:
        """Release the file. Idempotent; deferred while tensor views are alive."""

    @property
    def closed(self) -> bool:
        """True after close()."""

    def __enter__(self) -> GGUFFile: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

    @property
    def path(self) -> str:
        """The file."""

    @property
    def version(self) -> int:
        """GGUF format version."""

    @property
    def alignment(self) -> int:
        """Tensor data alignment."""

    @property
    def data_offset(self) -> int:
        """File offset of the tensor data."""

    @property
    def metadata(self) -> dict[str, Any]:
        """
        Every key/value with its Python type (int, float, bool, str, or a list of them).
        """

    def value_type(self, key: str) -> str:
        """The GGUF type name of a key, e.g. 'u32' or 'arr[str]'."""

    @property
    def tensors(self) -> list[tuple[str, int, list[int], int, int]]:
        """
        Tensor infos: (name, ggml_type, numpy-order shape, offset in the data section, nbytes).
        """

    def tensor_data(self, name: str) -> numpy.typing.NDArray[Any]:
        """
        Zero-copy read-only view of a tensor's data: typed for float/int tensors, uint8
        rows (n_rows, row_bytes) for block-quantized ones.
        """
