"""Commands read in a session's dialect (values.Dialect): what ENABLE UTF8=ACCEPT (RFC 6855) and
ENABLE IMAP4rev2 (RFC 9051) change in the grammar, and what stays as in IMAP4rev1."""

from __future__ import annotations

import pytest

from mailgate.imap.syntax.commands import parse_request
from mailgate.imap.syntax.utf7 import decode_mailbox
from mailgate.imap.syntax.values import (
    REV1,
    Append,
    CatenatePart,
    Dialect,
    Fetch,
    InvalidMailboxName,
    MailboxArg,
    ParseError,
    Search,
    Status,
    dialect,
)

UTF8_ACCEPT = dialect(True, False)  # utf8_accept, rev2
REV2 = dialect(False, True)


def parse(dialect: Dialect, *chunks: bytes) -> object:
    return parse_request(list(chunks), dialect).args


def error(dialect: Dialect, *chunks: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_request(list(chunks), dialect)
    return info.value


def test_dialects_are_shared_values() -> None:
    assert dialect(False, False) == REV1
    assert dialect(True, False) is UTF8_ACCEPT
    assert REV2.utf8
    assert not REV2.utf8_accept


@pytest.mark.parametrize(
    ("wire", "name"),
    [(b"R&D", "R&D"), (b"Entw&APw-rfe", "Entw&APw-rfe"), ("Entwürfe".encode(), "Entwürfe")],
)
def test_utf8_names_are_not_modified_utf7(wire: bytes, name: str) -> None:
    assert decode_mailbox(wire, utf8=True) == name
    args = parse(UTF8_ACCEPT, b'a CREATE "' + wire + b'"')
    assert args == MailboxArg(name)


def test_inbox_is_still_any_case() -> None:
    assert parse(REV2, b"a DELETE inbox") == MailboxArg("INBOX")


@pytest.mark.parametrize("wire", [b"\xff", b"a\x01", "a\u0085".encode()])
def test_utf8_names_with_bad_octets_or_controls_are_no(wire: bytes) -> None:
    with pytest.raises(InvalidMailboxName):
        decode_mailbox(wire, utf8=True)
    err = error(UTF8_ACCEPT, b"a SELECT {%d}" % len(wire), wire, b"")
    assert isinstance(err, InvalidMailboxName)
    assert err.code == "NONEXISTENT"


def test_quoted_strings_must_be_utf8_once_enabled() -> None:
    # RFC 6855 §3: BAD, not NO; IMAP4rev1 sessions keep their tolerance.
    err = error(UTF8_ACCEPT, b'a SEARCH SUBJECT "caf\xe9"')
    assert not isinstance(err, InvalidMailboxName)
    assert err.message == "Quoted string is not valid UTF-8"
    assert isinstance(parse(REV1, b'a CREATE "caf\xc3\xa9"'), MailboxArg)


def test_append_utf8_literal8() -> None:
    args = parse(UTF8_ACCEPT, b"a APPEND INBOX (\\Seen) UTF8 (~{5}", b"hello", b")")
    assert isinstance(args, Append)
    assert args.messages[0].data == b"hello"
    assert args.messages[0].flags == ("\\Seen",)
    args = parse(REV2, b"a APPEND INBOX CATENATE (UTF8 (~{2}", b"hi", b") TEXT {1}", b"x", b")")
    assert isinstance(args, Append)
    assert args.messages[0].catenate == (CatenatePart(text=b"hi"), CatenatePart(text=b"x"))
    # Not before ENABLE, and only a literal8 inside.
    error(REV1, b"a APPEND INBOX UTF8 (~{5}", b"hello", b")")
    error(UTF8_ACCEPT, b"a APPEND INBOX UTF8 ({5}", b"hello", b")")
    error(UTF8_ACCEPT, b"a APPEND INBOX UTF8 (~{5}", b"hello", b"")


def test_search_charset_after_utf8_accept() -> None:
    assert "UTF8=ACCEPT" in error(UTF8_ACCEPT, b"a SEARCH CHARSET UTF-8 ALL").message
    args = parse(UTF8_ACCEPT, 'a SEARCH SUBJECT "Grüße"'.encode())
    assert isinstance(args, Search)
    assert args.charset is None
    # IMAP4rev2 alone keeps CHARSET (RFC 9051 §6.4.4); SORT and THREAD take UTF-8 only after
    # UTF8=ACCEPT (errata 4029), and BAD rather than NO [BADCHARSET] for another.
    assert isinstance(parse(REV2, b"a SEARCH CHARSET UTF-8 ALL"), Search)
    assert error(UTF8_ACCEPT, b"a SORT (DATE) US-ASCII ALL").code is None
    assert error(REV1, b"a SORT (DATE) KOI8-R ALL").code == "BADCHARSET"
    assert error(UTF8_ACCEPT, b"a THREAD REFS KOI8-R ALL").code is None


@pytest.mark.parametrize(
    "line", [b"a SEARCH RECENT", b"a SEARCH NOT NEW", b"a UID SEARCH OR OLD SEEN"]
)
def test_no_recent_keys_in_rev2(line: bytes) -> None:
    assert "IMAP4rev2" in error(REV2, line).message
    assert isinstance(parse(REV1, line), Search)


def test_no_recent_status_item_in_rev2() -> None:
    error(REV2, b"a STATUS INBOX (MESSAGES RECENT)")
    error(REV2, b'a LIST "" * RETURN (STATUS (RECENT))')
    assert parse(REV2, b"a STATUS INBOX (MESSAGES SIZE DELETED)") == Status(
        "INBOX", ("MESSAGES", "SIZE", "DELETED")
    )


def test_imaplib_wrapped_append_is_unwrapped_once_utf8_is_on() -> None:
    # CPython's imaplib sends "UTF8 (" + message + ")" as one literal (gh-78319).
    wrapped = b"UTF8 (From: a@b\r\n\r\nhi\r\n)"
    args = parse(UTF8_ACCEPT, b"a APPEND INBOX {%d}" % len(wrapped), wrapped, b"")
    assert isinstance(args, Append)
    assert args.messages[0].data == b"From: a@b\r\n\r\nhi\r\n"
    args = parse(REV1, b"a APPEND INBOX {%d}" % len(wrapped), wrapped, b"")
    assert isinstance(args, Append)
    assert args.messages[0].data == wrapped  # stored as given, as before


def test_partial_fetch_takes_number64_in_rev2() -> None:
    # RFC 9051 Appendix D: 63-bit sizes; IMAP4rev1's are 32-bit (the grammar's number).
    line = b"a FETCH 1 BODY.PEEK[]<4294967296.4294967296>"
    assert error(REV1, line).message == "Number out of range"
    args = parse(REV2, line)
    assert isinstance(args, Fetch)
    assert args.items[0].partial == (2**32, 2**32)
