"""APPEND: flags, dates, APPENDUID (RFC 4315), TRYCREATE, TOOBIG, LITERAL+ (RFC 7888) and
MULTIAPPEND (RFC 3502)."""

from __future__ import annotations

import imaplib
import re
import time
from collections.abc import Callable

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    appenduid,
    code_value,
    fetches,
    flags_of,
    message,
    number_of,
    status_items,
)
from tests.transcript import Transcript, sock_closed


def test_append_with_flags_and_date(imap: Transcript) -> None:
    data = message("dated")
    r = imap.ok(
        'APPEND INBOX (\\Seen \\Flagged $Work) "05-Feb-2024 14:30:00 +0100" \x00',
        data,
        code="APPENDUID",
    )
    uidvalidity, uids = appenduid(r)
    assert uids == [1]
    sel = imap.ok("SELECT INBOX")
    assert int(code_value(sel, b"UIDVALIDITY")) == uidvalidity
    item = fetches(imap.ok("UID FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"))[1]
    assert flags_of(item) == {"\\Seen", "\\Flagged", "$Work"}
    assert b'INTERNALDATE "05-Feb-2024 14:30:00 +0100"' in item
    assert b"RFC822.SIZE %d" % len(data) in item
    assert item.endswith(b"BODY[] {%d}\r\n%s" % (len(data), data))


def test_append_without_date_uses_now(imap: Transcript) -> None:
    append(imap, message())
    imap.ok("SELECT INBOX")
    item = fetches(imap.ok("FETCH 1 INTERNALDATE"))[1]
    year = time.gmtime().tm_year
    assert re.search(rb'INTERNALDATE "\d\d-\w{3}-(\d{4}) ', item).group(1) in (  # type: ignore[union-attr]
        str(year).encode(),
        str(year - 1).encode(),
    )


def test_uids_ascend(imap: Transcript) -> None:
    uids = [append(imap, message(f"m{i}")) for i in range(5)]
    assert uids == sorted(uids)
    assert len(set(uids)) == 5
    assert uids == list(range(uids[0], uids[0] + 5))


def test_append_to_every_builtin_mailbox(imap: Transcript) -> None:
    for name in ("INBOX", "Sent", "Trash", "Spam", "Drafts"):
        append(imap, message(name), name, flags="\\Draft" if name == "Drafts" else None)
        assert status_items(imap.ok(f"STATUS {name} (MESSAGES)"))["MESSAGES"] == 1


def test_append_to_missing_mailbox_is_trycreate(imap: Transcript) -> None:
    imap.no("APPEND Nope \x00", message(), code="TRYCREATE")
    # Case-sensitive: "sent" is not "Sent".
    imap.no("APPEND sent \x00", message(), code="TRYCREATE")
    assert status_items(imap.ok("STATUS Sent (MESSAGES)"))["MESSAGES"] == 0
    # The client's next step after TRYCREATE.
    imap.ok("CREATE Nope")
    imap.ok("APPEND Nope \x00", message(), code="APPENDUID")


