"""
libmtmd (llama.cpp's tools/mtmd): images and audio for multimodal models.
"""

from collections.abc import Sequence
import enum
import os

import numpy
import numpy.typing

import llamanb.core


def default_marker() -> str:
    """The media marker tokenize() looks for by default ("<__media__>")."""

class ChunkType(enum.IntEnum):
    """mtmd_input_chunk_type: what a chunk holds."""

    TEXT = 0

    IMAGE = 1

    AUDIO = 2

class InputChunk:
    """mtmd_input_chunk: text tokens, or an image or audio clip's tokens."""

    @property
    def type(self) -> ChunkType:
        """TEXT, IMAGE or AUDIO."""

    @property
    def n_tokens(self) -> int:
        """Tokens (KV-cache cells) the chunk takes."""

    @property
    def n_pos(self) -> int:
        """Positions it advances (n_tokens, except for M-RoPE media)."""

    @property
    def id(self) -> str | None:
        """
        The media's id (its bitmap's), or None for text and bitmaps without one.
        """

    @property
    def tokens(self) -> numpy.typing.NDArray[numpy.int32]:
        """A text chunk's token ids (a copy); empty for media."""

    def __repr__(self) -> str: ...

class InputChunks:
    """mtmd_input_chunks: the result of MtmdContext.tokenize()."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> InputChunk:
        """Chunk i (it keeps these chunks alive)."""

    @property
    def n_tokens(self) -> int:
        """Tokens of all chunks (KV-cache cells)."""

    @property
    def n_pos(self) -> int:
        """Positions of all chunks."""

class MtmdContextParams:
    """mtmd_context_params, with libmtmd's defaults."""

    def __init__(self) -> None: ...

    @property
    def use_gpu(self) -> bool:
        """Run the projector on the GPU (when one is compiled in)."""

    @use_gpu.setter
    def use_gpu(self, arg: bool, /) -> None: ...

    @property
    def print_timings(self) -> bool:
        """Log encode timings."""

    @print_timings.setter
    def print_timings(self, arg: bool, /) -> None: ...

    @property
    def n_threads(self) -> int:
        """Threads for the projector's encode."""

    @n_threads.setter
    def n_threads(self, arg: int, /) -> None: ...

    @property
    def flash_attn_type(self) -> llamanb.core.FlashAttnType:
        """Flash attention in the projector."""

    @flash_attn_type.setter
    def flash_attn_type(self, arg: llamanb.core.FlashAttnType, /) -> None: ...

    @property
    def warmup(self) -> bool:
        """Run a warmup encode when loading."""

    @warmup.setter
    def warmup(self, arg: bool, /) -> None: ...

    @property
    def image_min_tokens(self) -> int:
        """Fewest tokens per image (dynamic-resolution models; -1: the file's)."""

    @image_min_tokens.setter
    def image_min_tokens(self, arg: int, /) -> None: ...

    @property
    def image_max_tokens(self) -> int:
        """Most tokens per image (dynamic-resolution models; -1: the file's)."""

    @image_max_tokens.setter
    def image_max_tokens(self, arg: int, /) -> None: ...

    @property
    def batch_max_tokens(self) -> int:
        """Most output tokens of a media batch encode."""

    @batch_max_tokens.setter
    def batch_max_tokens(self, arg: int, /) -> None: ...

    @property
    def media_marker(self) -> str:
        """The text tokenize() replaces by each bitmap, in order."""

    @media_marker.setter
    def media_marker(self, arg: str, /) -> None: ...

class Bitmap:
    """
    mtmd_bitmap: a decoded image (RGB, row-major) or audio clip (PCM float32 at the
    projector's sample rate). Immutable; its id (if any) is given at creation.
    """

    def __init__(self, nx: int, ny: int, data: bytes, id: str | None = None) -> None:
        """An image from nx*ny*3 bytes of RGB (rows top to bottom)."""

    @staticmethod
    def from_array(array: numpy.typing.NDArray[numpy.uint8], id: str | None = None) -> Bitmap:
        """
        An image from an H x W x 3 uint8 RGB array (libmtmd keeps its own copy).
        """

    @staticmethod
    def from_audio(samples: numpy.typing.NDArray[numpy.float32], id: str | None = None) -> Bitmap:
        """
        Audio from mono PCM float32 samples at the projector's sample rate (MtmdContext.audio_sample_rate).
        """

    @property
    def nx(self) -> int:
        """Width (audio: samples)."""

    @property
    def ny(self) -> int:
        """Height (audio: 1)."""

    @property
    def is_audio(self) -> bool:
        """Whether this is audio."""

    @property
    def n_bytes(self) -> int:
        """Size of the data."""

    @property
    def id(self) -> str | None:
        """
        The id chunks of this bitmap carry (files and bytes: their SHA-256), or None.
        """

    @property
    def data(self) -> numpy.typing.NDArray[numpy.uint8] | numpy.typing.NDArray[numpy.float32]:
        """
        A read-only view of the pixels (H x W x 3 uint8) or samples (float32); it keeps the bitmap alive.
        """

    def __repr__(self) -> str: ...

