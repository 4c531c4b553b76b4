"""IDLE (RFC 2177) and live updates: two real sessions on one inbox, changes made through the
other session or SMTP must reach the idling one as soon as they are committed."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    fetches,
    flags_of,
    message,
    number_of,
    start_idle,
    stop_idle,
    uid_of,
)
from tests.transcript import Transcript

WAIT = 5.0  # bound for a push to arrive; it normally takes milliseconds


def exists(line: bytes) -> int | None:
    m = re.match(rb"\* (\d+) EXISTS$", line)
    return int(m.group(1)) if m else None


def send_mail(server: Server, sender: Account, to: Account, subject: str = "Hi") -> None:
    with server.smtp_client(sender) as smtp:
        smtp.sendmail(sender.address, [to.address], message(subject, From=sender.address))


@pytest.fixture
def pair(
    sessions: Callable[[Account], Transcript], account: Account
) -> tuple[Transcript, Transcript]:
    """(idler, actor): two sessions on one inbox, both with INBOX selected."""
    idler, actor = sessions(account), sessions(account)
    idler.ok("SELECT INBOX")
    actor.ok("SELECT INBOX")
    return idler, actor


def test_append_by_another_session_arrives_as_exists(pair: tuple[Transcript, Transcript]) -> None:
    idler, actor = pair
    tag = start_idle(idler)
    append(actor, message("pushed"))
    lines = idler.read_until(lambda line: exists(line) is not None, WAIT)
    assert exists(lines[-1]) == 1
    # RECENT follows EXISTS: 1 if the idler was first to hear of it, else 0 (test_recent.py).
    assert stop_idle(idler, tag) in ([b"* 1 RECENT"], [b"* 0 RECENT"])
    item = fetches(idler.ok("FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))[1]
    assert b"Subject: pushed" in item


def test_smtp_delivery_arrives_as_exists(
    server: Server, account: Account, other: Account, pair: tuple[Transcript, Transcript]
) -> None:
    idler, _ = pair
    tag = start_idle(idler)
    send_mail(server, other, account, "over smtp")
    lines = idler.read_until(lambda line: exists(line) is not None, WAIT)
    assert exists(lines[-1]) == 1
    stop_idle(idler, tag)
    item = fetches(idler.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]"))[1]
    assert b"Subject: over smtp" in item


def test_flag_change_by_another_session_arrives_as_fetch(
    pair: tuple[Transcript, Transcript],
) -> None:
    idler, actor = pair
    append(actor, message("one"))
    append(actor, message("two"))
    idler.ok("NOOP")  # learn about both
    tag = start_idle(idler)
    actor.ok("STORE 2 +FLAGS (\\Flagged $Later)")
    lines = idler.read_until(lambda line: b" FETCH " in line, WAIT)
    m = re.match(rb"\* (\d+) FETCH \((.*)\)$", lines[-1])
    assert m is not None, lines
    assert int(m.group(1)) == 2
    assert flags_of(m.group(2)) == {"\\Flagged", "$Later"}
    stop_idle(idler, tag)


def test_expunge_by_another_session_arrives_as_expunge(
    pair: tuple[Transcript, Transcript],
) -> None:
    idler, actor = pair
    for i in range(3):
        append(actor, message(f"m{i}"))
    idler.ok("NOOP")
    tag = start_idle(idler)
    actor.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    actor.ok("EXPUNGE")
    lines = idler.read_until(lambda line: line.endswith(b" EXPUNGE"), WAIT)
    assert lines[-1] == b"* 2 EXPUNGE"
    stop_idle(idler, tag)
    items = fetches(idler.ok("FETCH 1:* UID"))
    assert [uid_of(items[i]) for i in sorted(items)] == [1, 3]


def test_move_into_the_idled_mailbox_arrives(
    sessions: Callable[[Account], Transcript], account: Account
) -> None:
    idler, actor = sessions(account), sessions(account)
    idler.ok("SELECT Trash")
    append(actor, message("to be moved"))
    actor.ok("SELECT INBOX")
    tag = start_idle(idler)
    actor.ok("MOVE 1 Trash")
    lines = idler.read_until(lambda line: exists(line) is not None, WAIT)
    assert exists(lines[-1]) == 1
    stop_idle(idler, tag)


def test_a_session_that_is_not_idling_gets_the_same_updates_at_its_next_command(
    server: Server, account: Account, other: Account, pair: tuple[Transcript, Transcript]
) -> None:
    watcher, actor = pair
    append(actor, message("a"))
    append(actor, message("b"))
    assert number_of(watcher.ok("NOOP"), b"EXISTS") == 2
    actor.ok("STORE 1 +FLAGS (\\Seen)")
    actor.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    actor.ok("EXPUNGE")
    send_mail(server, other, account)
    r = watcher.ok("NOOP")
    kinds = [line.split()[2] for line in r.untagged]
    assert b"EXPUNGE" in kinds, r
    assert b"EXISTS" in kinds, r
    assert flags_of(fetches(r)[1]) == {"\\Seen"}
    assert b"* 2 EXPUNGE" in r.untagged
    assert number_of(r, b"EXISTS") == 2  # one left, one new
    # Nothing is reported twice.
    assert watcher.ok("NOOP").untagged == []


def test_own_changes_are_not_echoed_again(pair: tuple[Transcript, Transcript]) -> None:
    idler, _ = pair
    append(idler, message())
    idler.ok("NOOP")
    r = idler.ok("STORE 1 +FLAGS (\\Seen)")
    assert len(fetches(r)) == 1
    assert idler.ok("NOOP").untagged == []


def test_idle_without_a_selected_mailbox(imap: Transcript) -> None:
    tag = start_idle(imap)
    assert stop_idle(imap, tag) == []


def test_idle_ended_by_something_other_than_done_is_bad(
    pair: tuple[Transcript, Transcript],
) -> None:
    idler, _ = pair
    tag = start_idle(idler)
    idler.send("NOPE\r\n")
    line = idler.read_until(lambda line: line.startswith(f"{tag} ".encode()), WAIT)[-1]
    assert line.startswith(f"{tag} BAD".encode()), line
    idler.ok("NOOP")


def test_idle_keepalive(make_server: Callable[..., Server]) -> None:
    server = make_server(imap={"idle_keepalive": 1})
    account = server.account()
    with Transcript.login(server, account) as s:
        s.ok("SELECT INBOX")
        tag = start_idle(s)
        line = s.read_until(lambda line: line.startswith(b"* OK"), WAIT)[-1]
        assert line.startswith(b"* OK")
        stop_idle(s, tag)


def test_uids_ascend_under_concurrent_delivery(
    server: Server, account: Account, pair: tuple[Transcript, Transcript]
) -> None:
    idler, _ = pair
    senders = [server.account() for _ in range(10)]
    tag = start_idle(idler)
    errors: list[BaseException] = []

    def deliver(sender: Account) -> None:
        try:
            for i in range(2):
                send_mail(server, sender, account, f"{sender.address} {i}")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    # Every EXISTS must grow the count; the last one must reach all 20 messages.
    seen: list[int] = []
    while not seen or seen[-1] < 20:
        line = idler.read_until(lambda line: exists(line) is not None, 15)[-1]
        count = exists(line)
        assert count is not None
        seen.append(count)
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert seen == sorted(seen), seen
    assert len(set(seen)) == len(seen), seen
    stop_idle(idler, tag)
    items = fetches(idler.ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert sorted(items) == list(range(1, 21))
    uids = [uid_of(items[i]) for i in sorted(items)]
    assert uids == sorted(uids)
    assert len(set(uids)) == 20
    subjects = {re.search(rb"Subject: (.*)\r\n", items[i]).group(1) for i in items}  # type: ignore[union-attr]
    assert len(subjects) == 20  # every message arrived exactly once


def test_a_polling_session_never_sees_a_uid_before_the_ones_below_it(
    server: Server, account: Account, pair: tuple[Transcript, Transcript]
) -> None:
    poller, _ = pair
    senders = [server.account() for _ in range(8)]
    errors: list[BaseException] = []

    def deliver(sender: Account) -> None:
        try:
            for i in range(3):
                send_mail(server, sender, account, f"{sender.address} {i}")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while len(seen) < 24 and not errors:
        assert time.monotonic() < deadline, f"only saw {seen}"
        r = poller.ok(f"UID FETCH {(seen[-1] if seen else 0) + 1}:* (UID)")
        fresh = sorted(uid_of(item) for item in fetches(r).values())
        seen += [uid for uid in fresh if not seen or uid > seen[-1]]
        # With nothing expunged, what a session has seen is always exactly UIDs 1..n.
        assert seen == list(range(1, len(seen) + 1)), seen
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(seen) == 24
