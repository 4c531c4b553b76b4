"""CATENATE (RFC 4469): APPEND a message made of literal text and parts of the user's own
messages named by IMAP URLs (RFC 5092), with MULTIAPPEND too; a URL that does not resolve is
NO [BADURL url], a result over the limit NO [TOOBIG], and then nothing is stored."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.harness import Account, Server
from tests.imap.helpers import MULTIPART, PLAIN, append, appenduid, fetches, status_items
from tests.transcript import Response, Transcript


def bodies(r: Response) -> dict[int, bytes]:
    out = {}
    for seq, text in fetches(r).items():
        m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", text)
        assert m is not None, text
        out[seq] = text[m.end() : m.end() + int(m.group(1))]
    return out


def catenate(imap: Transcript, mailbox: str, parts: list[tuple[str, bytes | str]]) -> Response:
    """APPEND mailbox CATENATE (...), TEXT parts as synchronising literals."""
    command, literals = f"APPEND {mailbox} CATENATE (", []
    for i, (kind, value) in enumerate(parts):
        command += " " if i else ""
        if kind == "URL":
            command += f'URL "{value}"'
        else:
            command += "TEXT \x00"
            assert isinstance(value, bytes)
            literals.append(value)
    return imap.command(command + ")", *literals)


def test_text_and_urls(account: Account, imap: Transcript) -> None:
    assert b"CATENATE" in imap.ok("CAPABILITY").untagged[0].split()
    uidvalidity, (plain,) = appenduid(imap.ok("APPEND INBOX \x00", PLAIN))
    multi = append(imap, MULTIPART)
    imap.ok("CREATE Work")
    r = catenate(
        imap,
        "Work",
        [
            ("TEXT", b"Subject: assembled\r\n"),
            (
                "URL",
                f"/INBOX;UIDVALIDITY={uidvalidity}/;UID={plain}/;SECTION=HEADER.FIELDS%20(From%20To)",
            ),
            ("TEXT", b"\r\n"),
            ("URL", f"/INBOX/;UID={plain}/;SECTION=TEXT"),
            ("URL", f"/inbox/;uid={multi}/;section=1"),
            ("URL", f"/INBOX/;UID={multi}/;SECTION=2/;PARTIAL=0.4"),
        ],
    )
    assert r.status == "OK", r
    assert r.code is not None
    assert r.code.startswith("APPENDUID")
    # The whole message, and an absolute URL naming this user.
    user = account.address.replace("@", "%40")
    r = catenate(imap, "Work", [("URL", f"imap://{user}@localhost/INBOX/;UID={plain}")])
    assert r.status == "OK", r
    imap.ok("SELECT Work")
    got = bodies(imap.ok("FETCH 1:2 BODY.PEEK[]"))
    assert got[1] == (
        b"Subject: assembled\r\n"
        b"From: Alice Example <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n\r\n"
        b"\r\nThe numbers are in.\r\nSee you on Monday.\r\n"
        b"Hello part one.AAEC"
    )
    assert got[2] == PLAIN


def test_multiappend_mixes_literals_and_catenate(imap: Transcript) -> None:
    plain = append(imap, PLAIN)
    r = imap.command(
        f'APPEND INBOX (\\Seen) CATENATE (URL "/INBOX/;UID={plain}/;SECTION=HEADER" TEXT \x00)'
        " (\\Flagged) \x00",
        b"first\r\n",
        b"Subject: second\r\n\r\nplain\r\n",
    )
    assert r.status == "OK", r
    assert appenduid(r)[1] == [plain + 1, plain + 2]
    imap.ok("SELECT INBOX")
    got = bodies(imap.ok("FETCH 2:3 BODY.PEEK[]"))
    assert got[2] == PLAIN.split(b"\r\n\r\n")[0] + b"\r\n\r\nfirst\r\n"
    assert got[3] == b"Subject: second\r\n\r\nplain\r\n"


def test_bad_urls_store_nothing(server: Server, imap: Transcript) -> None:
    plain = append(imap, PLAIN)
    other = server.account()
    with Transcript.login(server, other) as theirs:
        theirs_uid = append(theirs, PLAIN)
    imap.ok("CREATE Work")
    for url in (
        f"/INBOX;UIDVALIDITY=12345/;UID={plain}",  # another UIDVALIDITY
        f"/INBOX/;UID={plain + 10}",  # no such message
        f"/Nowhere/;UID={plain}",  # no such mailbox
        f"/INBOX/;UID={plain}/;SECTION=7",  # no such part
        f"/INBOX/;UID={plain}/;SECTION=0",  # not a section
        f"/INBOX/;UID={plain};URLAUTH=anonymous:internal:abc",  # URLAUTH is not followed
        f"imap://{other.address.replace('@', '%40')}@localhost/INBOX/;UID={theirs_uid}",
        f"imap://localhost/INBOX/;UID={plain}",  # anonymous
        "INBOX/;UID=1",  # neither absolute nor server-relative
        "/INBOX/;UID=0",
    ):
        r = catenate(imap, "Work", [("TEXT", b"a: b\r\n\r\n"), ("URL", url), ("TEXT", b"c")])
        assert r.status == "NO", (url, r)
        assert r.code is not None
        assert r.code.startswith("BADURL "), (url, r)
    # A MULTIAPPEND with one bad URL stores none of its messages.
    r = imap.command(f'APPEND Work \x00 CATENATE (URL "/INBOX/;UID={plain + 10}")', PLAIN)
    assert r.status == "NO", r
    assert status_items(imap.ok("STATUS Work (MESSAGES)")) == {"MESSAGES": 0}
    # A missing destination is TRYCREATE, whatever the URLs.
    imap.no('APPEND Nowhere CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=9")', code="TRYCREATE")


def test_too_big_and_empty(make_server: Callable[..., Server]) -> None:
    server = make_server(imap={"max_message_size": 1000})
    with Transcript.login(server, server.account()) as imap:
        plain = append(imap, PLAIN)
        url = f"/INBOX/;UID={plain}"
        parts: list[tuple[str, bytes | str]] = [("URL", url)] * (1000 // len(PLAIN) + 1)
        r = catenate(imap, "INBOX", parts)
        assert r.status == "NO", r
        assert r.code == "TOOBIG"
        r = catenate(imap, "INBOX", [("URL", f"{url}/;PARTIAL=100000.1")])
        assert r.status == "NO", r
        assert r.code == "CANNOT"
        assert status_items(imap.ok("STATUS INBOX (MESSAGES)")) == {"MESSAGES": 1}


def test_malformed_catenate_is_bad(imap: Transcript) -> None:
    for command in (
        "APPEND INBOX CATENATE",
        "APPEND INBOX CATENATE ()",
        "APPEND INBOX CATENATE (URL)",
        'APPEND INBOX CATENATE (FILE "/INBOX/;UID=1")',
        'APPEND INBOX CATENATE (TEXT "quoted")',
        'APPEND INBOX CATENATE URL "/INBOX/;UID=1"',
        'APPEND INBOX CATENATE (URL "/INBOX/;UID=1"',
        'APPEND INBOX CATENATES (URL "/INBOX/;UID=1")',
    ):
        r = imap.bad(command)
        assert len(r.tagged.split(b" ", 2)[2]) > 3, r
