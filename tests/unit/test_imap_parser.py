"""The pure IMAP command parser: grammar per command, literals, mailbox names, sequence sets,
FETCH items, SEARCH trees, and a fuzz test that only ParseError ever escapes."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from mailgate.imap.matching import matches, needs
from mailgate.imap.syntax.commands import parse_request, parse_tag
from mailgate.imap.syntax.search import MAX_SEARCH_DEPTH
from mailgate.imap.syntax.utf7 import decode_mailbox, encode_mailbox
from mailgate.imap.syntax.values import (
    All,
    And,
    Append,
    AppendMessage,
    Authenticate,
    BodyKey,
    CopyMove,
    DateKey,
    Enable,
    Fetch,
    FetchItem,
    FlagKey,
    HeaderKey,
    Id,
    List,
    Login,
    Lsub,
    MailboxArg,
    ModSeqKey,
    Not,
    Or,
    ParseError,
    Qresync,
    Rename,
    Request,
    Search,
    Section,
    Select,
    SeqKey,
    SeqRange,
    SequenceSet,
    SizeKey,
    Status,
    StoreFlags,
    TextKey,
    UidExpunge,
    UidKey,
)


def parse(*chunks: bytes) -> Request:
    return parse_request(list(chunks))


def args(line: bytes) -> object:
    return parse(line).args


def error(*chunks: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_request(list(chunks))
    return info.value


def seqset(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))


# ----------------------------------------------------------------------------- tags, framing


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        (b"a1 NOOP", "a1"),
        (b"A.b-c]9 NOOP", "A.b-c]9"),  # "]" is an ASTRING-CHAR, so allowed in a tag
        (b"a1", "a1"),
        (b"* NOOP", None),
        (b"+ NOOP", None),
        (b"a+1 NOOP", None),
        (b"a(1 NOOP", None),
        (b"a{1 NOOP", None),
        (b'a"1 NOOP', None),
        (b"a%1 NOOP", None),
        (b" a1 NOOP", None),
        (b"", None),
        (b"\xc3\xa41 NOOP", None),
        (b"a\x01 NOOP", None),
    ],
)
def test_parse_tag(line: bytes, tag: str | None) -> None:
    assert parse_tag([line]) == tag


def test_parse_tag_survives_garbage() -> None:
    assert parse_tag([]) is None
    assert parse_tag(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "CHECK",
        "CLOSE",
        "EXPUNGE",
        "IDLE",
        "NAMESPACE",
        "UNSELECT",
    ],
)
def test_commands_without_arguments(name: str) -> None:
    assert parse(f"t1 {name}".encode()) == Request("t1", name, False, None)
    assert parse(f"t1 {name.lower()}  ".encode()) == Request("t1", name, False, None)
    err = error(f"t1 {name} extra".encode())
    assert (err.tag, err.message) == ("t1", "Unexpected characters at end of command")


@pytest.mark.parametrize(
    ("chunks", "tag", "message"),
    [
        ([b"a1 FROB"], "a1", "Unknown command"),
        ([b"a1 frob x y"], "a1", "Unknown command"),
        ([b"a1 UID NOOP"], "a1", "Unknown UID command"),
        ([b"a1 UID"], "a1", "Missing argument"),
        ([b"a1"], "a1", "Missing command"),
        ([b"a1   "], "a1", "Missing command"),
        ([b"a1  NOOP"], "a1", "Expected an atom"),  # exactly one SP between tokens
        ([b"* NOOP"], None, "Missing or invalid tag"),
        ([b""], None, "Missing or invalid tag"),
        ([], None, "Missing or invalid tag"),
        ([b"a1 LOGIN {5}", b"alice"], "a1", "Malformed command framing"),
        ([b"a1 NOOP {5}", b"alice", b""], "a1", "Unexpected characters at end of command"),
    ],
)
def test_command_errors(chunks: list[bytes], tag: str | None, message: str) -> None:
    err = error(*chunks)
    assert (err.tag, err.message, err.code) == (tag, message, None)


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
        ([b"a1 LOGIN ~{5}", b"alice", b" x"], "Binary literals are not supported"),
        ([b"a1 LOGIN {3}", b"a\x00b", b" x"], "NUL in literal"),
        ([b"a1 LOGIN {5}", b"alice", b"x"], "Expected a space"),
    ],
)
def test_login_errors(chunks: list[bytes], message: str) -> None:
    err = error(*chunks)
    assert (err.tag, err.message) == ("a1", message)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a AUTHENTICATE plain", Authenticate("PLAIN", None)),
        (b"a AUTHENTICATE PLAIN =", Authenticate("PLAIN", b"=")),
        (b"a AUTHENTICATE PLAIN AGFsaWNlAGtleQ==", Authenticate("PLAIN", b"AGFsaWNlAGtleQ==")),
        (b"a AUTHENTICATE XOAUTH2 dXNlcg==", Authenticate("XOAUTH2", b"dXNlcg==")),
    ],
)
def test_authenticate(line: bytes, expected: Authenticate) -> None:
    assert args(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"a AUTHENTICATE",
        b"a AUTHENTICATE PLAIN abc",
        b"a AUTHENTICATE PLAIN a=bc",
        b"a AUTHENTICATE P x y",
    ],
)
def test_authenticate_errors(line: bytes) -> None:
    assert error(line).tag == "a"


# ----------------------------------------------------------------------------- mailbox names


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
    assert (err.tag, err.message) == ("a1", "Invalid mailbox name")


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


@pytest.mark.parametrize("name", ["CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"])
def test_single_mailbox_commands(name: str) -> None:
    assert parse(f"a {name} Trash".encode()) == Request("a", name, False, MailboxArg("Trash"))
    assert error(f"a {name}".encode()).message == "Missing argument"
    assert error(f"a {name} a b".encode()).message == "Unexpected characters at end of command"
    assert error(f"a {name} (USE (\\Drafts))".encode()).tag == "a"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a SELECT INBOX", Select("INBOX", False, None)),
        (b"a SELECT inbox (condstore)", Select("INBOX", True, None)),
        (b'a SELECT "Sent" (CONDSTORE) ', Select("Sent", True, None)),
        (b"a SELECT INBOX (QRESYNC (7 42))", Select("INBOX", False, Qresync(7, 42))),
        (
            b"a SELECT INBOX (CONDSTORE QRESYNC (7 42 1:5,9))",
            Select("INBOX", True, Qresync(7, 42, SequenceSet((SeqRange(1, 5), SeqRange(9, 9))))),
        ),
        (
            b"a SELECT INBOX (QRESYNC (7 42 1:9 (1,3 2,6)))",
            Select("INBOX", False, Qresync(7, 42, SequenceSet((SeqRange(1, 9),)))),
        ),
        (b"a SELECT INBOX (QRESYNC (7 42 (1 2)))", Select("INBOX", False, Qresync(7, 42))),
    ],
)
def test_select(line: bytes, expected: Select) -> None:
    assert args(line) == expected
    assert args(line.replace(b"SELECT", b"EXAMINE")) == expected
    assert parse(line.replace(b"SELECT", b"examine")).name == "EXAMINE"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a SELECT INBOX (QRESYNC (1 2 1:*))", "Known UIDs cannot contain *"),
        (b"a SELECT INBOX (QRESYNC (1 2 1:5 (1:2 *)))", "Known UIDs cannot contain *"),
        (b"a SELECT INBOX (QRESYNC (0 2))", "Expected a non-zero number"),
        (b"a SELECT INBOX (QRESYNC (1))", "Expected a space"),
        (b"a SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))", "Unknown SELECT parameter"),
        (b"a SELECT INBOX (FOO)", "Unknown SELECT parameter"),
        (b"a SELECT INBOX ()", "Expected an atom"),
        (b"a SELECT INBOX (CONDSTORE", "Missing argument"),
        (b"a SELECT", "Missing argument"),
    ],
)
def test_select_errors(line: bytes, message: str) -> None:
    assert (error(line).tag, error(line).message) == ("a", message)


def test_rename() -> None:
    assert args(b"a RENAME old &AOQ-") == Rename("old", "ä")
    assert parse(b"a RENAME {3}", b"o d", b" new").args == Rename("o d", "new")
    assert error(b"a RENAME old").message == "Missing argument"


# ----------------------------------------------------------------------------- LIST, LSUB, STATUS


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'a LIST "" *', List("", ("*",))),
        (b'a LIST "" ""', List("", ("",))),
        (b"a LIST ~/Mail/ %", List("~/Mail/", ("%",))),
        (b'a LIST "" INBOX/%/*]', List("", ("INBOX/%/*]",))),
        (b'a LIST "" inbox', List("", ("INBOX",))),
        (b'a LIST "" &AOQ-*', List("", ("ä*",))),
        (b'a LIST "" ("a" b%)', List("", ("a", "b%"))),
        (b'a LIST () "" *', List("", ("*",))),
        (
            b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" *',
            List("", ("*",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"})),
        ),
        (b'a LIST (special-use) "" *', List("", ("*",), frozenset({"SPECIAL-USE"}))),
        (b'a LIST (REMOTE) "" *', List("", ("*",), frozenset({"REMOTE"}))),
        (
            b'a LIST "" * RETURN (CHILDREN SUBSCRIBED SPECIAL-USE)',
            List("", ("*",), returns=frozenset({"CHILDREN", "SUBSCRIBED", "SPECIAL-USE"})),
        ),
        (b'a LIST "" * RETURN ()', List("", ("*",))),
        (
            b'a LIST "" % RETURN (STATUS (MESSAGES unseen MESSAGES))',
            List("", ("%",), returns=frozenset({"STATUS"}), status_items=("MESSAGES", "UNSEEN")),
        ),
    ],
)
def test_list(line: bytes, expected: List) -> None:
    assert args(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'a LIST (RECURSIVEMATCH) "" *', "RECURSIVEMATCH needs another selection option"),
        (b'a LIST (REMOTE RECURSIVEMATCH) "" *', "RECURSIVEMATCH needs another selection option"),
        (b'a LIST (BOGUS) "" *', "Unknown LIST selection option"),
        (b'a LIST "" * RETURN (BOGUS)', "Unknown LIST return option"),
        (b'a LIST "" * RETURN (STATUS (BOGUS))', "Unknown STATUS item"),
        (b'a LIST "" * RETURN (STATUS ())', "Expected an atom"),
        (b'a LIST "" * FOO (CHILDREN)', "Expected RETURN"),
        (b'a LIST "" ()', "Expected a mailbox pattern"),
        (b'a LIST ""', "Missing argument"),
        (b"a LIST * *", "Expected a string"),  # the reference is not a pattern
    ],
)
def test_list_errors(line: bytes, message: str) -> None:
    assert error(line).message == message


def test_lsub() -> None:
    assert args(b'a LSUB "" %') == Lsub("", "%")
    assert args(b"a LSUB Archive/ &AOQ-*") == Lsub("Archive/", "ä*")
    assert error(b'a LSUB "" (a b)').tag == "a"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a STATUS INBOX (MESSAGES)", Status("INBOX", ("MESSAGES",))),
        (
            b"a STATUS Archive (messages recent uidnext uidvalidity unseen highestmodseq "
            b"size deleted)",
            Status(
                "Archive",
                (
                    "MESSAGES",
                    "RECENT",
                    "UIDNEXT",
                    "UIDVALIDITY",
                    "UNSEEN",
                    "HIGHESTMODSEQ",
                    "SIZE",
                    "DELETED",
                ),
            ),
        ),
        (b"a STATUS INBOX (UNSEEN UNSEEN)", Status("INBOX", ("UNSEEN",))),
    ],
)
def test_status(line: bytes, expected: Status) -> None:
    assert args(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a STATUS INBOX (MESSAGES FOO)", "Unknown STATUS item"),
        (b"a STATUS INBOX ()", "Expected an atom"),
        (b"a STATUS INBOX MESSAGES", "Expected ("),
        (b"a STATUS INBOX (MESSAGES", "Missing argument"),
    ],
)
def test_status_errors(line: bytes, message: str) -> None:
    assert error(line).message == message


# ----------------------------------------------------------------------------- APPEND

_PLUS_1 = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a APPEND INBOX {3}", b"abc", b""], Append("INBOX", (AppendMessage((), None, b"abc"),))),
        (
            [b"a APPEND Drafts (\\draft $Label \\SEEN) {3+}", b"abc", b""],
            Append("Drafts", (AppendMessage(("\\Draft", "$Label", "\\Seen"), None, b"abc"),)),
        ),
        (
            [b'a APPEND INBOX () "05-Mar-2024 13:02:03 +0100" {1}', b"x", b""],
            Append(
                "INBOX", (AppendMessage((), datetime(2024, 3, 5, 13, 2, 3, tzinfo=_PLUS_1), b"x"),)
            ),
        ),
        (
            [b'a APPEND INBOX " 5-mar-2024 13:02:03 -0930" {1}', b"x", b"  "],
            Append(
                "INBOX",
                (
                    AppendMessage(
                        (),
                        datetime(
                            2024, 3, 5, 13, 2, 3, tzinfo=timezone(-timedelta(hours=9, minutes=30))
                        ),
                        b"x",
                    ),
                ),
            ),
        ),
        (  # a mailbox name as a literal, then the message literal
            [b"a APPEND {4}", b"Sent", b" {2}", b"hi", b""],
            Append("Sent", (AppendMessage((), None, b"hi"),)),
        ),
        (  # NUL and CRLF inside message data are the MIME layer's business
            [b"a APPEND INBOX {5}", b"a\x00\r\nb", b""],
            Append("INBOX", (AppendMessage((), None, b"a\x00\r\nb"),)),
        ),
        (  # MULTIAPPEND (RFC 3502)
            [
                b"a APPEND INBOX (\\Seen) {1}",
                b"1",
                b' "01-Jan-2000 00:00:00 +0000" {1+}',
                b"2",
                b" {0}",
                b"",
                b"",
            ],
            Append(
                "INBOX",
                (
                    AppendMessage(("\\Seen",), None, b"1"),
                    AppendMessage((), datetime(2000, 1, 1, tzinfo=UTC), b"2"),
                    AppendMessage((), None, b""),
                ),
            ),
        ),
    ],
)
def test_append(chunks: list[bytes], expected: Append) -> None:
    assert parse(*chunks) == Request("a", "APPEND", False, expected)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([b"a APPEND INBOX (\\Recent) {1}", b"x", b""], "\\Recent cannot be set"),
        ([b"a APPEND INBOX (\\Important) {1}", b"x", b""], "Unknown system flag"),
        ([b'a APPEND INBOX "hello"'], "Invalid date-time"),
        ([b'a APPEND INBOX "31-Feb-2024 00:00:00 +0000" {1}', b"x", b""], "Invalid date"),
        ([b'a APPEND INBOX "01-Foo-2024 00:00:00 +0000" {1}', b"x", b""], "Invalid date"),
        ([b'a APPEND INBOX "01-Jan-2024 24:00:00 +0000" {1}', b"x", b""], "Invalid date-time"),
        ([b'a APPEND INBOX "01-Jan-2024 00:00:00 +2400" {1}', b"x", b""], "Invalid date-time"),
        ([b'a APPEND INBOX "01-Jan-2024 00:00:00" {1}', b"x", b""], "Invalid date-time"),
        ([b'a APPEND INBOX "01-Jan-2024 00:00:00 +0000" "x"'], "Expected a message literal"),
        ([b"a APPEND INBOX"], "Missing argument"),
        ([b"a APPEND INBOX (\\Seen)"], "Missing argument"),
        ([b"a APPEND INBOX ~{1}", b"x", b""], "Binary literals are not supported"),
        ([b"a APPEND INBOX {1}", b"x", b" junk"], "Expected a message literal"),
        ([b"a APPEND INBOX {1}", b"x", b" (\\Seen"], "Missing argument"),
    ],
)
def test_append_errors(chunks: list[bytes], message: str) -> None:
    err = error(*chunks)
    assert (err.tag, err.message) == ("a", message)


# ----------------------------------------------------------------------------- STORE


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a STORE 1 FLAGS ()", StoreFlags(seqset((1, 1)), "", False, ())),
        (b"a STORE 1 +FLAGS \\Seen", StoreFlags(seqset((1, 1)), "+", False, ("\\Seen",))),
        (
            b"a STORE 1:* -FLAGS.SILENT (\\deleted \\DRAFT $Junk $Junk)",
            StoreFlags(seqset((1, None)), "-", True, ("\\Deleted", "\\Draft", "$Junk")),
        ),
        (
            b"a store 2,4 +flags.silent \\Answered \\Flagged foo",
            StoreFlags(seqset((2, 2), (4, 4)), "+", True, ("\\Answered", "\\Flagged", "foo")),
        ),
        (
            b"a STORE 1 (UNCHANGEDSINCE 12345) FLAGS (\\Seen)",
            StoreFlags(seqset((1, 1)), "", False, ("\\Seen",), 12345),
        ),
        (
            b"a STORE 1 (unchangedsince 0) FLAGS \\Seen ",
            StoreFlags(seqset((1, 1)), "", False, ("\\Seen",), 0),
        ),
    ],
)
def test_store(line: bytes, expected: StoreFlags) -> None:
    assert args(line) == expected
    uid = parse(line.replace(b"a ", b"a UID ", 1))
    assert (uid.name, uid.uid, uid.args) == ("STORE", True, expected)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a STORE 1 FLAGS (\\Recent)", "\\Recent cannot be set"),
        (b"a STORE 1 FLAGS \\Foo", "Unknown system flag"),
        (b"a STORE 1 FLAGS \\*", "Expected an atom"),
        (b"a STORE 1 FLAGS", "Missing argument"),
        (b"a STORE 1 FLAGS ", "Missing argument"),
        (b"a STORE 1 LABELS (x)", "Expected FLAGS"),
        (b"a STORE 1 *FLAGS (x)", "Expected FLAGS"),
        (b"a STORE 1 FLAGS.NOISY (x)", "Expected FLAGS"),
        (b"a STORE 1 (FOO 1) FLAGS (x)", "Unknown STORE modifier"),
        (b"a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS (x)", "Number out of range"),
        (b"a STORE 1 FLAGS (x] y)", "Expected )"),
        (b"a STORE 1 FLAGS (x  y)", "Expected an atom"),
        (b"a STORE 0 FLAGS (x)", "Expected a non-zero number"),
        (b"a STORE FLAGS (x)", "Expected a sequence set"),
    ],
)
def test_store_errors(line: bytes, message: str) -> None:
    assert error(line).message == message


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
        (b"$", "Saved search results ($) are not supported"),
        (b"1.5", "Expected a space"),
    ],
)
def test_sequence_set_errors(text: bytes, message: str) -> None:
    assert error(b"a COPY " + text + b" Trash").message == message


@pytest.mark.parametrize(
    ("text", "largest", "resolved"),
    [
        (b"*", 7, ((7, 7),)),
        (b"*", 0, ()),  # empty mailbox: "*" names nothing
        (b"1:*", 0, ((1, 1),)),
        (b"1:*", 7, ((1, 7),)),
        (b"5:*", 3, ((3, 5),)),  # RFC 3501: n:* with n > largest is largest:n
        (b"*:5", 3, ((3, 5),)),
        (b"3:1", 9, ((1, 3),)),
        (b"1:3,2:6", 9, ((1, 6),)),  # overlap
        (b"1:3,4:6", 9, ((1, 6),)),  # adjacent
        (b"7,1:2,4", 9, ((1, 2), (4, 4), (7, 7))),  # sorted
        (b"9:*,1,*", 20, ((1, 1), (9, 20))),
        (b"1:5,2:3", 9, ((1, 5),)),  # contained
    ],
)
def test_sequence_set_resolve(text: bytes, largest: int, resolved: tuple) -> None:
    copy = args(b"a COPY " + text + b" x")
    assert isinstance(copy, CopyMove)
    assert copy.sequence.resolve(largest) == resolved
    for value in range(0, 25):
        inside = any(lo <= value <= hi for lo, hi in resolved)
        assert copy.sequence.contains(value, largest) == inside, value


def test_large_sequence_sets_agree_with_a_scan() -> None:
    rng = random.Random(7)
    ranges = [(rng.randint(1, 400), rng.choice([None, rng.randint(1, 400)])) for _ in range(300)]
    big = seqset(*ranges)
    assert big == seqset(*ranges)  # the lookup cache is not part of the value
    assert hash(big) == hash(seqset(*ranges))
    for largest in (0, 1, 250, 500):
        resolved = big.resolve(largest)
        for value in range(0, 520):
            inside = any(lo <= value <= hi for lo, hi in resolved)
            assert big.contains(value, largest) == inside, (largest, value)
    assert "_index" not in repr(big)


# ----------------------------------------------------------------------------- COPY, MOVE, ...


def test_copy_move_expunge() -> None:
    assert parse(b"a COPY 1:2 &AOQ-") == Request("a", "COPY", False, CopyMove(seqset((1, 2)), "ä"))
    assert parse(b"a uid move 5 {5}", b"Trash", b"") == Request(
        "a", "MOVE", True, CopyMove(seqset((5, 5)), "Trash")
    )
    assert parse(b"a UID EXPUNGE 1:3,9") == Request(
        "a", "EXPUNGE", True, UidExpunge(seqset((1, 3), (9, 9)))
    )
    assert parse(b"a EXPUNGE") == Request("a", "EXPUNGE", False, None)
    assert error(b"a UID EXPUNGE").message == "Missing argument"
    assert error(b"a EXPUNGE 1").message == "Unexpected characters at end of command"
    assert error(b"a MOVE 1").message == "Missing argument"


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a ID NIL"], Id(None)),
        ([b"a ID nil "], Id(None)),
        ([b"a ID ()"], Id(())),
        (
            [b'a ID ("name" "Thunderbird" "version" NIL "os" "Linux")'],
            Id((("name", "Thunderbird"), ("version", None), ("os", "Linux"))),
        ),
        ([b'a ID ("name" {4}', b"a\xffbc", b")"], Id((("name", "a\ufffdbc"),))),
    ],
)
def test_id(chunks: list[bytes], expected: Id) -> None:
    assert parse(*chunks).args == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a ID", "Missing argument"),
        (b"a ID FOO", "Expected ( or NIL"),
        (b'a ID ("name")', "Expected a space"),
        (b'a ID ("name" "x" )', "Expected a string"),
        (b"a ID (name x)", "Expected a string"),
        (b'a ID ("name" FOO)', "Expected a string or NIL"),
        (b'a ID ("name" "x"', "Missing argument"),
        (b'a ID ("' + b"x" * 31 + b'" "v")', "ID field or value too long"),
        (b'a ID ("x" "' + b"v" * 1025 + b'")', "ID field or value too long"),
        (b"a ID (" + b" ".join(b'"f%d" "v"' % i for i in range(31)) + b")", "Too many ID fields"),
    ],
)
def test_id_errors(line: bytes, message: str) -> None:
    assert error(line).message == message


def test_enable() -> None:
    assert args(b"a ENABLE condstore UTF8=ACCEPT CONDSTORE") == Enable(("CONDSTORE", "UTF8=ACCEPT"))
    assert error(b"a ENABLE").message == "Missing argument"
    assert error(b"a ENABLE (CONDSTORE)").message == "Expected an atom"


# ----------------------------------------------------------------------------- FETCH

_FAST = (FetchItem("FLAGS"), FetchItem("INTERNALDATE"), FetchItem("RFC822.SIZE"))


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (b"FAST", _FAST),
        (b"all", (*_FAST, FetchItem("ENVELOPE"))),
        (b"Full", (*_FAST, FetchItem("ENVELOPE"), FetchItem("BODY"))),
        (b"flags", (FetchItem("FLAGS"),)),
        (
            b"(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
            (
                FetchItem("UID"),
                FetchItem("FLAGS"),
                FetchItem("INTERNALDATE"),
                FetchItem("RFC822.SIZE"),
                FetchItem("ENVELOPE"),
            ),
        ),
        (
            b"(BODYSTRUCTURE body RFC822 RFC822.HEADER rfc822.text MODSEQ UID UID)",
            (
                FetchItem("BODYSTRUCTURE"),
                FetchItem("BODY"),
                FetchItem("RFC822"),
                FetchItem("RFC822.HEADER"),
                FetchItem("RFC822.TEXT"),
                FetchItem("MODSEQ"),
                FetchItem("UID"),
            ),
        ),
        (b"BODY[]", (FetchItem("BODY", Section()),)),
        (b"BODY.PEEK[]<0.1024>", (FetchItem("BODY", Section(), (0, 1024), peek=True),)),
        (b"body[text]", (FetchItem("BODY", Section((), "TEXT")),)),
        (b"BODY[1]", (FetchItem("BODY", Section((1,))),)),
        (b"BODY[1.2.3.MIME]", (FetchItem("BODY", Section((1, 2, 3), "MIME")),)),
        (b"BODY[2.HEADER]", (FetchItem("BODY", Section((2,), "HEADER")),)),
        (
            b"BODY.PEEK[HEADER.FIELDS (From to X-Mailer)]",
            (
                FetchItem(
                    "BODY", Section((), "HEADER.FIELDS", ("FROM", "TO", "X-MAILER")), peek=True
                ),
            ),
        ),
        (b"BINARY[1]", (FetchItem("BINARY", Section((1,))),)),
        (b"BINARY.PEEK[1.2]<5.10>", (FetchItem("BINARY", Section((1, 2)), (5, 10), peek=True),)),
        (b"BINARY.SIZE[3]", (FetchItem("BINARY.SIZE", Section((3,))),)),
        (b"BINARY[]", (FetchItem("BINARY", Section()),)),
    ],
)
def test_fetch_items(text: bytes, items: tuple[FetchItem, ...]) -> None:
    assert parse(b"a FETCH 1:* " + text) == Request(
        "a", "FETCH", False, Fetch(seqset((1, None)), items, None)
    )


def test_fetch_header_field_names_may_be_literals() -> None:
    request = parse(b"a FETCH 1 (BODY[1.HEADER.FIELDS.NOT (Subject {4}", b"Date", b")])")
    section = Section((1,), "HEADER.FIELDS.NOT", ("SUBJECT", "DATE"))
    assert request.args == Fetch(seqset((1, 1)), (FetchItem("BODY", section),))
    assert FetchItem("BODY", section).response_name() == b"BODY[1.HEADER.FIELDS.NOT (SUBJECT DATE)]"


def test_fetch_uid_and_changedsince_imply_items() -> None:
    plain = args(b"a FETCH 1 (FLAGS) (CHANGEDSINCE 7)")
    assert plain == Fetch(seqset((1, 1)), (FetchItem("MODSEQ"), FetchItem("FLAGS")), 7)
    uid = parse(b"a UID FETCH 1:* FLAGS")
    assert uid == Request(
        "a", "FETCH", True, Fetch(seqset((1, None)), (FetchItem("UID"), FetchItem("FLAGS")))
    )
    both = args(b"a UID FETCH 1 (FLAGS UID MODSEQ) (changedsince 0)")
    assert isinstance(both, Fetch)
    assert both.items == (FetchItem("FLAGS"), FetchItem("UID"), FetchItem("MODSEQ"))
    assert not both.vanished
    vanished = args(b"a UID FETCH 1:* FLAGS (VANISHED CHANGEDSINCE 9)")
    assert isinstance(vanished, Fetch)
    assert (vanished.changedsince, vanished.vanished) == (9, True)


@pytest.mark.parametrize(
    ("item", "label", "sets_seen"),
    [
        (b"RFC822.SIZE", b"RFC822.SIZE", False),
        (b"BODY", b"BODY", False),
        (b"BODYSTRUCTURE", b"BODYSTRUCTURE", False),
        (b"RFC822", b"RFC822", True),
        (b"RFC822.TEXT", b"RFC822.TEXT", True),
        (b"RFC822.HEADER", b"RFC822.HEADER", False),
        (b"BODY[]", b"BODY[]", True),
        (b"BODY.PEEK[]", b"BODY[]", False),
        (b"BODY.PEEK[]<0.2048>", b"BODY[]<0>", False),
        (b"BODY[HEADER.FIELDS (FROM TO)]<10.20>", b"BODY[HEADER.FIELDS (FROM TO)]<10>", True),
        (b"body.peek[header.fields (from to)]<0.1>", b"BODY[HEADER.FIELDS (FROM TO)]<0>", False),
        (b"BODY[1.2.MIME]", b"BODY[1.2.MIME]", True),
        (b"BODY[1.2]", b"BODY[1.2]", True),
        (b"BODY[TEXT]", b"BODY[TEXT]", True),
        (b"BINARY.PEEK[1]<0.100>", b"BINARY[1]<0>", False),
        (b"BINARY[1]", b"BINARY[1]", True),
        (b"BINARY.SIZE[1]", b"BINARY.SIZE[1]", False),
    ],
)
def test_response_name(item: bytes, label: bytes, sets_seen: bool) -> None:
    fetch = args(b"a FETCH 1 (" + item + b")")
    assert isinstance(fetch, Fetch)
    (parsed,) = fetch.items
    assert parsed.response_name() == label
    assert parsed.sets_seen is sets_seen


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a FETCH 1 ()", "Expected a FETCH item"),
        (b"a FETCH 1 (ALL)", "Unknown FETCH item"),
        (b"a FETCH 1 (FLAGS FAST)", "Unknown FETCH item"),
        (b"a FETCH 1 FLAGS FAST", "Expected ("),
        (b"a FETCH 1 BOGUS", "Unknown FETCH item"),
        (b"a FETCH 1 BODY.PEEK", "Expected a section"),
        (b"a FETCH 1 BINARY", "Expected a section"),
        (b"a FETCH 1 FLAGS[]", "Unexpected section"),
        (b"a FETCH 1 BODY[0]", "Invalid section"),
        (b"a FETCH 1 BODY[01]", "Invalid section"),
        (b"a FETCH 1 BODY[1.0]", "Invalid section"),
        (b"a FETCH 1 BODY[1.]", "Invalid section"),
        (b"a FETCH 1 BODY[1..2]", "Invalid section"),
        (b"a FETCH 1 BODY[.1]", "Invalid section"),
        (b"a FETCH 1 BODY[MIME]", "Invalid section"),
        (b"a FETCH 1 BODY[HEADER.1]", "Invalid section"),
        (b"a FETCH 1 BODY[FOO]", "Invalid section"),
        (b"a FETCH 1 BINARY[TEXT]", "Invalid section"),
        (b"a FETCH 1 BINARY[1.MIME]", "Invalid section"),
        (b"a FETCH 1 BINARY.SIZE.PEEK[1]", "Unknown FETCH item"),
        (b"a FETCH 1 BODY[HEADER.FIELDS]", "Expected a space"),
        (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "Expected a string"),
        (b'a FETCH 1 BODY[HEADER.FIELDS ("a b")]', "Invalid header field name"),
        (b'a FETCH 1 BODY[HEADER.FIELDS ("a:b")]', "Invalid header field name"),
        (b'a FETCH 1 BODY[HEADER.FIELDS ("")]', "Invalid header field name"),
        (b"a FETCH 1 BODY[TEXT (FROM)]", "Expected ]"),
        (b"a FETCH 1 BODY[]<0>", "Expected ."),
        (b"a FETCH 1 BODY[]<0.0>", "Expected a non-zero number"),
        (b"a FETCH 1 BODY[]<4294967296.1>", "Number out of range"),
        (b"a FETCH 1 BODY[]<0.4294967296>", "Number out of range"),
        (b"a FETCH 1 BODY[]<0.1", "Missing argument"),
        (b"a FETCH 1 BINARY.SIZE[1]<0.1>", "Unexpected characters at end of command"),
        (b"a FETCH 1 BODY<0.1>", "Unexpected characters at end of command"),
        (b"a FETCH 1 FLAGS (CHANGEDSINCE)", "Expected a space"),
        (b"a FETCH 1 FLAGS (CHANGEDSINCE x)", "Expected a number"),
        (b"a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", "Unknown FETCH modifier"),
        (b"a FETCH 1 FLAGS (VANISHED)", "VANISHED needs UID FETCH with CHANGEDSINCE"),
        (b"a UID FETCH 1 FLAGS (VANISHED)", "VANISHED needs UID FETCH with CHANGEDSINCE"),
        (
            b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
            "VANISHED needs UID FETCH with CHANGEDSINCE",
        ),
        (b"a UID FETCH 1 FLAGS (VANISHED VANISHED)", "Unknown FETCH modifier"),
        (b"a FETCH 1 FLAGS (FOO)", "Unknown FETCH modifier"),
        (b"a FETCH 1 (FLAGS", "Missing argument"),
        (b"a FETCH 1", "Missing argument"),
        (b"a FETCH * ~{3}", "Expected a FETCH item"),
    ],
)
def test_fetch_errors(line: bytes, message: str) -> None:
    err = error(line)
    assert (err.tag, err.message) == ("a", message)


# ----------------------------------------------------------------------------- SEARCH


def search(text: bytes) -> Search:
    result = args(b"a SEARCH " + text)
    assert isinstance(result, Search)
    return result


def key_of(text: bytes) -> object:
    return search(text).key


_SEEN, _UNSEEN = FlagKey("\\Seen", True), FlagKey("\\Seen", False)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (b"ALL", All()),
        (b"answered", FlagKey("\\Answered", True)),
        (b"UNANSWERED", FlagKey("\\Answered", False)),
        (b"DELETED UNDELETED", And((FlagKey("\\Deleted", True), FlagKey("\\Deleted", False)))),
        (b"DRAFT UNDRAFT", And((FlagKey("\\Draft", True), FlagKey("\\Draft", False)))),
        (b"FLAGGED UNFLAGGED", And((FlagKey("\\Flagged", True), FlagKey("\\Flagged", False)))),
        (b"SEEN UNSEEN", And((_SEEN, _UNSEEN))),
        (b"RECENT", FlagKey("\\Recent", True)),
        (b"OLD", FlagKey("\\Recent", False)),
        (b"NEW", And((FlagKey("\\Recent", True), _UNSEEN))),
        (b"KEYWORD $Junk", FlagKey("$Junk", True)),
        (b"UNKEYWORD NonJunk", FlagKey("NonJunk", False)),
        (b"FROM alice", HeaderKey("from", "alice")),
        (b'TO "Bob Smith"', HeaderKey("to", "Bob Smith")),
        (b"CC x BCC y", And((HeaderKey("cc", "x"), HeaderKey("bcc", "y")))),
        (b'HEADER X-Spam ""', HeaderKey("x-spam", "")),
        (b"HEADER Message-ID <a@b>", HeaderKey("message-id", "<a@b>")),
        (b"BODY hello", BodyKey("hello")),
        (b'TEXT "\xc3\xa4"', TextKey("ä")),
        (b"BEFORE 1-Feb-2024", DateKey("internal", "before", date(2024, 2, 1))),
        (b'ON "01-feb-2024"', DateKey("internal", "on", date(2024, 2, 1))),
        (b"SINCE 29-Feb-2024", DateKey("internal", "since", date(2024, 2, 29))),
        (b"SENTBEFORE 1-Jan-2000", DateKey("sent", "before", date(2000, 1, 1))),
        (b"SENTON 1-Jan-2000", DateKey("sent", "on", date(2000, 1, 1))),
        (b"SENTSINCE 1-Jan-2000", DateKey("sent", "since", date(2000, 1, 1))),
        (b"LARGER 100", SizeKey("larger", 100)),
        (b"SMALLER 0", SizeKey("smaller", 0)),
        (b"LARGER 9223372036854775807", SizeKey("larger", 2**63 - 1)),  # number64, RFC 9051
        (b"UID 1:*", UidKey(seqset((1, None)))),
        (b"1,3:*", SeqKey(seqset((1, 1), (3, None)))),
        (b"*", SeqKey(seqset((None, None)))),
        (b"MODSEQ 620162338", ModSeqKey(620162338)),
        (b'MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338)),
        (b"NOT SEEN", Not(_SEEN)),
        (b"NOT NOT SEEN", Not(Not(_SEEN))),
        (b"OR SEEN DRAFT", Or((_SEEN, FlagKey("\\Draft", True)))),
        (b"(SEEN)", _SEEN),
        (b"((((SEEN))))", _SEEN),
        (
            b"(SEEN DRAFT) (FLAGGED)",
            And((_SEEN, FlagKey("\\Draft", True), FlagKey("\\Flagged", True))),
        ),
        (
            b"OR OR OR FROM a FROM b FROM c FROM d",  # left-nested chain, flattened
            Or(tuple(HeaderKey("from", x) for x in "abcd")),
        ),
        (
            b"OR FROM a OR FROM b OR FROM c FROM d",  # right-nested chain, flattened
            Or(tuple(HeaderKey("from", x) for x in "abcd")),
        ),
        (
            b"OR (OR FROM a FROM b) (OR FROM c FROM d)",
            Or(tuple(HeaderKey("from", x) for x in "abcd")),
        ),
        (
            b"NOT OR SEEN (DRAFT NOT FLAGGED) 1:2",
            And(
                (
                    Not(
                        Or(
                            (
                                _SEEN,
                                And((FlagKey("\\Draft", True), Not(FlagKey("\\Flagged", True)))),
                            )
                        )
                    ),
                    SeqKey(seqset((1, 2))),
                )
            ),
        ),
        (b"OR NOT SEEN UID 5", Or((Not(_SEEN), UidKey(seqset((5, 5)))))),
        (b"ALL ", All()),  # trailing space tolerated
    ],
)
def test_search_keys(text: bytes, key: object) -> None:
    assert key_of(text) == key


def test_search_key_names_are_case_insensitive() -> None:
    assert key_of(b"or Seen not fRoM x") == Or((_SEEN, Not(HeaderKey("from", "x"))))
    assert key_of(b"uid 1 larger 5 sentsince 1-JAN-2020") == And(
        (UidKey(seqset((1, 1))), SizeKey("larger", 5), DateKey("sent", "since", date(2020, 1, 1)))
    )


def test_search_literals_and_charset() -> None:
    request = parse(b"a UID SEARCH CHARSET UTF-8 SUBJECT {6}", "Grüß".encode(), b" SEEN")
    assert request == Request(
        "a", "SEARCH", True, Search("UTF-8", And((HeaderKey("subject", "Grüß"), _SEEN)), None)
    )
    assert search(b"charset us-ascii ALL") == Search("US-ASCII", All(), None)
    assert search(b'CHARSET "utf-8" ALL').charset == "UTF-8"
    assert search(b"ALL").charset is None


@pytest.mark.parametrize(
    ("text", "returns"),
    [
        (b"RETURN (MIN MAX) ALL", ("MIN", "MAX")),
        (b"return (count all count) ALL", ("COUNT", "ALL")),
        (b"RETURN () ALL", ("ALL",)),  # RFC 4731 §3.1: empty means ALL
        (b"RETURN (COUNT) CHARSET UTF-8 ALL", ("COUNT",)),
    ],
)
def test_search_return(text: bytes, returns: tuple[str, ...]) -> None:
    assert search(text).returns == returns
    assert search(text).key == All()


@pytest.mark.parametrize(
    ("text", "message", "code"),
    [
        (b"CHARSET ISO-8859-1 ALL", "Unsupported charset", "BADCHARSET"),
        (b"CHARSET \xff ALL", "Expected a string", None),
        (b'CHARSET "\xff" ALL', "Unsupported charset", "BADCHARSET"),
        (b"CHARSET UTF-8", "Missing argument", None),
        (b"RETURN (SAVE) ALL", "SEARCHRES (SAVE) is not supported", None),
        (b"RETURN (PARTIAL 1:10) ALL", "Unknown RETURN option", None),
        (b"RETURN ALL", "Expected (", None),
        (b"ALL CHARSET UTF-8", "Unknown search key", None),
        (b"", "Missing argument", None),
        (b"FOO", "Unknown search key", None),
        (b"()", "Expected an atom", None),
        (b"(SEEN", "Missing )", None),
        (b"(SEEN ", "Missing )", None),
        (b"SEEN)", "Unexpected characters at end of command", None),
        (b"NOT", "Missing argument", None),
        (b"OR SEEN", "Missing argument", None),
        (b"SEEN  DRAFT", "Expected an atom", None),
        (b"FROM", "Missing argument", None),
        (b"HEADER X", "Missing argument", None),
        (b'HEADER "" x', "Empty header field name", None),
        (b'SUBJECT "\xff"', "String is not valid UTF-8", None),
        (b"KEYWORD \\Seen", "Expected an atom", None),
        (b"BEFORE 2024-01-01", "Invalid date", None),
        (b"BEFORE 30-Feb-2024", "Invalid date", None),
        (b"BEFORE 1-Foo-2024", "Invalid date", None),
        (b'BEFORE "1-Jan-2024 "', "Invalid date", None),
        (b"BEFORE 1-Jan-2024x", "Unexpected characters at end of command", None),
        (b"LARGER -1", "Expected a number", None),
        (b"LARGER 9223372036854775808", "Number out of range", None),
        (b"UID", "Missing argument", None),
        (b"UID x", "Expected a sequence set", None),
        (b"0", "Expected a non-zero number", None),
        (b"$", "Saved search results ($) are not supported", None),
        (b'MODSEQ "/flags/\\\\draft" foo 1', "Invalid MODSEQ entry type", None),
        (b"MODSEQ x", "Expected a number", None),
    ],
)
def test_search_errors(text: bytes, message: str, code: str | None) -> None:
    err = error(b"a SEARCH " + text)
    assert (err.tag, err.message, err.code) == ("a", message, code)


def test_search_nesting_limit() -> None:
    deep = MAX_SEARCH_DEPTH
    assert key_of(b"(" * deep + b"SEEN" + b")" * deep) == _SEEN
    assert error(b"a SEARCH " + b"(" * (deep + 1) + b"SEEN" + b")" * (deep + 1)).message == (
        "Search program nested too deeply"
    )
    # NOT chains build a tree as deep as they are long.
    assert isinstance(key_of(b"NOT " * (deep - 1) + b"SEEN"), Not)
    assert error(b"a SEARCH " + b"NOT " * deep + b"SEEN").message == (
        "Search program nested too deeply"
    )
    # Alternating lists and ORs cannot be flattened either.
    nested = b"SEEN"
    for _ in range(deep):
        nested = b"OR DRAFT (FLAGGED " + nested + b")"
    assert error(b"a SEARCH " + nested).message == "Search program nested too deeply"


# Linear parsing takes milliseconds; a quadratic one would run into this bound by far.
@pytest.mark.timeout(30)
def test_long_or_chains_are_flat_and_fast() -> None:
    left = key_of(b"OR " * 20000 + b"SEEN" + b" UID 1" * 20000)
    right = key_of(b"OR SEEN " * 20000 + b"DRAFT")
    assert isinstance(left, Or)
    assert len(left.keys) == 20001
    assert isinstance(right, Or)
    assert len(right.keys) == 20001
    assert needs(left).headers is False


# ----------------------------------------------------------------------------- fuzzing

_VALID: list[list[bytes]] = [
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
]
_NOISE = [
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


def _mutate(rng: random.Random, chunks: list[bytes]) -> list[bytes]:
    chunks = list(chunks)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chunks))
        data = bytearray(chunks[i])
        op = rng.randrange(7)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(_NOISE)
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


def _random_command(rng: random.Random) -> list[bytes]:
    parts = [rng.choice([b"a1 ", b"* ", b"x "]), rng.choice(list(_COMMAND_WORDS))]
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.3:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))))
        else:
            parts.append(rng.choice(_NOISE + _SEARCH_WORDS))
    return [b"".join(parts)]


_COMMAND_WORDS = [
    b"LOGIN ",
    b"SELECT ",
    b"LIST ",
    b"STATUS x ",
    b"APPEND x ",
    b"SEARCH ",
    b"UID SEARCH ",
    b"FETCH 1 ",
    b"UID FETCH * ",
    b"STORE 1 ",
    b"COPY 1 ",
    b"ID ",
    b"ENABLE ",
    b"AUTHENTICATE ",
]
_SEARCH_WORDS = [
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
]


class _AnyMessage:
    seq, uid, size, modseq = 3, 30, 1000, 9
    flags = frozenset({"\\Seen", "$Junk"})
    internaldate = datetime(2024, 1, 1, 12, tzinfo=UTC)
    sent_date = None

    def header_values(self, name: str) -> list[str]:
        return ["x"]

    def header_text(self) -> str:
        return "From: x\r\n"

    def body_text(self) -> str:
        return "hello"


def _check(chunks: list[bytes]) -> None:
    failure: ParseError | None = None
    try:
        request = parse_request(chunks)
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


def test_fuzz_only_parse_error_escapes() -> None:
    """Random mutations of valid commands and random junk (fixed seed). Set
    MAILGATE_FUZZ_SECONDS to run longer."""
    rng = random.Random(3501)
    budget = float(os.environ.get("MAILGATE_FUZZ_SECONDS", "2"))
    for chunks in _VALID:
        parse_request(chunks)  # the seeds themselves are valid
    deadline = time.monotonic() + budget
    runs = 0
    while time.monotonic() < deadline or runs < 2000:
        roll = rng.random()
        if roll < 0.6:
            chunks = _mutate(rng, rng.choice(_VALID))
        elif roll < 0.85:
            chunks = _random_command(rng)
        else:
            chunks = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))]
        _check(chunks)
        runs += 1


@pytest.mark.parametrize(
    "chunks",
    [
        [b"a SEARCH " + b"(" * 100000],
        [b"a SEARCH " + b"NOT " * 100000 + b"ALL"],
        [b"a SEARCH " + b"OR " * 100000],
        [b"a SEARCH " + b"(OR SEEN " * 30000],
        [b"a FETCH 1 BODY[" + b"1." * 50000 + b"1]"],
        [b"a FETCH " + b"1," * 100000 + b"1 FLAGS"],
        [b"a STORE 1 FLAGS " + b"x " * 50000],
        [b"a LOGIN " + b"{99999999999}"],
        [b"a LIST " + b"(" * 10000],
    ],
)
@pytest.mark.timeout(30)  # a hang guard, not a speed check: quadratic work would take hours
def test_hostile_inputs(chunks: list[bytes]) -> None:
    _check(chunks)


@pytest.mark.parametrize(
    "chunks",
    [["a NOOP"], [None], [b"a LOGIN {1}", None, b""], [b"a NOOP", 5, b""]],
)
def test_wrong_types_still_raise_parse_error(chunks: list[object]) -> None:
    with pytest.raises(ParseError):
        parse_request(chunks)  # type: ignore[arg-type]
