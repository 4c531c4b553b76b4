"""\\Recent (RFC 3501 §2.3.2): a message is recent in exactly one session, the first to select
its mailbox (or, holding it selected, to hear of it) after it arrived; EXAMINE only looks.
SELECT, EXAMINE and new mail say `* n RECENT`, STATUS counts what no session has taken yet,
and SEARCH RECENT, NEW and OLD follow it. The store decides, so this holds across nodes."""

from __future__ import annotations

from collections.abc import Callable

from tests.harness import Account, Server
from tests.imap.helpers import append, fetches, flags_of, message, number_of, search_numbers
from tests.transcript import Response, Transcript


def recent_flags(r: Response) -> dict[int, bool]:
    return {seq: "\\Recent" in flags_of(item, recent=True) for seq, item in fetches(r).items()}


def status_recent(s: Transcript, mailbox: str = "INBOX") -> int:
    line = s.ok(f"STATUS {mailbox} (RECENT)").lines(b"STATUS")[0]
    return int(line.rsplit(b" ", 1)[1].rstrip(b")"))


def test_the_first_select_takes_recent_and_no_other_session_sees_it(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    for i in range(3):
        append(imap, message(f"m{i}"))
    assert status_recent(imap) == 3
    r = imap.ok("SELECT INBOX")
    assert number_of(r, b"RECENT") == 3
    assert recent_flags(imap.ok("FETCH 1:* FLAGS")) == {1: True, 2: True, 3: True}
    assert search_numbers(imap.ok("SEARCH RECENT")) == [1, 2, 3]
    imap.ok("STORE 2 +FLAGS (\\Seen)")
    assert search_numbers(imap.ok("SEARCH NEW")) == [1, 3]
    assert search_numbers(imap.ok("SEARCH OLD")) == []
    # Another session, now or later, never sees them as recent; STATUS counts none left.
    second = sessions(account)
    assert status_recent(second) == 0
    assert number_of(second.ok("SELECT INBOX"), b"RECENT") == 0
    assert recent_flags(second.ok("FETCH 1:* FLAGS")) == {1: False, 2: False, 3: False}
    assert search_numbers(second.ok("SEARCH RECENT")) == []
    assert search_numbers(second.ok("SEARCH OLD")) == [1, 2, 3]
    # Selecting again (in any session) takes nothing: the first session had them.
    assert number_of(imap.ok("SELECT INBOX"), b"RECENT") == 0


def test_examine_looks_without_taking(imap: Transcript) -> None:
    """imaptest's select group."""
    append(imap, message("one"))
    append(imap, message("two"))
    r = imap.ok("EXAMINE INBOX")
    assert number_of(r, b"RECENT") == 2
    assert recent_flags(imap.ok("FETCH 1:* FLAGS")) == {1: True, 2: True}
    imap.ok("CLOSE")
    assert status_recent(imap) == 2
    assert number_of(imap.ok("SELECT INBOX"), b"RECENT") == 2
    imap.ok("CLOSE")
    assert status_recent(imap) == 0


def test_new_mail_is_recent_in_the_one_session_that_hears_of_it_first(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    first, second, writer = imap, sessions(account), sessions(account)
    first.ok("SELECT INBOX")
    second.ok("SELECT INBOX")
    append(writer, message("new"))
    r = first.ok("NOOP")
    assert r.untagged == [b"* 1 EXISTS", b"* 1 RECENT"]
    r = second.ok("NOOP")
    assert r.untagged == [b"* 1 EXISTS", b"* 0 RECENT"]
    assert recent_flags(first.ok("FETCH 1 FLAGS")) == {1: True}
    assert recent_flags(second.ok("FETCH 1 FLAGS")) == {1: False}
    assert status_recent(writer) == 0


def test_copy_into_a_selected_mailbox_is_recent_there(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    """imaptest's copy group: the copies are new messages of the target mailbox."""
    for i in range(3):
        append(imap, message(f"m{i}"), flags="\\Seen" if i == 0 else None)
    imap.ok("SELECT INBOX")
    imap.ok("CREATE Target")
    target = sessions(account)
    target.ok("SELECT Target")
    imap.ok("COPY 1:2 Target")
    r = target.ok("NOOP")
    assert number_of(r, b"EXISTS") == 2
    assert number_of(r, b"RECENT") == 2
    items = fetches(target.ok("FETCH 1:2 FLAGS"))
    assert flags_of(items[1], recent=True) == {"\\Recent", "\\Seen"}
    assert flags_of(items[2], recent=True) == {"\\Recent"}


def test_store_and_append_cannot_set_recent_and_it_survives_other_changes(
    imap: Transcript,
) -> None:
    append(imap, message("m"))
    imap.ok("SELECT INBOX")
    r = imap.ok("STORE 1 +FLAGS (\\Flagged)")
    assert flags_of(fetches(r)[1], recent=True) == {"\\Recent", "\\Flagged"}
    r = imap.ok("STORE 1 FLAGS ()")  # replacing the flags leaves \Recent: it is not stored
    assert flags_of(fetches(r)[1], recent=True) == {"\\Recent"}


def test_concurrent_selects_share_out_each_message_once(
    server: Server, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    """However many sessions select at once, each message is recent in exactly one of them."""
    writer = sessions(account)
    count = 12
    for i in range(count):
        append(writer, message(f"m{i}"))
    readers = [sessions(account) for _ in range(6)]
    for n, reader in enumerate(readers):  # all at once: none waits for another's answer
        reader.send(f"c{n} SELECT INBOX\r\n")
    totals = 0
    recent_uids: list[int] = []
    for n, reader in enumerate(readers):
        r = reader.finish(f"c{n}")
        assert r.status == "OK", r
        totals += number_of(r, b"RECENT")
        items = fetches(reader.ok("FETCH 1:* (UID FLAGS)"))
        recent_uids += [
            int(item.split(b"UID ")[1].split()[0])
            for item in items.values()
            if "\\Recent" in flags_of(item, recent=True)
        ]
    assert totals == count
    assert sorted(recent_uids) == list(range(1, count + 1))
    assert status_recent(writer) == 0
