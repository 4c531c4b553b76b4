"""QRESYNC (RFC 7162 §3.2): ENABLE, SELECT with the client's last state, VANISHED (EARLIER)
for what was expunged meanwhile (even after the server forgot its expunge records), UID FETCH
with VANISHED, VANISHED instead of EXPUNGE once enabled, and [CLOSED]."""

from __future__ import annotations

import time

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, code_value, expand, fetches, flags_of, message, uid_of
from tests.transcript import Response, Transcript


def vanished(r: Response, *, earlier: bool) -> list[int]:
    """The UIDs named by the VANISHED responses of one kind (with or without (EARLIER))."""
    prefix = b"* VANISHED (EARLIER) " if earlier else b"* VANISHED "
    uids: list[int] = []
    for line in r.untagged:
        if line.startswith(prefix) and (earlier or not line.startswith(b"* VANISHED (")):
            uids += expand(line[len(prefix) :])
    return sorted(uids)


def state(s: Transcript, mailbox: str = "INBOX") -> tuple[int, int]:
    """UIDVALIDITY and HIGHESTMODSEQ, as a client would remember them."""
    r = s.ok(f"EXAMINE {mailbox} (CONDSTORE)")
    return int(code_value(r, b"UIDVALIDITY")), int(code_value(r, b"HIGHESTMODSEQ"))


@pytest.fixture
def five(imap: Transcript) -> Transcript:
    """INBOX with UIDs 1-5."""
    for i in range(1, 6):
        append(imap, message(f"m{i}"))
    return imap


def change_meanwhile(server: Server, account: Account) -> None:
    """Another client flags 2 and expunges 4 and 5."""
    with Transcript.login(server, account) as other:
        other.ok("SELECT INBOX")
        other.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
        other.ok("STORE 4:5 +FLAGS.SILENT (\\Deleted)")
        other.ok("EXPUNGE")


def test_enable_qresync(imap: Transcript) -> None:
    r = imap.ok("ENABLE QRESYNC")
    assert r.lines(b"ENABLED") == [b"* ENABLED QRESYNC"]
    # It turns CONDSTORE on too: SELECT reports HIGHESTMODSEQ without being asked.
    assert int(code_value(imap.ok("SELECT INBOX"), b"HIGHESTMODSEQ")) > 0


def test_select_qresync_needs_enable(five: Transcript) -> None:
    uidvalidity, modseq = state(five)
    r = five.bad(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert r.code == "CLIENTBUG"
    assert b"ENABLE QRESYNC" in r.tagged
    five.ok("SELECT INBOX")
    r = five.bad(f"UID FETCH 1:* FLAGS (CHANGEDSINCE {modseq} VANISHED)")
    assert r.code == "CLIENTBUG"


def test_select_reports_what_changed_since(
    server: Server, account: Account, five: Transcript
) -> None:
    uidvalidity, modseq = state(five)
    five.ok("UNSELECT")
    change_meanwhile(server, account)
    five.ok("ENABLE QRESYNC")
    r = five.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert vanished(r, earlier=True) == [4, 5]
    items = fetches(r)
    assert list(items) == [2]  # only the changed message, by its new number
    assert uid_of(items[2]) == 2
    assert flags_of(items[2]) == {"\\Flagged"}
    assert b"MODSEQ (" in items[2]
    # The VANISHED line comes after the select data and before the FETCH.
    lines = r.untagged
    first_vanished = next(i for i, line in enumerate(lines) if line.startswith(b"* VANISHED"))
    assert any(b"HIGHESTMODSEQ" in line for line in lines[:first_vanished])
    assert lines[-1].startswith(b"* 2 FETCH")


def test_known_uids_limit_what_is_reported(
    server: Server, account: Account, five: Transcript
) -> None:
    uidvalidity, modseq = state(five)
    change_meanwhile(server, account)
    five.ok("ENABLE QRESYNC")
    r = five.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4 (1:4 1:4)))")
    assert vanished(r, earlier=True) == [4]


def test_another_uidvalidity_gets_a_plain_select(
    server: Server, account: Account, five: Transcript
) -> None:
    uidvalidity, modseq = state(five)
    change_meanwhile(server, account)
    five.ok("ENABLE QRESYNC")
    r = five.ok(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {modseq}))")
    assert vanished(r, earlier=True) == []
    assert fetches(r) == {}


def test_expunges_are_reported_after_their_records_are_forgotten(
    server: Server, account: Account, five: Transcript
) -> None:
    uidvalidity, modseq = state(five)
    change_meanwhile(server, account)
    assert server.call(server.store.prune_expunged(int(time.time()) + 1)) >= 2
    five.ok("ENABLE QRESYNC")
    r = five.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    # Every UID below UIDNEXT that is not there any more, as the RFC allows.
    assert vanished(r, earlier=True) == [4, 5]
    r = five.ok(f"UID FETCH 1:* FLAGS (CHANGEDSINCE {modseq} VANISHED)")
    assert vanished(r, earlier=True) == [4, 5]


def test_uid_fetch_vanished(server: Server, account: Account, five: Transcript) -> None:
    five.ok("ENABLE QRESYNC")
    r = five.ok("SELECT INBOX")
    modseq = int(code_value(r, b"HIGHESTMODSEQ"))
    change_meanwhile(server, account)
    five.ok("NOOP")  # learns of the changes as VANISHED 4:5 and FETCH 2
    r = five.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert vanished(r, earlier=True) == [4, 5]
    assert list(fetches(r)) == [2]
    r = five.ok(f"UID FETCH 1:3 (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert vanished(r, earlier=True) == []


def test_vanished_replaces_expunge_once_enabled(
    server: Server, account: Account, five: Transcript
) -> None:
    five.ok("ENABLE QRESYNC")
    five.ok("SELECT INBOX")
    with Transcript.login(server, account) as plain, Transcript.login(server, account) as q:
        plain.ok("SELECT INBOX")
        q.ok("ENABLE QRESYNC")
        q.ok("SELECT INBOX")
        five.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        r = five.ok("EXPUNGE")
        assert vanished(r, earlier=False) == [2, 4]
        assert not any(line.endswith(b" EXPUNGE") for line in r.untagged)
        # Other sessions: VANISHED for the one that enabled QRESYNC, EXPUNGE for the other.
        assert vanished(q.ok("NOOP"), earlier=False) == [2, 4]
        r = plain.ok("NOOP")
        assert [line for line in r.untagged if line.endswith(b"EXPUNGE")] == [
            b"* 4 EXPUNGE",
            b"* 2 EXPUNGE",
        ]
        # UID EXPUNGE and MOVE answer the same way.
        five.ok("UID STORE 5 +FLAGS.SILENT (\\Deleted)")
        assert vanished(five.ok("UID EXPUNGE 5"), earlier=False) == [5]
        r = five.ok("UID MOVE 1 Trash")
        assert vanished(r, earlier=False) == [1]
        assert b"COPYUID" in b"".join(r.untagged)


def test_selecting_another_mailbox_says_closed(five: Transcript) -> None:
    five.ok("SELECT INBOX")
    assert b"[CLOSED]" not in b"".join(five.ok("SELECT Sent").untagged)  # not enabled yet
    five.ok("ENABLE QRESYNC")
    r = five.ok("SELECT INBOX")
    assert r.untagged[0].startswith(b"* OK [CLOSED]")
    assert b"[CLOSED]" not in b"".join(r.untagged[1:])
