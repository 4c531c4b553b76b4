"""What is fuzzed, shared by the fuzz tests (hypothesis, tests/fuzz/) and the benchmark's long
run (bench/fuzz.py): for each target a check that raises AssertionError when the code under
test misbehaves on one input, seeds of real input, and a mutator.

- IMAP commands: ``check_request`` on framed chunks (``[line, literal, line, ...]``):
  parse_request returns a Request or raises ParseError with a short ASCII message, the tag it
  could read and no internal cause; what parses is usable downstream.
- MIME: ``check_message`` on message bytes: index_message never raises, ENVELOPE, BODY and
  BODYSTRUCTURE follow RFC 3501 §7.4.2's grammar exactly (``check_envelope``,
  ``check_body``), and every leaf part's size is what its section holds.
- PROXY headers: ``check_proxy`` on the bytes a balancer sends first (async, over a real
  socket pair): the parser answers with a valid header or an invalid one, never raises.
"""

from __future__ import annotations

import asyncio
import random
import socket
from datetime import UTC, datetime
from typing import Any

from mailgate.imap.matching import matches, needs
from mailgate.imap.syntax.commands import parse_request, parse_tag
from mailgate.imap.syntax.values import (
    REV1,
    CopyMove,
    Dialect,
    Fetch,
    ParseError,
    Search,
    StoreFlags,
    UidExpunge,
)
from mailgate.mime.headers import normalize_crlf
from mailgate.mime.imapview import extract_section, index_message
from mailgate.proxy import read_header
from tests.mime.helpers import PIECES, leaf_sizes, mutate, parse_wire

# ---------------------------------------------------------------------------------------------
# IMAP commands

VALID_COMMANDS: list[list[bytes]] = [
    [b"a1 LOGIN {5}", b"alice", b" {3+}", b"key", b""],
    [b'a2 LOGIN "al\\"ice" secret'],
    [b"a3 AUTHENTICATE PLAIN AGFsaWNlAGtleQ=="],
    [b"a4 SELECT INBOX (CONDSTORE)"],
    [b"a5 EXAMINE Entw&APw-rfe"],
    [b"a6 CREATE Archive/2024"],
    [b"a7 RENAME {3}", b"old", b' "new"'],
    [b'a8 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("*" %) RETURN (CHILDREN STATUS (MESSAGES))'],
    [b'a9 LSUB "" *'],
    [b"b1 STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"],
    [
        b'b2 APPEND INBOX (\\Seen $x) " 1-Jan-2024 10:00:00 +0100" {5}',
        b"hello",
        b" {2}",
        b"hi",
        b"",
    ],
    [b"b3 SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM {4}", b"\xc3\xa4bc", b" NOT (SEEN 1:*)"],
    [b"b4 UID SEARCH OR OR HEADER X-A b SINCE 1-Jan-2024 LARGER 5 UID 3:* MODSEQ 5"],
    [b"b5 FETCH 1:*,7 (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (FROM TO)]<0.100>) (CHANGEDSINCE 3)"],
    [b"b6 UID FETCH 1 (BINARY.PEEK[1]<0.1> BINARY.SIZE[2] BODY[1.MIME] RFC822.SIZE)"],
    [b"b7 STORE 1:3 (UNCHANGEDSINCE 4) +FLAGS.SILENT (\\Deleted foo)"],
    [b"b8 UID MOVE 1:* Trash"],
    [b"b9 UID EXPUNGE 4:2"],
    [b'c1 ID ("name" "x" "version" NIL)'],
    [b"c2 ENABLE CONDSTORE"],
    [b"c3 IDLE"],
    [b"c4 FETCH 2 FULL"],
    [b"c5 UID SORT RETURN (MIN ALL) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 OR 1:3 FROM x"],
    [b"c6 THREAD REFERENCES US-ASCII NOT DELETED"],
    [b"c7 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:9 1:9)))"],
    [b"c8 SEARCH RETURN (SAVE) OLDER 60 YOUNGER 5 SAVEDBEFORE 1-Feb-2024 EMAILID M6d99ac3"],
    [b"c9 UID FETCH $ (PREVIEW (LAZY) EMAILID THREADID SAVEDATE)"],
    [b"d1 APPEND Drafts CATENATE (URL /INBOX;UIDVALIDITY=1/;UID=2 TEXT {3}", b"abc", b")"],
    [b'd2 SETQUOTA "" (STORAGE 512)'],
    [b"d3 GETQUOTAROOT INBOX"],
    [b"d4 COMPRESS DEFLATE"],
    [b'd5 LIST "" % RETURN (SPECIAL-USE)'],
    [b"d6 UID COPY 1,3:5,9 Archive"],
]
# Valid only once UTF-8 is enabled (UTF8=ACCEPT or IMAP4rev2).
VALID_UTF8_COMMANDS: list[list[bytes]] = [
    [b"d1 APPEND INBOX UTF8 (~{5}", b"hello", b")"],
    [b"d2 APPEND INBOX CATENATE (UTF8 (~{2}", b"hi", b") TEXT {1}", b"x", b")"],
    ['d3 CREATE "Entwürfe/R&D"'.encode()],
    ['d4 LIST "" "日本%"'.encode()],
]
NOISE = [
    b" ",
    b"(",
    b")",
    b'"',
    b"\\",
    b"{",
    b"}",
    b"{3}",
    b"{0}",
    b"~{1}",
    b"[",
    b"]",
    b"<",
    b">",
    b".",
    b":",
    b",",
    b"*",
    b"%",
    b"$",
    b"&",
    b"-",
    b"+",
    b"=",
    b"0",
    b"4294967296",
    b"9" * 30,
    b"NIL",
    b"OR ",
    b"NOT ",
    b"(((",
    b"UID ",
    b"BODY[",
    b"HEADER.FIELDS (",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"\xc3\xa4",
    b"&AOQ-",
    b"&",
    b"\r\n",
]
COMMAND_WORDS = [
    b"LOGIN ",
    b"SELECT ",
    b"LIST ",
    b"STATUS x ",
    b"APPEND x ",
    b"SEARCH ",
    b"UID SEARCH ",
    b"SORT ",
    b"UID SORT (DATE) UTF-8 ",
    b"THREAD REFS ",
    b"FETCH 1 ",
    b"UID FETCH * ",
    b"STORE 1 ",
    b"COPY 1 ",
    b"ID ",
    b"ENABLE ",
    b"AUTHENTICATE ",
]
SEARCH_WORDS = [
    b"ALL ",
    b"SEEN ",
    b"FROM x ",
    b"HEADER a b ",
    b"BEFORE 1-Jan-2020 ",
    b"1:* ",
    b"LARGER 1 ",
    b"MODSEQ 1 ",
    b"KEYWORD k ",
    b"(FLAGS ",
    b"BODY.PEEK[HEADER] ",
    b"+FLAGS ",
    b"RETURN (MIN) ",
    b"CHARSET UTF-8 ",
    b"(REVERSE ",
    b"ARRIVAL) ",
    b"UTF-8 ",
]


