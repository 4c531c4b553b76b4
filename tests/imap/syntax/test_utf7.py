"""Mailbox names in modified UTF-7 (syntax/utf7.py): round trips, and what is not valid."""

from __future__ import annotations

import pytest

from mailgate.imap.syntax.utf7 import decode_mailbox, encode_mailbox
from mailgate.imap.syntax.values import InvalidMailboxName, ParseError
from tests.imap.syntax.helpers import error


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("ä", b"&AOQ-"),
        ("&", b"&-"),
        ("a&b", b"a&-b"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", b"&2D3eAA-"),  # a surrogate pair
        ("ä&ö", b"&AOQ-&-&APY-"),
        ("", b""),
    ],
)
def test_modified_utf7_round_trip(name: str, wire: bytes) -> None:
    assert encode_mailbox(name) == wire
    assert decode_mailbox(wire) == name


@pytest.mark.parametrize(
    "wire",
    [
        b"&AOQ",  # unterminated shift
        b"&AOQ=-",  # padding is not part of modified BASE64
        b"&AO/-",  # "/" is spelled "," in modified BASE64
        b"&A-",  # 6 bits: not a whole octet
        b"&AOR-",  # non-zero padding bits
        b"&AGE-",  # "a" must stand for itself
        b"&2D0-",  # a lone high surrogate
        b"&AAA-",  # NUL
        b"a\x01b",
        b"a\x7fb",
        b"\xff\xfe",  # neither ASCII nor UTF-8
        b"\xc3\xa4\x07",  # UTF-8 with a control character
    ],
)
def test_invalid_mailbox_names(wire: bytes) -> None:
    with pytest.raises(ParseError):
        decode_mailbox(wire)
    err = error(b"a1 CREATE {%d}" % len(wire), wire, b"")
    # Legal syntax, but no such name can be made: NO [CANNOT] (NONEXISTENT for the others).
    assert isinstance(err, InvalidMailboxName)
    assert (err.tag, err.message, err.code) == (
        "a1",
        "Mailbox name is not valid modified UTF-7",
        "CANNOT",
    )
    err = error(b"a2 SELECT {%d}" % len(wire), wire, b"")
    assert (err.tag, err.code) == ("a2", "NONEXISTENT")
