"""UTF-8-safe decoding of token pieces (a piece may end inside a character)."""

from __future__ import annotations

import codecs


class PieceDecoder:
    """Decodes token pieces (bytes) into text without splitting a UTF-8 character.

    A piece may end in the middle of a multi-byte character; those bytes are held
    until the next piece completes it. Invalid bytes become U+FFFD.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