def mutate_command(rng: random.Random, chunks: list[bytes]) -> list[bytes]:
    """Up to four byte flips, NOISE insertions, cuts, repeats, truncations, shortened literals
    or lines split into literals."""
    chunks = list(chunks)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chunks))
        data = bytearray(chunks[i])
        op = rng.randrange(7)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(NOISE)
        elif op == 2:
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            data[pos:pos] = data[rng.randint(0, len(data)) :][: rng.randint(1, 20)]
        elif op == 4:
            del data[pos:]
        elif op == 5 and i % 2 == 0 and i + 1 < len(chunks):
            chunks[i + 1] = chunks[i + 1][: rng.randint(0, len(chunks[i + 1]))]
        elif op == 6 and i % 2 == 0:  # split a line into a literal
            n = rng.randint(0, 5)
            head = bytes(data[:pos]) + b"{%d%s}" % (n, rng.choice([b"", b"+"]))
            literal = bytes(rng.randrange(256) for _ in range(n))
            chunks[i : i + 1] = [head, literal, bytes(data[pos:])]
            continue
        chunks[i] = bytes(data)
    if rng.random() < 0.02:
        chunks = chunks[: rng.randint(0, len(chunks))]
    return chunks


def random_command(rng: random.Random) -> list[bytes]:
    """A command word and up to 12 pieces of grammar, NOISE or random bytes."""
    parts = [rng.choice([b"a1 ", b"* ", b"x "]), rng.choice(COMMAND_WORDS)]
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.3:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))))
        else:
            parts.append(rng.choice(NOISE + SEARCH_WORDS))
    return [b"".join(parts)]


class _AnyMessage:
    seq, uid, size, modseq = 3, 30, 1000, 9
    flags = frozenset({"\\Seen", "$Junk"})
    internaldate = saved_date = datetime(2024, 1, 1, 12, tzinfo=UTC)
    sent_date = None
    email_id, thread_id = "M6d99ac3", "T6d99ac3"

    def header_values(self, name: str) -> list[str]:
        return ["x"]

    def header_text(self) -> str:
        return "From: x\r\n"

    def body_text(self) -> str:
        return "hello"


