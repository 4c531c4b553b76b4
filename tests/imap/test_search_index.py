"""Header and text SEARCH keys are answered from the text index built at ingest (store
header_texts and body_texts), and must find exactly what RFC 3501 §6.4.4 says: a case-insensitive
substring of a decoded header value, of the header section (TEXT) or of the decoded body text.

Each message here comes with what a reader sees of it (decoded values, body text), written out by
hand; each program is checked against a plain evaluation of that, not against the server's own
matcher. The needles cross word boundaries, sit in encoded words, fold case beyond ASCII (ß, ﬁ,
final sigma), are one character long, sit past the part of a long body the index keeps, or
contain a line break (which the index leaves to the per-message matcher)."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, search_numbers
from tests.transcript import Transcript

# Longer than the text the index keeps of a body (mime/imapsearch.BODY_INDEXED characters).
LONG = "lorem ipsum " * 12_000


@dataclass
class Mail:
    raw: bytes
    headers: dict[str, list[str]]  # lower-case name -> the values SEARCH sees, decoded
    body: str  # the decoded text of its text parts
    flags: str = ""
    text: str = field(init=False)  # the header section, as TEXT sees it

    def __post_init__(self) -> None:
        self.text = self.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


MAILS = [
    Mail(
        b"From: Alice Martin <alice.martin@example.test>\r\n"
        b"To: bob@example.test\r\n"
        b"Subject: Quarterly invoice-report for ACME\r\n"
        b"Message-ID: <m1@example.test>\r\n"
        b"\r\n"
        b"Please review the attached\r\nquarterly numbers.\r\n",
        {
            "from": ["Alice Martin <alice.martin@example.test>"],
            "to": ["bob@example.test"],
            "subject": ["Quarterly invoice-report for ACME"],
            "message-id": ["<m1@example.test>"],
        },
        "Please review the attached\r\nquarterly numbers.\r\n",
        flags="\\Seen",
    ),
    Mail(
        (
            "From: =?UTF-8?B?" + _b64("Zoë Ångström") + "?= <zoe@example.test>\r\n"
            'To: bob@example.test\r\nCc: "Carol, Diaz" <carol@example.test>\r\n'
            "Subject: =?UTF-8?Q?Caf=C3=A9_cr=C3=A8me_Stra=C3=9Fe?=\r\n"
            "Message-ID: <m2@example.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            "=CE=A3=CE=AF=CF=83=CF=85=CF=86=CE=BF=CF=82 =CE=9F=CE=94=CE=9F=CE=A3 =EF=AC=81le\r\n"
        ).encode(),
        {
            "from": ["Zoë Ångström <zoe@example.test>"],
            "to": ["bob@example.test"],
            "cc": ['"Carol, Diaz" <carol@example.test>', "Carol, Diaz <carol@example.test>"],
            "subject": ["Café crème Straße"],
            "message-id": ["<m2@example.test>"],
            "mime-version": ["1.0"],
            "content-type": ["text/plain; charset=utf-8"],
            "content-transfer-encoding": ["quoted-printable"],
        },
        "Σίσυφος ΟΔΟΣ ﬁle\r\n",
    ),
    Mail(
        (
            "From: Frank Muller <frank@example.org>\r\n"
            "To: first@example.test\r\nTo: second@example.test\r\n"
            "Bcc: hidden@example.test\r\nX-Tag: Alpha Beta\r\n"
            "Subject: menu\r\nMessage-ID: <m3@example.test>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + _b64("Crème brûlée tonight")
            + "\r\n--b\r\nContent-Type: text/html\r\n\r\n"
            "<p>Cr&egrave;me tonight</p>\r\n--b--\r\n"
        ).encode(),
        {
            "from": ["Frank Muller <frank@example.org>"],
            "to": ["first@example.test", "second@example.test"],
            "bcc": ["hidden@example.test"],
            "x-tag": ["Alpha Beta"],
            "subject": ["menu"],
            "message-id": ["<m3@example.test>"],
            "mime-version": ["1.0"],
            "content-type": ['multipart/alternative; boundary="b"'],
        },
        "Crème brûlée tonight\n<p>Cr&egrave;me tonight</p>\r\n",
        flags="\\Flagged",
    ),
    Mail(
        (
            "From: Bob <bob@example.test>\r\nTo: alice.martin@example.test\r\n"
            "Subject: big\r\nMessage-ID: <m4@example.test>\r\n\r\n"
            "early-word " + LONG + " needle-at-the-end\r\n"
        ).encode(),
        {
            "from": ["Bob <bob@example.test>"],
            "to": ["alice.martin@example.test"],
            "subject": ["big"],
            "message-id": ["<m4@example.test>"],
        },
        "early-word " + LONG + " needle-at-the-end\r\n",
    ),
    Mail(
        # A subject that looks like another field to the index of all fields (HEADER X-Tag
        # gamma finds it there, the matcher then says no), and an X-Tag with nothing in it.
        b"From: carol@example.test\r\nTo: bob@example.test\r\nSubject: x-tag:gamma\r\n"
        b"X-Tag:\r\nMessage-ID: <m5@example.test>\r\n\r\nNothing much. Cafe\r\n",
        {
            "from": ["carol@example.test"],
            "to": ["bob@example.test"],
            "subject": ["x-tag:gamma"],
            "x-tag": [""],
            "message-id": ["<m5@example.test>"],
        },
        "Nothing much. Cafe\r\n",
        flags="\\Seen \\Flagged",
    ),
]

# A leaf is (key, needle) for text keys, (key,) for the others; a needle goes out as a literal.
LEAVES: list[tuple[str, ...]] = [
    ("SUBJECT", "y invoice-r"),
    ("SUBJECT", "INVOICE"),
    ("SUBJECT", "café CRÈME"),
    ("SUBJECT", "strasse"),  # ß folds to ss
    ("SUBJECT", "é"),
    ("SUBJECT", "a"),
    ("SUBJECT", "x-tag:"),
    ("SUBJECT", "zz-none"),
    ("SUBJECT", ""),
    ("FROM", "alice.martin@"),
    ("FROM", "ZOË Å"),
    ("FROM", "ZOE@EXAMPLE"),
    ("FROM", "martin <alice"),
    ("FROM", "=?utf-8?"),  # the raw encoded word: not in the decoded value
    ("TO", "bob@"),
    ("TO", "second@"),
    ("TO", "test\nsecond"),  # across two fields: the matcher's, and no message
    ("CC", "carol, diaz <"),
    ("CC", "l, d"),
    ("BCC", "hidden"),
    ("BCC", ""),
    ("HEADER X-Tag", ""),
    ("HEADER X-Tag", "beta"),
    ("HEADER X-Tag", "alpha beta"),
    ("HEADER X-Tag", "gamma"),
    ("HEADER Message-ID", "<m3@"),
    ("HEADER Subject", ""),
    ("HEADER Content-Type", "alternative"),
    ("HEADER X-Missing", ""),
    ("BODY", "FILE"),  # ﬁ folds to fi
    ("BODY", "σίσυφος"),
    ("BODY", "οδοσ"),  # ΟΔΟΣ: a capital sigma folds to the small one
    ("BODY", "brûlée TONIGHT"),
    ("BODY", "&egrave;"),
    ("BODY", "attached\r\nquarterly"),
    ("BODY", "early-word"),
    ("BODY", "needle-at-the-end"),  # past what the index keeps of that body
    ("BODY", "ipsum lorem"),
    ("BODY", "e"),
    ("BODY", ""),
    ("TEXT", "=?utf-8?q?caf"),
    ("TEXT", "café"),
    ("TEXT", "cafe"),
    ("TEXT", "needle-at-the-end"),
    ("TEXT", "hidden@example"),
    ("TEXT", "x-tag:\r\nmessage"),
    ("SEEN",),
    ("FLAGGED",),
    ("SINCE 1-Jan-2000",),
]


def matches(program: tuple[object, ...], mail: Mail) -> bool:
    """RFC 3501 §6.4.4, over what a reader sees of `mail`."""
    head = program[0]
    if head == "NOT":
        return not matches(program[1], mail)  # type: ignore[arg-type]
    if head == "OR":
        return any(matches(p, mail) for p in program[1:])  # type: ignore[arg-type]
    if head == "AND":
        return all(matches(p, mail) for p in program[1:])  # type: ignore[arg-type]
    assert isinstance(head, str)
    if len(program) == 1:
        return {
            "SEEN": "\\Seen" in mail.flags,
            "FLAGGED": "\\Flagged" in mail.flags,
            "SINCE 1-Jan-2000": True,
        }[head]
    needle = str(program[1]).casefold()
    if head == "BODY":
        return needle in mail.body.casefold()
    if head == "TEXT":
        return needle in mail.text.casefold() or needle in mail.body.casefold()
    name = head.split()[-1].lower()
    values = mail.headers.get(name, [])
    if not needle:
        return bool(values)
    return any(needle in v.casefold() for v in values)


def render(program: tuple[object, ...]) -> tuple[str, list[bytes]]:
    """The program as IMAP search keys, with "\\x00" where each needle's literal goes."""
    head = program[0]
    if head in ("NOT", "OR", "AND"):
        parts = [render(p) for p in program[1:]]  # type: ignore[arg-type]
        text = " ".join(t for t, _ in parts)
        literals = [b for _, ls in parts for b in ls]
        if head == "AND":
            return f"({text})", literals
        return f"{head} {text}", literals
    if len(program) == 1:
        return str(head), []
    return f"{head} \x00", [str(program[1]).encode()]


