"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK, both directions are raw deflate inside TLS.

Memory is the design constraint: an IDLE session costs under 32 KiB, and zlib's defaults cost
about 260 KiB for a compressor and 39 KiB for a decompressor. So:

- Output: every batch of responses (one write) is compressed by a fresh, small compressor and
  ends with Z_SYNC_FLUSH, so nothing waits in it (IDLE pushes arrive whole) and an idle session
  holds no compressor at all. A fresh compressor is a valid continuation of the stream: after a
  sync flush the client's decompressor is at a block boundary, and the new blocks refer to no
  history they do not carry. The price is that one batch cannot refer back into another.
- Input: the client picks its window (up to 32 KiB), so the decompressor must keep one while
  the client sends. Once the client goes quiet at a block boundary (after its sync flush), the
  decompressor is dropped and only what it would need again is kept: the last 32 KiB of what
  the client sent (kept as it arrives), which for an IDLE session is its few commands. The next
  bytes revive it with that history as its dictionary (raw deflate allows a preset dictionary
  for exactly this).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from mailgate.imap.errors import no
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request

# RFC 4978 §4: the window is up to the sender; ours is 4 KiB (enough for the repetition in a
# header sync) with a small hash table: about 38 KiB while a batch is compressed, then freed.
DEFLATE_WBITS = 12
DEFLATE_MEMLEVEL = 5
DEFLATE_LEVEL = 6  # zlib's and Dovecot's default
# The client may use any window up to 2**15; raw deflate is negative wbits.
INFLATE_WBITS = 15
HISTORY = 1 << INFLATE_WBITS
# At most this much plain text is made from the client's bytes before the session has read it:
# a small compressed command cannot become gigabytes in a buffer (a decompression bomb).
INFLATE_CHUNK = 64 * 1024
# A final, empty block with fixed codes: a decompressor at a block boundary (on a byte boundary,
# no bits held back) reads it as the end of the stream and makes no output; one in the middle
# of anything else cannot.
_END_OF_STREAM = b"\x03\x00"


def deflate(data: Any) -> bytes:
    """One batch of responses, compressed and sync-flushed."""
    compressor = zlib.compressobj(
        DEFLATE_LEVEL, zlib.DEFLATED, -DEFLATE_WBITS, DEFLATE_MEMLEVEL, zlib.Z_DEFAULT_STRATEGY
    )
    out = [compressor.compress(piece) for piece in data]
    out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)


class Deflating:
    """The session's transport once COMPRESS is active: writes are compressed, the rest (TLS,
    producers, closing) is the transport's own."""

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(deflate((data,)))

    def writeSequence(self, data: list[bytes]) -> None:
        self.transport.write(deflate(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class Inflating:
    """The client's compressed byte stream, turned back into plain text."""

    __slots__ = ("_history", "_mid_block", "_zlib")

    def __init__(self) -> None:
        self._zlib: Any = zlib.decompressobj(-INFLATE_WBITS)
        # The last HISTORY bytes of plain text: what a revived decompressor needs.
        self._history = b""
        # rest() found the stream mid-block: it need not look again before more data comes.
        self._mid_block = False

    def inflate(self, data: bytes) -> Iterator[bytes]:
        """Plain text in chunks of at most INFLATE_CHUNK. A caller that stops early (its reader
        paused) gets the rest from the next call, with or without new data.

        Raises zlib.error for a stream that is not valid deflate, or that ends (RFC 4978 has
        no end: compression lasts as long as the connection)."""
        if self._zlib is None:
            if not data:
                yield b""  # a resume with nothing new: no need to wake the decompressor
                return
            self._zlib = (
                zlib.decompressobj(-INFLATE_WBITS, zdict=self._history)
                if self._history
                else zlib.decompressobj(-INFLATE_WBITS)
            )
        z = self._zlib
        self._mid_block = False
        data = z.unconsumed_tail + data
        while True:
            plain = z.decompress(data, INFLATE_CHUNK)
            if z.eof:
                raise zlib.error("the client ended the compressed stream")
            if plain:
                self._history = (self._history + plain)[-HISTORY:]
            # Even empty: the caller's reader may hold plain text that waited for a resume.
            yield plain
            data = z.unconsumed_tail
            if not data:
                return

    def rest(self) -> None:
        """Drop the decompressor if the client's stream is at a block boundary (the history
        is all a new one needs)."""
        z = self._zlib
        if z is None or z.unconsumed_tail or self._mid_block:
            return
        probe = z.copy()
        try:
            at_boundary = not probe.decompress(_END_OF_STREAM) and probe.eof
        except zlib.error:
            at_boundary = False
        if not at_boundary or probe.unused_data:
            # Mid-block (a client that flushes partially, or one still sending): keep it.
            self._mid_block = True
            return
        self._zlib = None


@command("COMPRESS", LOGGED_IN)
async def compress(s: Session, request: Request) -> str:
    if s.compressing:
        # RFC 4978 §3: NO with COMPRESSIONACTIVE when the layer is already there.
        raise no("DEFLATE is already active", "COMPRESSIONACTIVE")
    # The OK goes out plain; everything after it, both ways, is compressed.
    s.after_reply = s.start_compression
    return "DEFLATE active"