def check_request(chunks: list[bytes], dialect: Dialect = REV1) -> None:
    """Parsed, or refused with the parser's own short error, in a session's `dialect`."""
    failure: ParseError | None = None
    try:
        request = parse_request(chunks, dialect)
    except ParseError as exc:
        failure = exc
    except Exception as exc:  # pragma: no cover - the assertion is the report
        raise AssertionError(f"{type(exc).__name__} escaped for {chunks!r}") from exc
    if failure is not None:
        assert failure.__cause__ is None, f"internal error {failure.__cause__!r} for {chunks!r}"
        assert failure.tag == parse_tag(chunks), chunks
        assert failure.message.isascii(), chunks
        assert failure.message.isprintable(), chunks
        assert len(failure.message) < 80, chunks
        return
    # Whatever parses must also be usable downstream without surprises.
    value = request.args
    if isinstance(value, Fetch):
        for item in value.items:
            item.response_name()
        value.sequence.resolve(5)
    elif isinstance(value, Search):
        needs(value.key)
        matches(value.key, _AnyMessage(), 5, 50)
    elif isinstance(value, StoreFlags | CopyMove | UidExpunge):
        value.sequence.resolve(0)
        value.sequence.contains(3, 5)


# ---------------------------------------------------------------------------------------------
# MIME: ENVELOPE and BODYSTRUCTURE (RFC 3501 §7.4.2)


def _nstring(value: Any) -> bool:
    return value is None or isinstance(value, bytes)


def _params(value: Any) -> bool:
    """body-fld-param: "(" string SP string *(SP string SP string) ")" / nil"""
    if value is None:
        return True
    return (
        isinstance(value, list)
        and len(value) >= 2
        and len(value) % 2 == 0
        and all(isinstance(v, bytes) for v in value)
    )


def _extension(items: list[Any]) -> None:
    """body-fld-dsp, body-fld-lang, body-fld-loc: what follows md5 or a multipart's params."""
    assert len(items) == 3, items
    disposition, language, location = items
    assert disposition is None or (
        isinstance(disposition, list)
        and len(disposition) == 2
        and isinstance(disposition[0], bytes)
        and _params(disposition[1])
    ), disposition
    assert language is None or (
        isinstance(language, list) and language and all(isinstance(t, bytes) for t in language)
    ), language
    assert _nstring(location), location


def check_envelope(envelope: Any) -> None:
    """envelope = "(" env-date SP env-subject SP env-from SP env-sender SP env-reply-to SP
    env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")"."""
    assert isinstance(envelope, list), envelope
    assert len(envelope) == 10, envelope
    for i in (0, 1, 8, 9):
        assert _nstring(envelope[i]), envelope[i]
    for addresses in envelope[2:8]:
        if addresses is None:
            continue
        assert isinstance(addresses, list), addresses
        assert addresses, "an empty address list is NIL"
        for address in addresses:  # "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"
            assert isinstance(address, list), address
            assert len(address) == 4, address
            assert all(_nstring(part) for part in address), address


def check_body(body: Any, *, extended: bool) -> None:
    """body (RFC 3501 §9), with body-ext-1part / body-ext-mpart when ``extended``: exactly the
    fields mailgate writes (Dovecot's full form)."""
    assert isinstance(body, list), body
    assert body, "an empty body"
    if isinstance(body[0], list):  # body-type-mpart
        children = 0
        while children < len(body) and isinstance(body[children], list):
            check_body(body[children], extended=extended)
            children += 1
        rest = body[children:]
        assert rest, body
        assert isinstance(rest[0], bytes), body  # media-subtype
        if extended:
            assert len(rest) == 5, rest
            assert _params(rest[1]), rest
            _extension(rest[2:])
        else:
            assert len(rest) == 1, rest
        return
    assert len(body) >= 7, body
    mtype, subtype, params, cid, description, encoding, size = body[:7]
    assert isinstance(mtype, bytes), body
    assert isinstance(subtype, bytes), body
    assert _params(params), body
    assert _nstring(cid), body
    assert _nstring(description), body
    assert isinstance(encoding, bytes), body
    assert isinstance(size, int), body
    assert size >= 0, body
    rest = body[7:]
    if (mtype.lower(), subtype.lower()) == (b"message", b"rfc822"):
        assert len(rest) >= 3, body
        check_envelope(rest[0])
        check_body(rest[1], extended=extended)
        assert isinstance(rest[2], int), body
        rest = rest[3:]
    elif mtype.lower() == b"text":
        assert rest, body
        assert isinstance(rest[0], int), body
        rest = rest[1:]
    if extended:
        assert len(rest) == 4, rest
        assert _nstring(rest[0]), rest  # body-fld-md5, then the extension
        _extension(rest[1:])
    else:
        assert not rest, rest


