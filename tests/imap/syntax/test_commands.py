"""The command grammar (syntax/commands.py): tags and framing, and each command's arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailgate.imap.syntax.commands import parse_tag
from mailgate.imap.syntax.values import (
    Append,
    AppendMessage,
    Authenticate,
    CatenatePart,
    Compress,
    CopyMove,
    Enable,
    Fetch,
    FetchItem,
    Id,
    List,
    Lsub,
    MailboxArg,
    Qresync,
    Rename,
    Request,
    Section,
    Select,
    SeqRange,
    SequenceSet,
    Status,
    StoreFlags,
    UidExpunge,
)
from tests.imap.syntax.helpers import args, error, parse, seqset

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


# ----------------------------------------------------------------------------- AUTHENTICATE


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


# ----------------------------------------------------------------------------- mailbox commands


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
        # RFC 4469: CATENATE, mixed with a plain message (MULTIAPPEND), TEXT as literal8 too.
        (
            [
                b'a APPEND INBOX (\\Seen) catenate (URL "/INBOX/;UID=1" text ~{2}',
                b"a\x00",
                b") {1}",
                b"x",
                b"",
            ],
            Append(
                "INBOX",
                (
                    AppendMessage(
                        ("\\Seen",),
                        None,
                        b"",
                        (CatenatePart(url="/INBOX/;UID=1"), CatenatePart(text=b"a\x00")),
                    ),
                    AppendMessage((), None, b"x"),
                ),
            ),
        ),
        (
            [b"a APPEND INBOX CATENATE (URL /INBOX/;UID=1)"],
            Append("INBOX", (AppendMessage((), None, b"", (CatenatePart(url="/INBOX/;UID=1"),)),)),
        ),
        # RFC 3516 §4.4: literal8, with LITERAL+ too.
        (
            [b"a APPEND INBOX ~{3}", b"a\x00c", b""],
            Append("INBOX", (AppendMessage((), None, b"a\x00c"),)),
        ),
        (
            [b"a APPEND INBOX ~{3+}", b"abc", b""],
            Append("INBOX", (AppendMessage((), None, b"abc"),)),
        ),
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
        (
            [b'a APPEND INBOX "01-Jan-2024 00:00:00 +0000" "x"'],
            "Expected a message literal or CATENATE",
        ),
        ([b"a APPEND INBOX"], "Missing argument"),
        ([b"a APPEND INBOX (\\Seen)"], "Missing argument"),
        ([b"a APPEND INBOX {1}", b"x", b" junk"], "Expected a message literal or CATENATE"),
        ([b"a APPEND INBOX CATENATE"], "Missing argument"),
        ([b"a APPEND INBOX CATENATE ()"], "Expected TEXT or URL"),
        ([b"a APPEND INBOX CATENATE (URL)"], "Expected TEXT or URL"),
        ([b"a APPEND INBOX CATENATE (URL "], "Missing argument"),
        ([b'a APPEND INBOX CATENATE (TEXT "x")'], "Expected a literal"),
        ([b'a APPEND INBOX CATENATE (FILE "x")'], "Expected TEXT or URL"),
        ([b'a APPEND INBOX CATENATE (URL "x"'], "Missing argument"),
        ([b'a APPEND INBOX CATENATE (URL "\xc3\xa4")'], "An IMAP URL is ASCII (RFC 5092)"),
        ([b'a APPEND INBOX CATENATES (URL "x")'], "Expected a message literal or CATENATE"),
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


def test_compress() -> None:
    assert args(b"a COMPRESS deflate") == Compress("DEFLATE")
    assert error(b"a COMPRESS").message == "Missing argument"
    assert error(b"a COMPRESS GZIP").message == (
        "Unknown compression mechanism; only DEFLATE is offered"
    )
    assert len(error(b"a COMPRESS " + b"X" * 60000).message) < 80
    assert error(b"a COMPRESS DEFLATE DEFLATE").message == (
        "Unexpected characters at end of command"
    )
    assert error(b'a COMPRESS "DEFLATE"').message == "Expected an atom"


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
        (b"SAVEDATE", (FetchItem("SAVEDATE"),)),
        (b"PREVIEW", (FetchItem("PREVIEW"),)),
        (b"(PREVIEW (LAZY) UID)", (FetchItem("PREVIEW"), FetchItem("UID"))),
        (b"(preview (lazy lazy))", (FetchItem("PREVIEW"),)),
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
        (b"a FETCH 1 (PREVIEW (FUZZY))", "Expected a FETCH item"),
        (b"a FETCH 1 (PREVIEW (LAZY FUZZY))", "Unknown PREVIEW modifier"),
        (b"a FETCH 1 (PREVIEW ())", "Expected a FETCH item"),
        (b"a FETCH 1 PREVIEW (LAZY", "Unknown FETCH modifier"),
        (b"a FETCH 1 (SAVEDATE[])", "Unexpected section"),
        (b"a FETCH $,1 FLAGS", "Expected a space"),
        (b"a FETCH 1 BINARY[1.TEXT]", "Invalid section"),
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
