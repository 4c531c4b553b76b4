"""CONDSTORE (RFC 7162): HIGHESTMODSEQ, FETCH MODSEQ and CHANGEDSINCE, STORE UNCHANGEDSINCE,
SEARCH MODSEQ."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, code_value, fetches, flags_of, message
from tests.transcript import Transcript


def modseq_of(item: bytes) -> int:
    m = re.search(rb"MODSEQ \((\d+)\)", item)
    assert m is not None, item
    return int(m.group(1))


@pytest.fixture
def box(imap: Transcript) -> Transcript:
    for i in range(3):
        append(imap, message(f"m{i}"))
    imap.ok("SELECT INBOX (CONDSTORE)")
    return imap


def test_select_condstore_reports_highestmodseq(imap: Transcript) -> None:
    append(imap, message())
    r = imap.ok("SELECT INBOX (CONDSTORE)")
    assert int(code_value(r, b"HIGHESTMODSEQ")) > 0
    plain = imap.ok("EXAMINE Trash")  # CONDSTORE stays on for the session
    assert int(code_value(plain, b"HIGHESTMODSEQ")) > 0


def test_fetch_modseq_rises_with_each_change(box: Transcript) -> None:
    before = modseq_of(fetches(box.ok("FETCH 2 MODSEQ"))[2])
    r = box.ok("STORE 2 +FLAGS (\\Flagged)")
    after = modseq_of(fetches(r)[2])  # STORE reports MODSEQ once CONDSTORE is on
    assert after > before
    highest = int(code_value(box.ok("SELECT INBOX (CONDSTORE)"), b"HIGHESTMODSEQ"))
    assert highest == after


def test_fetch_changedsince(box: Transcript) -> None:
    base = int(code_value(box.ok("SELECT INBOX (CONDSTORE)"), b"HIGHESTMODSEQ"))
    box.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
    items = fetches(box.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {base})"))
    assert list(items) == [3]
    assert flags_of(items[3]) == {"\\Seen"}
    assert modseq_of(items[3]) > base
    items = fetches(box.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base})"))
    assert list(items) == [3]
    assert b"UID 3" in items[3]


def test_store_unchangedsince(box: Transcript) -> None:
    current = modseq_of(fetches(box.ok("FETCH 1 MODSEQ"))[1])
    box.ok(f"STORE 1 (UNCHANGEDSINCE {current}) +FLAGS (\\Seen)")
    # The message changed since `current`: a second conditional store must not apply.
    r = box.ok(f"STORE 1 (UNCHANGEDSINCE {current}) +FLAGS (\\Flagged)")
    assert re.search(rb"\[MODIFIED 1\]", r.tagged), r
    assert flags_of(fetches(box.ok("FETCH 1 FLAGS"))[1]) == {"\\Seen"}


def test_search_modseq(box: Transcript) -> None:
    base = int(code_value(box.ok("SELECT INBOX (CONDSTORE)"), b"HIGHESTMODSEQ"))
    box.ok("STORE 2 +FLAGS.SILENT (\\Answered)")
    r = box.ok(f"SEARCH MODSEQ {base + 1}")
    line = r.lines(b"SEARCH")[0]
    assert re.match(rb"\* SEARCH 2 \(MODSEQ \d+\)$", line), line


def test_status_highestmodseq(box: Transcript) -> None:
    before = int(code_value(box.ok("SELECT INBOX (CONDSTORE)"), b"HIGHESTMODSEQ"))
    append(box, message("new"))
    r = box.ok("STATUS INBOX (HIGHESTMODSEQ)")
    assert int(r.lines(b"STATUS")[0].split()[-1].rstrip(b")")) > before


def test_flag_updates_to_other_sessions_carry_modseq(
    server: Server, account: Account, box: Transcript
) -> None:
    with Transcript.login(server, account) as other:
        other.ok("SELECT INBOX")
        other.ok("STORE 1 +FLAGS (\\Flagged)")
    r = box.ok("NOOP")
    item = fetches(r)[1]
    assert flags_of(item) == {"\\Flagged"}
    assert modseq_of(item) > 0


def test_condstore_syntax_errors(box: Transcript) -> None:
    box.bad("FETCH 1 FLAGS (CHANGEDSINCE)")
    box.bad("FETCH 1 FLAGS (CHANGEDSINCE x)")
    box.bad("STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)")
    box.bad("SELECT INBOX (BOGUS)")


def test_the_first_condstore_command_while_selected_reports_highestmodseq(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    """imaptest's esearch-condstore: FETCH MODSEQ after a plain SELECT turns CONDSTORE on and
    says where the mailbox is (the SELECT did not)."""
    for i in range(2):
        append(imap, message(f"m{i}"))
    other = sessions(account)  # STATUS HIGHESTMODSEQ would turn CONDSTORE on here
    highest = int(other.ok("STATUS INBOX (HIGHESTMODSEQ)").lines(b"STATUS")[0].split()[-1][:-1])
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 MODSEQ")
    assert b"* OK [HIGHESTMODSEQ %d] Highest" % highest in r.untagged, r
    assert not any(b"HIGHESTMODSEQ" in line for line in imap.ok("FETCH 1 MODSEQ").untagged)
    # From now on a STORE's FETCH carries UID and MODSEQ (RFC 7162 §3.1).
    item = fetches(imap.ok("STORE 2 +FLAGS (\\Seen)"))[2]
    assert b"UID 2" in item
    assert modseq_of(item) > highest


def test_esearch_with_a_modseq_key_reports_the_modseq_of_what_it_returns(
    box: Transcript,
) -> None:
    """RFC 7162 §3.1.5 with RFC 4731: MODSEQ in ESEARCH is the highest of the messages the
    response reports: MIN's or MAX's alone, both of them, or every match for ALL/COUNT."""
    modseq = {}
    for seq in (1, 3, 2):  # 2 is changed last, so it has the highest MODSEQ
        modseq[seq] = modseq_of(fetches(box.ok(f"STORE {seq} +FLAGS (\\Seen)"))[seq])
    key = 'MODSEQ "/flags/\\\\seen" all 1'
    line = box.ok(f"SEARCH RETURN (MIN) 1:3 {key}").lines(b"ESEARCH")[0]
    assert line.endswith(b" MIN 1 MODSEQ %d" % modseq[1]), line
    line = box.ok(f"SEARCH RETURN (MAX) 1:3 {key}").lines(b"ESEARCH")[0]
    assert line.endswith(b" MAX 3 MODSEQ %d" % modseq[3]), line
    line = box.ok(f"SEARCH RETURN () 1:3 {key}").lines(b"ESEARCH")[0]
    assert line.endswith(b" ALL 1:3 MODSEQ %d" % modseq[2]), line
    line = box.ok(f"SEARCH RETURN (MIN MAX) 2:3 {key}").lines(b"ESEARCH")[0]
    assert line.endswith(b" MIN 2 MAX 3 MODSEQ %d" % modseq[2]), line
    line = box.ok(f"SEARCH RETURN (COUNT) 1:3 {key}").lines(b"ESEARCH")[0]
    assert line.endswith(b" COUNT 3 MODSEQ %d" % modseq[2]), line
    line = box.ok(f"UID SEARCH RETURN (ALL) 2:3 MODSEQ {modseq[3]}").lines(b"ESEARCH")[0]
    assert line.endswith(b" UID ALL 2:3 MODSEQ %d" % modseq[2]), line
    # Nothing found: no MODSEQ either.
    line = box.ok(f"SEARCH RETURN (ALL) 1:3 MODSEQ {modseq[2] + 1}").lines(b"ESEARCH")[0]
    assert b"MODSEQ" not in line, line