def program(rng: random.Random, depth: int = 0) -> tuple[object, ...]:
    roll = rng.random()
    if depth < 2 and roll < 0.2:
        return ("OR", program(rng, depth + 1), program(rng, depth + 1))
    if depth < 2 and roll < 0.35:
        return ("NOT", program(rng, depth + 1))
    if depth < 2 and roll < 0.5:
        return ("AND", program(rng, depth + 1), program(rng, depth + 1))
    return rng.choice(LEAVES)


def uid_search(s: Transcript, prog: tuple[object, ...]) -> list[int]:
    text, literals = render(prog)
    return search_numbers(s.ok(f"UID SEARCH CHARSET UTF-8 {text}", *literals))


@pytest.fixture(scope="module")
def filled(server: Server) -> Iterator[tuple[Transcript, list[int]]]:
    """A mailbox of MAILS (INBOX of a fresh account, selected) and their UIDs."""
    s = Transcript.login(server, server.account())
    uids = [append(s, mail.raw, flags=mail.flags or None) for mail in MAILS]
    s.ok("SELECT INBOX")
    yield s, uids
    s.close()


def expected(prog: tuple[object, ...], uids: list[int], mails: list[Mail] = MAILS) -> list[int]:
    return [uid for uid, mail in zip(uids, mails, strict=True) if matches(prog, mail)]


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: " ".join(leaf).replace("\n", "\\n"))
def test_each_key_finds_what_a_reader_sees(
    filled: tuple[Transcript, list[int]], leaf: tuple[str, ...]
) -> None:
    s, uids = filled
    assert uid_search(s, leaf) == expected(leaf, uids)


