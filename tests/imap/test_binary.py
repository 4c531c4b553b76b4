"""BINARY (RFC 3516): FETCH BINARY[...], BINARY.PEEK[...] and BINARY.SIZE[...] answer a part's
content with its transfer encoding undone (a literal8 when it holds NUL), APPEND takes literal8
(also LITERAL+'s ~{n+}), and a part that cannot be decoded answers NO [UNKNOWN-CTE]."""

from __future__ import annotations

import base64
import re

from tests.imap.helpers import MULTIPART, append, appenduid, fetches, flags_of
from tests.transcript import Response, Transcript

PAYLOAD = bytes(range(256)) * 4  # every octet, NUL and CR/LF included

ENCODED = (
    b"From: alice@example.test\r\n"
    b"Subject: Encoded parts\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe, a long line that is =\r\n"
    b"soft-broken.\r\n"
    b"--B\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n") + b"--B\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"--B\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC=AwQ\r\n"
    b"--B--\r\n"
)


def item(r: Response, name: bytes) -> bytes:
    """The value of one FETCH item (a literal's content, or the atom/number) of message 1."""
    (text,) = fetches(r).values()
    m = re.search(re.escape(name) + rb" (~?\{(\d+)\}\r\n)?", text)
    assert m is not None, text
    if m.group(1) is None:
        return text[m.end() :].split(b" ", 1)[0].rstrip(b")")
    return text[m.end() : m.end() + int(m.group(2))]


def test_decoded_parts_and_sizes(imap: Transcript) -> None:
    append(imap, ENCODED)
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert item(r, b"BINARY[1]") == "Grüße, a long line that is soft-broken.".encode()
    assert int(item(r, b"BINARY.SIZE[1]")) == len(
        "Grüße, a long line that is soft-broken.".encode()
    )
    r = imap.ok("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])")
    # Content with NUL goes as a literal8.
    assert b"BINARY[2] ~{%d}\r\n" % len(PAYLOAD) in r.untagged[0]
    assert item(r, b"BINARY[2]") == PAYLOAD
    assert int(item(r, b"BINARY.SIZE[2]")) == len(PAYLOAD)
    r = imap.ok("FETCH 1 (BINARY.PEEK[2]<256.10>)")
    assert item(r, b"BINARY[2]<256>") == bytes(range(10))
    # The whole message and a multipart are not decoded.
    r = imap.ok("FETCH 1 (BINARY.PEEK[] BINARY.SIZE[])")
    assert item(r, b"BINARY[]") == ENCODED
    assert int(item(r, b"BINARY.SIZE[]")) == len(ENCODED)
    assert b"BINARY[9] NIL" in imap.ok("FETCH 1 BINARY.PEEK[9]").untagged[0]


def test_quoted_printable_as_rfc_2045_has_it(imap: Transcript) -> None:
    # Trailing white space is transport padding; "=" followed by it is still a soft break.
    raw = (
        b"From: alice@example.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"hello  \r\nfoo\t= \r\nbar =3d=3D=xx\r\nend="
    )
    append(imap, raw)
    imap.ok("SELECT INBOX")
    assert (
        item(imap.ok("FETCH 1 BINARY.PEEK[1]"), b"BINARY[1]") == b"hello\r\nfoo\tbar ===xx\r\nend"
    )


def test_binary_sets_seen_and_peek_does_not(imap: Transcript) -> None:
    append(imap, MULTIPART)
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 (BINARY.PEEK[2] FLAGS)")
    assert item(r, b"BINARY[2]") == b"\x00\x01\x02\x03"
    assert "\\Seen" not in flags_of(fetches(r)[1])
    r = imap.ok("FETCH 1 BINARY[1]")
    assert item(r, b"BINARY[1]") == b"Hello part one."
    assert "\\Seen" in flags_of(fetches(r)[1])


def test_unknown_or_broken_encoding_is_no_unknown_cte(imap: Transcript) -> None:
    append(imap, ENCODED)
    imap.ok("SELECT INBOX")
    imap.no("FETCH 1 BINARY.PEEK[3]", code="UNKNOWN-CTE")
    imap.no("FETCH 1 BINARY.SIZE[4]", code="UNKNOWN-CTE")
    # BODY still gives the bytes as stored.
    assert b"begin 644 x" in imap.ok("FETCH 1 BODY.PEEK[3]").untagged[0]


def test_big_part_is_decoded(imap: Transcript) -> None:
    # Above the size decoded in a worker thread (fetch.BIG_MESSAGE).
    blob = PAYLOAD * 400
    raw = (
        b"From: alice@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(blob).replace(b"\n", b"\r\n")
    )
    append(imap, raw)
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert int(item(r, b"BINARY.SIZE[1]")) == len(blob)
    assert item(r, b"BINARY[1]") == blob


def test_append_literal8(imap: Transcript) -> None:
    raw = (
        b"From: alice@example.test\r\nSubject: raw\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        + PAYLOAD
    )
    # Synchronising: the server says "+" first.
    imap.send(b"b1 APPEND INBOX ~{%d}\r\n" % len(raw))
    assert imap.read_line().startswith(b"+")
    imap.send(raw + b"\r\n")
    first = appenduid(imap.finish("b1"))[1][0]
    # LITERAL+: no wait.
    imap.send(b"b2 APPEND INBOX (\\Seen) ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
    r = imap.finish("b2")
    assert r.status == "OK", r
    assert appenduid(r)[1][0] == first + 1
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1:2 (BINARY.PEEK[1] BINARY.SIZE[1])")
    for text in fetches(r).values():
        assert b"BINARY.SIZE[1] %d" % len(PAYLOAD) in text
        assert b"~{%d}\r\n" % len(PAYLOAD) + PAYLOAD in text
    # Stored re-encoded as base64: BODY[...] answers 7-bit text, never NUL or bare line ends.
    body = item(imap.ok("FETCH 1 BODY.PEEK[1]"), b"BODY[1]")
    assert base64.b64decode(body) == PAYLOAD
    assert b"Content-Transfer-Encoding: base64" in item(
        imap.ok("FETCH 1 BODY.PEEK[1.MIME]"), b"BODY[1.MIME]"
    )


def test_literal8_only_for_message_data(imap: Transcript) -> None:
    imap.send(b"b1 CREATE ~{3+}\r\nabc\r\n")
    r = imap.finish("b1")
    assert r.status == "BAD", r
    assert b"literal8" in r.tagged, r


def test_malformed_binary_fetches_are_bad(imap: Transcript) -> None:
    append(imap, MULTIPART)
    imap.ok("SELECT INBOX")
    for command in (
        "FETCH 1 BINARY",
        "FETCH 1 BINARY[1.TEXT]",
        "FETCH 1 BINARY[HEADER]",
        "FETCH 1 BINARY.SIZE.PEEK[1]",
        "FETCH 1 BINARY.SIZE[1]<0.5>",
        "FETCH 1 BINARY[1]<0>",
        "FETCH 1 BINARY[0]",
        "FETCH 1 BINARY[1",
    ):
        r = imap.bad(command)
        assert len(r.tagged.split(b" ", 2)[2]) > 3, r  # a reason comes with it
