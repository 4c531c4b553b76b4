"""The reader (syntax/reader.py), through the commands that use it: strings and literals,
mailbox names, sequence sets."""

from __future__ import annotations

import pytest

from mailgate.imap.syntax.values import CopyMove, Login, MailboxArg, Request, SequenceSet
from tests.imap.syntax.helpers import args, error, parse, seqset

# ----------------------------------------------------------------------------- strings, literals


@pytest.mark.parametrize(
    ("chunks", "user", "password"),
    [
        ([b"a1 LOGIN alice secret"], b"alice", b"secret"),
        ([b"a1 login alice@example.test k]ey"], b"alice@example.test", b"k]ey"),
        ([b'a1 LOGIN "al ice" "p\\"w\\\\d"'], b"al ice", b'p"w\\d'),
        ([b'a1 LOGIN "" ""'], b"", b""),
        ([b'a1 LOGIN "j\xc3\xb6rg" x'], "jörg".encode(), b"x"),  # 8-bit quoted tolerated
        ([b"a1 LOGIN {5}", b"alice", b" {3}", b"key", b""], b"alice", b"key"),
        ([b"a1 LOGIN {5+}", b"alice", b" {3+}", b"key", b""], b"alice", b"key"),  # LITERAL+
        ([b"a1 LOGIN {0}", b"", b" x"], b"", b"x"),
        ([b"a1 LOGIN {4}", b"a\r\nb", b" x  "], b"a\r\nb", b"x"),  # trailing spaces
        ([b"a1 LOGIN alice {6}", b'\xff"{}\\ ', b""], b"alice", b'\xff"{}\\ '),
    ],
)
def test_login(chunks: list[bytes], user: bytes, password: bytes) -> None:
    assert parse(*chunks) == Request("a1", "LOGIN", False, Login(user, password))


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([b"a1 LOGIN alice"], "Missing argument"),
        ([b"a1 LOGIN alice "], "Missing argument"),
        ([b"a1 LOGIN alice secret extra"], "Unexpected characters at end of command"),
        ([b'a1 LOGIN "alice secret'], "Invalid quoted string"),
        ([b'a1 LOGIN "a\\lice" x'], "Invalid quoted string"),  # only \" and \\ escape
        ([b'a1 LOGIN "a\x00" x'], "Invalid quoted string"),
        ([b"a1 LOGIN al(ice x"], "Expected a space"),
        ([b"a1 LOGIN a%b x"], "Expected a space"),
        ([b"a1 LOGIN {5}", b"alic", b" x"], "Literal size mismatch"),
        ([b"a1 LOGIN {5}", b"alices", b" x"], "Literal size mismatch"),
        ([b"a1 LOGIN {5} x"], "Invalid literal"),
        ([b"a1 LOGIN {5"], "Invalid literal"),
        ([b"a1 LOGIN {}", b"", b" x"], "Invalid literal"),
        ([b"a1 LOGIN {5}"], "Missing literal data"),
        ([b"a1 LOGIN ~{5}", b"alice", b" x"], "A literal8 (~{n}) is only allowed for message data"),
        ([b"a1 LOGIN {3}", b"a\x00b", b" x"], "NUL in literal"),
        ([b"a1 LOGIN {5}", b"alice", b"x"], "Expected a space"),
    ],
)
def test_login_errors(chunks: list[bytes], message: str) -> None:
    err = error(*chunks)
    assert (err.tag, err.message) == ("a1", message)


# ----------------------------------------------------------------------------- mailbox names


@pytest.mark.parametrize(
    ("chunks", "mailbox"),
    [
        ([b"a CREATE Archive"], "Archive"),
        ([b"a CREATE archive"], "archive"),  # case-sensitive
        ([b"a CREATE iNbOx"], "INBOX"),  # except INBOX
        ([b'a CREATE "inbox"'], "INBOX"),
        ([b"a CREATE INBOX/Sub"], "INBOX/Sub"),
        ([b"a CREATE Entw&APw-rfe"], "Entwürfe"),
        ([b'a CREATE "Entw\xc3\xbcrfe"'], "Entwürfe"),  # raw UTF-8 tolerated
        ([b"a CREATE {5}", b"a b&-", b""], "a b&"),
        ([b"a CREATE Foo]"], "Foo]"),
        ([b"a CREATE \xc4\xb1nbox"], None),  # 8-bit atoms are not atoms
    ],
)
def test_mailbox_argument(chunks: list[bytes], mailbox: str | None) -> None:
    if mailbox is None:
        assert error(*chunks).tag == "a"
    else:
        assert parse(*chunks).args == MailboxArg(mailbox)


def test_dotless_i_is_not_inbox() -> None:
    dotless = "\u0131nbox"  # dotless i upper-cases to "I" in Python, yet this is not INBOX
    assert args(f'a CREATE "{dotless}"'.encode()) == MailboxArg(dotless)


# ----------------------------------------------------------------------------- sequence sets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1", seqset((1, 1))),
        (b"*", seqset((None, None))),
        (b"1:*", seqset((1, None))),
        (b"*:4", seqset((None, 4))),
        (b"3:1", seqset((3, 1))),
        (b"1,3:5,7:*,*", seqset((1, 1), (3, 5), (7, None), (None, None))),
        (b"4294967295", seqset((4294967295, 4294967295))),
    ],
)
def test_sequence_set_syntax(text: bytes, expected: SequenceSet) -> None:
    assert args(b"a COPY " + text + b" Trash") == CopyMove(expected, "Trash")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"0", "Expected a non-zero number"),
        (b"01", "Expected a non-zero number"),
        (b"1:0", "Expected a non-zero number"),
        (b"4294967296", "Number out of range"),
        (b"99999999999999999999999999", "Number out of range"),
        (b"1,", "Expected a sequence set"),
        (b"1:", "Expected a sequence set"),
        (b",1", "Expected a sequence set"),
        (b"1::2", "Expected a sequence set"),
        (b"-1", "Expected a sequence set"),
        (b"$,1", "Expected a space"),
        (b"$:2", "Expected a space"),
        (b"1.5", "Expected a space"),
    ],
)
def test_sequence_set_errors(text: bytes, message: str) -> None:
    assert error(b"a COPY " + text + b" Trash").message == message