def test_not_or_and_combinations(filled: tuple[Transcript, list[int]]) -> None:
    s, uids = filled
    rng = random.Random(15)
    for _ in range(120):
        prog = program(rng)
        assert uid_search(s, prog) == expected(prog, uids), render(prog)[0]


def test_sequence_numbers_and_esearch(filled: tuple[Transcript, list[int]]) -> None:
    s, _ = filled
    r = s.ok("SEARCH RETURN (COUNT MIN) CHARSET UTF-8 BODY \x00", b"tonight")
    assert r.lines(b"ESEARCH") == [b'* ESEARCH (TAG "%s") MIN 3 COUNT 1' % r.tagged.split()[0]]
    assert search_numbers(s.ok("SEARCH NOT SUBJECT invoice")) == [2, 3, 4, 5]


@pytest.fixture
def owner(sessions: Callable[[Account], Transcript], account: Account) -> Transcript:
    s = sessions(account)
    for mail in MAILS:
        append(s, mail.raw, flags=mail.flags or None)
    s.ok("CREATE Other")
    s.ok("SELECT INBOX")
    return s


def test_copied_moved_and_expunged_messages(owner: Transcript) -> None:
    """Copies share the stored message and its index; what leaves a mailbox is not found
    there any more."""
    s = owner
    s.ok("UID COPY 2 Other")  # Zoë's
    s.ok("UID MOVE 3 Other")  # Frank's
    s.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    s.ok("EXPUNGE")
    assert search_numbers(s.ok("UID SEARCH FROM zoe")) == [2]
    assert search_numbers(s.ok("UID SEARCH BODY tonight")) == []
    assert search_numbers(s.ok("UID SEARCH SUBJECT invoice")) == []
    assert search_numbers(s.ok("UID SEARCH OR TEXT hidden SUBJECT big")) == [4]
    s.ok("SELECT Other")
    assert search_numbers(s.ok("UID SEARCH FROM zoe")) == [1]
    assert search_numbers(s.ok("UID SEARCH BODY tonight")) == [2]
    assert search_numbers(s.ok("UID SEARCH BCC hidden")) == [2]
    assert search_numbers(s.ok("UID SEARCH NOT TEXT hidden")) == [1]
    s.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    s.ok("EXPUNGE")
    assert search_numbers(s.ok("SEARCH FROM zoe")) == []
    # The copy left in INBOX is still found there.
    s.ok("SELECT INBOX")
    assert search_numbers(s.ok("UID SEARCH CHARSET UTF-8 SUBJECT \x00", "CAFÉ".encode())) == [2]
