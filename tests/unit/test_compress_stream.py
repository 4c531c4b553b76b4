"""The byte stream under COMPRESS=DEFLATE (mailgate/imap/ext/compress.py), without sockets:
whatever way a client flushes and however its bytes are split, the plain text comes back
exactly, also across the moments the decompressor is dropped to save memory."""

from __future__ import annotations

import random
import zlib

import pytest

from mailgate.imap.ext.compress import INFLATE_CHUNK, Inflating, deflate


def commands(rng: random.Random, count: int) -> list[bytes]:
    # Repetitive, like IMAP: later commands refer back into earlier ones.
    return [
        b"a%d UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]) " % i
        + bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 5000)))
        + b"\r\n"
        for i in range(count)
    ]


@pytest.mark.parametrize("flush", [zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH, zlib.Z_PARTIAL_FLUSH])
@pytest.mark.parametrize("wbits", [9, 12, 15])
def test_round_trip_with_rests(flush: int, wbits: int) -> None:
    rng = random.Random(flush * 100 + wbits)
    client = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    inflating = Inflating()
    sent = received = b""
    for command in commands(rng, 200):
        sent += command
        wire = client.compress(command) + client.flush(flush)
        cut = rng.randint(0, len(wire))
        for part in (wire[:cut], wire[cut:]):
            received += b"".join(inflating.inflate(part))
            inflating.rest()  # also mid-command: it must only let go at a block boundary
    assert received == sent


def test_sync_flushed_stream_rests() -> None:
    """After a sync flush the decompressor goes, and an empty resume does not bring it back."""
    client = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflating = Inflating()
    assert b"".join(inflating.inflate(client.compress(b"a NOOP\r\n") + client.flush(2))) == (
        b"a NOOP\r\n"
    )
    inflating.rest()
    assert inflating._zlib is None
    assert list(inflating.inflate(b"")) == [b""]
    assert inflating._zlib is None
    again = client.compress(b"b NOOP\r\n") + client.flush(zlib.Z_SYNC_FLUSH)
    assert b"".join(inflating.inflate(again)) == b"b NOOP\r\n"


def test_output_is_chunked_and_resumable() -> None:
    """A small input that inflates big comes out INFLATE_CHUNK at a time; a caller that stops
    gets the rest on its next call."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    wire = bomb.compress(b"x" * (10 * INFLATE_CHUNK)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    inflating = Inflating()
    first = next(iter(inflating.inflate(wire)))
    assert len(first) == INFLATE_CHUNK
    rest = b"".join(inflating.inflate(b""))
    assert len(first) + len(rest) == 10 * INFLATE_CHUNK


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", zlib.compress(b"zlib header, not raw")])
def test_garbage_raises_zlib_error(data: bytes) -> None:
    with pytest.raises(zlib.error):
        b"".join(Inflating().inflate(data))


def test_end_of_stream_raises_zlib_error() -> None:
    client = zlib.compressobj(6, zlib.DEFLATED, -15)
    with pytest.raises(zlib.error):
        b"".join(Inflating().inflate(client.compress(b"a NOOP\r\n") + client.flush()))


def test_each_batch_stands_alone_in_one_stream() -> None:
    """Output batches come from fresh compressors; the client reads them as one stream."""
    client = zlib.decompressobj(-15)
    batches = [[b"* %d EXISTS\r\n" % i, b"* OK Still here\r\n"] for i in range(50)]
    for batch in batches:
        # Each batch is complete on arrival: nothing is held back in a compressor.
        assert client.decompress(deflate(batch)) == b"".join(batch)