def check_message(data: bytes) -> None:
    raw = normalize_crlf(data)
    index = index_message(raw)
    for wire in (index.envelope, index.body, index.bodystructure):
        assert b"\x00" not in wire
    check_envelope(parse_wire(index.envelope))
    check_body(parse_wire(index.body), extended=False)
    structure = parse_wire(index.bodystructure)
    check_body(structure, extended=True)
    for path, size in leaf_sizes(structure).items():
        part = extract_section(raw, index.parts, path, "")
        assert part is not None, path
        assert len(part) == size, path


def _crlf(text: bytes) -> bytes:
    return normalize_crlf(text)


MESSAGES: list[bytes] = [
    _crlf(
        b"Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
        b"From: Fred Foobar <foobar@Blurdybloop.example>\n"
        b"Subject: afternoon meeting\n"
        b"To: mooch@owatagu.example, Group: a@b.example, c@d.example;\n"
        b"Message-Id: <B27397-0100000@Blurdybloop.example>\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
        b"\n"
        b"Hello Joe, do you think we can meet at 3:30 tomorrow?\n"
    ),
    _crlf(
        b"From: =?utf-8?q?Al=C3=AFce?= <alice@example.com>\n"
        b"To: bob@example.org\n"
        b"Subject: =?iso-8859-1?b?cmFwcG9ydA==?=\n"
        b'Content-Type: multipart/mixed; boundary="outer"\n'
        b"\n"
        b"preamble\n"
        b"--outer\n"
        b"Content-Type: multipart/alternative; boundary=inner\n"
        b"\n"
        b"--inner\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: quoted-printable\n"
        b"\n"
        b"caf=C3=A9\n"
        b"--inner\n"
        b"Content-Type: text/html\n"
        b"\n"
        b"<p>caf&eacute;</p>\n"
        b"--inner--\n"
        b"--outer\n"
        b"Content-Type: application/pdf; name*0*=utf-8''r%C3%A9; name*1=port.pdf\n"
        b'Content-Disposition: attachment; filename="report.pdf"\n'
        b"Content-Language: en, fr\n"
        b"Content-Transfer-Encoding: base64\n"
        b"\n"
        b"JVBERi0xLjQK\n"
        b"--outer--\n"
        b"epilogue\n"
    ),
    _crlf(
        b"From: bob@example.org\n"
        b"Subject: Fwd: report\n"
        b"Content-Type: message/rfc822\n"
        b"\n"
        b"From: carol@example.net\n"
        b"Subject: inner\n"
        b"Content-Type: multipart/digest; boundary=d\n"
        b"\n"
        b"--d\n"
        b"\n"
        b"From: dave@example.net\n"
        b"\n"
        b"digest part\n"
        b"--d--\n"
    ),
]
# tests/mime's pieces, and this corpus's own boundaries and a header name.
MIME_PIECES = [
    *PIECES,
    b"--outer",
    b"--inner--",
    b"Content-Type: multipart/mixed; boundary=outer\r\n",
    b"From: ",
]


def mutate_message(rng: random.Random, data: bytes) -> bytes:
    """Up to four cuts, MIME_PIECES insertions, repeats, junk bytes or truncations."""
    return mutate(rng, data, MIME_PIECES)


# ---------------------------------------------------------------------------------------------
# PROXY protocol headers (v1 and v2), read as proxy.py reads them: straight off a socket


PROXY_HEADERS: list[bytes] = [
    b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 993\r\n",
    b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 465\r\n",
    b"PROXY UNKNOWN\r\n",
    # v2: signature, PROXY over TCP/IPv4, 12 address bytes.
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x03\xe1",
    # v2 LOCAL (a health check), no addresses.
    b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00",
]
PROXY_PIECES = [b"PROXY ", b"TCP4 ", b"TCP6 ", b" ", b"\r\n", b"\n", b":", b".", b"\xff", b"\x00"]


async def check_proxy(data: bytes) -> bool | None:
    """The client sends `data` and then EOF; reading the header ends with a header (valid or
    not: the answer), or an end-of-file or OS error (None), as proxy.py expects, and never
    anything else."""
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        theirs.setblocking(False)
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        try:
            async with asyncio.timeout(5):
                header = await read_header(ours)
        except (OSError, EOFError):
            return None
        except TimeoutError as exc:  # pragma: no cover - the assertion is the report
            raise AssertionError(f"the parser waited past EOF on {data!r}") from exc
        except Exception as exc:  # pragma: no cover - the assertion is the report
            raise AssertionError(f"{type(exc).__name__} escaped for {data!r}") from exc
        if header.valid:
            assert header.protocol is not None, data
        else:
            assert header.error, data
        return bool(header.valid)
    finally:
        ours.close()
        theirs.close()