class MtmdContext:
    """
    libmtmd's context: a multimodal projector (mmproj GGUF) for a text Model, which it
    keeps open. Encodes and evaluations release the GIL and run one at a time.
    """

    def __init__(self, mmproj_path: str | os.PathLike[str], model: llamanb.core.Model, params: MtmdContextParams | None = None) -> None:
        """
        Load a projector for `model`. FileNotFoundError if there is no file; ModelLoadError
        if it is not an mmproj GGUF llama.cpp can load, or its width does not match the model.
        """

    def close(self) -> None:
        """Free the projector. Idempotent."""

    @property
    def closed(self) -> bool:
        """True after close()."""

    def __enter__(self) -> MtmdContext: ...

    def __exit__(self, exc_type: object | None, exc: object | None, tb: object | None) -> None: ...

    @property
    def model(self) -> llamanb.core.Model:
        """The text model."""

    @property
    def path(self) -> str:
        """The projector file."""

    @property
    def n_embd(self) -> int:
        """Width of an encoded media token."""

    @property
    def supports_vision(self) -> bool:
        """Whether the projector takes images."""

    @property
    def supports_audio(self) -> bool:
        """Whether the projector takes audio."""

    @property
    def audio_sample_rate(self) -> int:
        """Sample rate audio must have, in Hz (-1 without audio support)."""

    @property
    def uses_mrope(self) -> bool:
        """
        Whether the text model uses M-RoPE (media chunks then take fewer positions than tokens).
        """

    @property
    def marker(self) -> str:
        """The media marker tokenize() replaces by bitmaps."""

    def bitmap_from_file(self, path: str | os.PathLike[str], id: str | None = None, max_pixels: int = 0) -> Bitmap:
        """
        Decode an image or audio file (GIL released); its id is its SHA-256 unless given.
        ValueError if it is not one llama.cpp reads, or (max_pixels > 0) an image larger than
        max_pixels, checked from its header before decoding.
        """

    def bitmap_from_bytes(self, data: bytes, id: str | None = None, max_pixels: int = 0) -> Bitmap:
        """
        Decode an image or audio file's bytes (GIL released); its id is their SHA-256 unless given.
        max_pixels > 0 refuses larger images from their header, before decoding.
        """

    def tokenize(self, text: str, bitmaps: Sequence[Bitmap], add_special: bool = True, parse_special: bool = True) -> InputChunks:
        """
        mtmd_tokenize: split `text` at each media marker into text and media chunks, the
        bitmaps in order (GIL released). ValueError if markers and bitmaps differ in number
        or the projector cannot take a bitmap (audio for a vision projector, ...).
        """

    def tokenize_parts(self, parts: Sequence[str | tuple[str, bool] | Bitmap], add_special: bool = False) -> InputChunks:
        """
        mtmd_tokenize_from_parts: text parts and bitmaps in order, no markers. A str part is
        plain text; (text, True) parses special-token text. GIL released.
        """

    def encode_chunk(self, chunk: InputChunk) -> numpy.typing.NDArray[numpy.float32]:
        """
        Encode an image or audio chunk (GIL released): its embeddings, n_tokens x n_embd (a copy).
        """

    def eval_chunks(self, ctx: llamanb.core.Context, chunks: InputChunks, n_past: int, seq_id: int = 0, n_batch: int = 0, logits_last: bool = True) -> int:
        """
        mtmd_helper_eval_chunks: decode text chunks and encode + decode media chunks into
        sequence seq_id of ctx from position n_past; returns the next position. GIL released.
        n_batch 0 takes the context's. Raises ContextFullError / AbortedError as decode() does.
        """

    def eval_chunk(self, ctx: llamanb.core.Context, chunk: InputChunk, n_past: int, seq_id: int = 0, n_batch: int = 0, logits_last: bool = False) -> int:
        """
        mtmd_helper_eval_chunk_single: one chunk, as eval_chunks(); returns the next position.
        """
