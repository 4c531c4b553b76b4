"""Many smtplib clients submitting at once (their deliveries share commits on SQLite: group
commit): every message that got its 250 is in the recipient's INBOX exactly once, and in its
sender's Sent, and /metrics shows the commits and the writes they held."""

from __future__ import annotations

import threading
from collections import Counter

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.http.metrics import scrape
from tests.smtp.helpers import read_mailbox

CLIENTS = 8
PER_CLIENT = 10
COMMITS = "mailgate_store_commits_total"
WRITES = "mailgate_store_committed_writes_total"


def test_every_250_from_parallel_clients_lands_once(
    backend: str, server: Server, other: Account
) -> None:
    senders = [server.account() for _ in range(CLIENTS)]
    accepted: list[list[str]] = [[] for _ in senders]
    failures: list[BaseException] = []
    start = threading.Barrier(CLIENTS, timeout=60)

    def client(i: int, sender: Account) -> None:
        try:
            with server.smtp_client(sender) as smtp:
                start.wait()
                for n in range(PER_CLIENT):
                    message = make_message(sender.address, other.address, subject=f"c{i} n{n}")
                    smtp.sendmail(sender.address, [other.address], message)  # raises unless 250
                    accepted[i].append(f"c{i} n{n}")
        except BaseException as exc:
            failures.append(exc)

    before = scrape(server)
    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    after = scrape(server)

    subjects = Counter(
        s for m in read_mailbox(server, other, with_bodies=True) for s in m.header("Subject")
    )
    wanted = [subject for sent in accepted for subject in sent]
    assert len(wanted) == CLIENTS * PER_CLIENT
    assert {s: subjects[s] for s in wanted} == dict.fromkeys(wanted, 1)
    for sender, sent in zip(senders, accepted, strict=True):
        assert [m.header("Subject") for m in read_mailbox(server, sender, "Sent")] == [
            [subject] for subject in sent
        ]

    commits = after.value(COMMITS) - before.value(COMMITS)
    writes = after.value(WRITES) - before.value(WRITES)
    assert writes >= CLIENTS * PER_CLIENT  # one write per submission, and the logins' own
    assert 0 < commits <= writes
    if backend != "sqlite":
        assert commits == writes  # PostgreSQL: each write its own transaction
