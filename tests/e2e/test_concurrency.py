"""Concurrent delivery: 10 senders submitting at once into one inbox never produce a duplicate,
missing or out-of-order UID, and no session ever sees UID n+1 before UID n exists."""

from __future__ import annotations

import threading
import time
from collections import Counter

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import read_mailbox, smtp_login
from tests.transcript import Transcript

SENDERS = 10
EACH = 5


def _send_all(
    server: Server,
    sender: Account,
    recipients: list[str],
    barrier: threading.Barrier,
    errors: list[BaseException],
) -> None:
    try:
        with smtp_login(server, sender) as smtp:
            barrier.wait(timeout=30)
            for n in range(EACH):
                subject = f"{sender.address} #{n}"
                refused = smtp.sendmail(
                    sender.address,
                    recipients,
                    make_message(sender.address, recipients, subject=subject),
                )
                assert refused == {}
    except BaseException as exc:
        errors.append(exc)


class Observer(threading.Thread):
    """An IMAP session that polls INBOX while the senders run and records every UID set seen."""

    def __init__(self, server: Server, account: Account, expected: int) -> None:
        super().__init__(name="observer", daemon=True)
        self.session = Transcript.login(server, account)
        self.session.ok("SELECT INBOX")
        self.expected = expected
        self.snapshots: list[list[int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                r = self.session.ok("UID SEARCH ALL")
                [line] = r.lines(b"SEARCH")
                uids = [int(u) for u in line.split()[2:]]
                self.snapshots.append(uids)
                if len(uids) >= self.expected:
                    return
        except BaseException as exc:
            self.error = exc
        finally:
            self.session.close()


class IdleWatcher(threading.Thread):
    """An IMAP session idling on INBOX that records every EXISTS count pushed to it."""

    def __init__(self, server: Server, account: Account, expected: int) -> None:
        super().__init__(name="idle-watcher", daemon=True)
        self.session = Transcript.login(server, account)
        self.session.ok("SELECT INBOX")
        self.session.send(b"i1 IDLE\r\n")
        assert self.session.read_line().startswith(b"+")
        self.expected = expected
        self.counts: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:

            def exists(line: bytes) -> bool:
                words = line.split()
                if len(words) == 3 and words[2] == b"EXISTS":
                    self.counts.append(int(words[1]))
                    return self.counts[-1] >= self.expected
                return False

            self.session.read_until(exists, timeout=60)
            self.session.send(b"DONE\r\n")
            self.session.finish("i1")
        except BaseException as exc:
            self.error = exc
        finally:
            self.session.close()


def _run_senders(server: Server, senders: list[Account], recipients: list[str]) -> None:
    barrier = threading.Barrier(len(senders))
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_send_all, args=(server, s, recipients, barrier, errors))
        for s in senders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def _check_inbox(server: Server, recipient: Account, senders: list[Account]) -> None:
    stored = read_mailbox(server, recipient)
    total = SENDERS * EACH
    # UIDs 1..N: no gap, no duplicate.
    assert [m.uid for m in stored] == list(range(1, total + 1))
    subjects = [m.header("Subject")[0] for m in stored]
    assert Counter(subjects) == Counter(f"{s.address} #{n}" for s in senders for n in range(EACH))
    # Each sender waited for its 250 before the next message: its UIDs ascend in send order.
    for sender in senders:
        mine = [m.uid for m in stored if m.header("Subject")[0].startswith(sender.address)]
        in_order = [
            next(m.uid for m in stored if m.header("Subject")[0] == f"{sender.address} #{n}")
            for n in range(EACH)
        ]
        assert mine == in_order


def test_ten_senders_into_one_inbox(server: Server) -> None:
    recipient = server.account()
    senders = [server.account() for _ in range(SENDERS)]
    observer = Observer(server, recipient, SENDERS * EACH)
    watcher = IdleWatcher(server, recipient, SENDERS * EACH)
    observer.start()
    watcher.start()
    _run_senders(server, senders, [recipient.address])
    observer.join(timeout=90)
    watcher.join(timeout=90)
    assert observer.error is None, observer.error
    assert watcher.error is None, watcher.error
    # IDLE pushed the growing count as mail was committed, never going backwards.
    assert watcher.counts[-1] == SENDERS * EACH
    assert watcher.counts == sorted(set(watcher.counts))
    # What a live session saw was always a prefix 1..k: never UID n+1 before UID n.
    assert observer.snapshots[-1] == list(range(1, SENDERS * EACH + 1))
    for uids in observer.snapshots:
        assert uids == list(range(1, len(uids) + 1)), uids
    _check_inbox(server, recipient, senders)
    for sender in senders:
        sent = read_mailbox(server, sender, "Sent")
        assert [m.uid for m in sent] == list(range(1, EACH + 1))
        assert [m.header("Subject")[0] for m in sent] == [
            f"{sender.address} #{n}" for n in range(EACH)
        ]


def test_ten_senders_into_two_shared_inboxes(server: Server) -> None:
    """Each message is committed to two shared INBOXes and the sender's Sent at once: the
    transactions overlap on several mailboxes and must neither deadlock nor lose a message."""
    first, second = server.account(), server.account()
    senders = [server.account() for _ in range(SENDERS)]
    _run_senders(server, senders, [first.address, second.address])
    _check_inbox(server, first, senders)
    _check_inbox(server, second, senders)