def test_append_to_inbox_in_any_case(imap: Transcript) -> None:
    imap.ok("APPEND inbox \x00", message(), code="APPENDUID")
    assert status_items(imap.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 1


def test_append_bytes_are_kept_exactly(imap: Transcript) -> None:
    data = (
        b"From: a@example.test\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"8-bit body: caf\xc3\xa9, and a lone \xff byte.\r\n.\r\n..leading dots\r\n"
    )
    append(imap, data)
    imap.ok("SELECT INBOX")
    item = fetches(imap.ok("FETCH 1 BODY.PEEK[]"))[1]
    assert item == b"BODY[] {%d}\r\n%s" % (len(data), data)


def test_append_to_selected_mailbox_reports_exists(imap: Transcript) -> None:
    append(imap, message("first"))
    imap.ok("SELECT INBOX")
    r = imap.ok("APPEND INBOX \x00", message("second"), code="APPENDUID")
    assert number_of(r, b"EXISTS") == 2
    assert len(fetches(imap.ok("FETCH 1:* UID"))) == 2


def test_literal_plus_append(imap: Transcript) -> None:
    data = message("non-synchronizing")
    imap.send(b"a1 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(data), data))
    lines = imap.read_until(lambda line: line.startswith(b"a1 "))
    assert not any(line.startswith(b"+") for line in lines), lines
    assert lines[-1].startswith(b"a1 OK [APPENDUID "), lines
    imap.ok("SELECT INBOX")
    assert flags_of(fetches(imap.ok("FETCH 1 FLAGS"))[1]) == {"\\Seen"}


def test_multiappend(imap: Transcript) -> None:
    one, two, three = message("one"), message("two"), message("three")
    r = imap.ok(
        'APPEND INBOX (\\Seen) \x00 (\\Flagged) "01-Mar-2024 08:00:00 +0000" \x00 \x00',
        one,
        two,
        three,
        code="APPENDUID",
    )
    _, uids = appenduid(r)
    assert uids == [1, 2, 3]
    assert re.search(rb"\[APPENDUID \d+ 1:3\]", r.tagged), r.tagged
    imap.ok("SELECT INBOX")
    items = fetches(imap.ok("FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert flags_of(items[1]) == {"\\Seen"}
    assert flags_of(items[2]) == {"\\Flagged"}
    assert flags_of(items[3]) == set()
    assert b'"01-Mar-2024 08:00:00 +0000"' in items[2]
    assert all(b"Subject: " + s in items[i] for i, s in ((1, b"one"), (2, b"two"), (3, b"three")))


def test_multiappend_with_literal_plus(imap: Transcript) -> None:
    one, two = message("one"), message("two")
    imap.send(b"a1 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(one), one, len(two), two))
    line = imap.read_until(lambda line: line.startswith(b"a1 "))[-1]
    assert re.match(rb"a1 OK \[APPENDUID \d+ 1:2\]", line), line


def test_too_big_is_refused_before_the_data_is_sent(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(imap={"max_message_size": 1000})
    account = server.account()
    with Transcript.login(server, account) as s:
        assert "APPENDLIMIT=1000" in s.ok("CAPABILITY").untagged[0].decode().split()
        # A synchronizing literal is refused instead of "+": the client never sends the data.
        s.send(b"a1 APPEND INBOX {1001}\r\n")
        line = s.read_line()
        assert line.startswith(b"a1 NO [TOOBIG]"), line
        s.ok("NOOP")
        # Just within the limit is fine.
        fits = message(body="x" * 10)
        fits += b"y" * (1000 - len(fits))
        assert len(fits) == 1000
        s.ok("APPEND INBOX \x00", fits, code="APPENDUID")
        assert status_items(s.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 1


def test_multiappend_is_all_or_nothing(make_server: Callable[..., Server]) -> None:
    server = make_server(imap={"max_message_size": 1000})
    account = server.account()
    with Transcript.login(server, account) as s:
        r = s.command("APPEND INBOX \x00 \x00", message("fits"), b"x" * 2000)
        assert r.status == "NO", r
        assert r.code == "TOOBIG", r
        assert status_items(s.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0


def test_too_big_literal_plus_closes_the_connection(make_server: Callable[..., Server]) -> None:
    server = make_server(imap={"max_message_size": 1000})
    account = server.account()
    with Transcript.login(server, account) as s:
        # The data is already on its way: the server refuses and hangs up rather than read it.
        s.send(b"a1 APPEND INBOX {5000+}\r\n" + b"x" * 100)
        lines = s.read_until(lambda line: line.startswith(b"* BYE"))
        assert lines[0].startswith(b"a1 NO [TOOBIG]"), lines
        assert sock_closed(s)
    with Transcript.login(server, account) as s:
        assert status_items(s.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0


def test_imaplib_append(server: Server, account: Account) -> None:
    client = server.imap_client(account)
    try:
        when = imaplib.Time2Internaldate(time.time())
        typ, data = client.append("INBOX", "(\\Seen)", when, message("via imaplib"))
        assert typ == "OK"
        assert data[0] is not None
        assert b"APPENDUID" in data[0]
        assert client.select("INBOX") == ("OK", [b"1"])
    finally:
        client.logout()


def test_append_errors_are_bad(imap: Transcript) -> None:
    imap.bad("APPEND INBOX")
    imap.bad('APPEND INBOX "not a literal"')
    imap.bad('APPEND INBOX "32-Jan-2024 00:00:00 +0000" \x00', message())
    imap.bad('APPEND INBOX "01-Jan-2024 25:00:00 +0000" \x00', message())
    imap.bad("APPEND INBOX (\\Recent) \x00", message())
    imap.bad("APPEND INBOX (\\Bogus) \x00", message())
    imap.bad("APPEND INBOX (\\Seen \x00", message())
    assert status_items(imap.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0


def test_empty_message_is_refused(imap: Transcript) -> None:
    r = imap.command("APPEND INBOX \x00", b"")
    assert r.status in ("NO", "BAD"), r
    assert status_items(imap.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0


def test_broken_mime_is_stored_and_fetchable(imap: Transcript) -> None:
    broken = (
        b"From: a@example.test\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain; charset=bogus-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    )
    append(imap, broken)
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[] BODY.PEEK[1])")
    item = fetches(r)[1]
    assert b"BODYSTRUCTURE (" in item
    assert b"BODY[] {%d}\r\n%s" % (len(broken), broken) in item
    assert imap.ok("SEARCH BODY base64").status == "OK"


def test_date_with_a_space_padded_day(imap: Transcript) -> None:
    # RFC 3501 §9: date-day-fixed = (SP DIGIT) / 2DIGIT
    append(imap, message(), date=" 5-Feb-2024 10:00:00 +0000")
    imap.ok("SELECT INBOX")
    assert (
        b'INTERNALDATE "05-Feb-2024 10:00:00 +0000"' in fetches(imap.ok("FETCH 1 INTERNALDATE"))[1]
    )
