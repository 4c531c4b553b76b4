"""Crash safety, proven: a real `mailgate serve` under load from many clients is killed with
SIGKILL at random moments and started again on the same ports and data, over and over; or its
PostgreSQL is cut off under load and given back. Afterwards every message that got `250` or an
APPEND `OK` is in its mailbox exactly once, nothing is there twice, UIDs ascend with
UIDVALIDITY unchanged, and every queued message reached the remote SMTP peer (tests/smtppeer.py,
found through a loopback DNS zone) once. The clients, their books and the verdict are in
tests/e2e/crash.py, shared with the benchmark's `crash` phase (bench/crash.py), which runs the
same for longer.

The kill moments come from a seeded RNG: a failing run prints its seed, and
MAILGATE_CRASH_SEED=<seed> replays the same moments (the load around them differs).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailgate.config import load as load_settings
from mailgate.provision import create_inbox, issue_key
from mailgate.store.api import Store
from tests.dnsserver import ZoneServer
from tests.e2e.cluster import CuttableProxy, via
from tests.e2e.crash import (
    APPEND,
    HOST,
    LOCAL,
    OUTBOUND,
    Appender,
    Listing,
    Load,
    Submitter,
    Verdict,
    kill_loop,
    outage_loop,
    read_mailbox,
    recorded_deliveries,
    refusal,
    verdict,
)
from tests.e2e.process import Serve
from tests.e2e.world import (
    REMOTE,
    eventually,
    outbound_settings,
    point_mx,
    queue,
    stable_port,
    wait_queue,
    write_config,
)
from tests.harness import Account, Loop, client_tls
from tests.smtppeer import SMTPPeer

SEED_ENV = "MAILGATE_CRASH_SEED"
KILLS = 20
UPTIME = (0.05, 1.5)  # seconds the server serves before the next SIGKILL, drawn uniformly
OUTAGES = 4
BETWEEN_OUTAGES = (0.5, 1.5)
OUTAGE = (1.0, 3.0)
RECOVERY_TIMEOUT = 60.0  # for every client to be served again after the last blow


@pytest.fixture
def seed() -> int:
    chosen = os.environ.get(SEED_ENV) or str(random.SystemRandom().randrange(2**32))
    print(f"crash seed: {SEED_ENV}={chosen}")  # shown with a failure: replay with it
    return int(chosen)


def make_accounts(config: Path, *names: str) -> list[Account]:
    """New inboxes with their keys, straight in the database of `config` (no server yet)."""
    settings = load_settings(config, env={})

    async def make() -> list[Account]:
        store = await Store.open(settings.database_url)
        try:
            made = []
            for name in names:
                inbox = await create_inbox(store, f"{name}-{uuid.uuid4().hex[:6]}@example.test")
                _, token = await issue_key(store, inbox=inbox.address)
                made.append(Account(inbox.address, token))
            return made
        finally:
            await store.close()

    return Loop.get().run(make())


class Node:
    """`mailgate serve` on one config, started again and again on the same ports and data.

    Each start is a new process that recovers from what is on disk, forked from one that has
    done the imports already (Serve's `forking`): they would be most of each restart on a busy
    machine. The benchmark's `crash` phase measures cold restarts."""

    def __init__(self, config: Path) -> None:
        self.serve = Serve(config, config.parent, forking=True)

    def start(self) -> None:
        self.serve.fork()

    def kill(self) -> None:
        self.serve.kill_child()  # SIGKILL

    def close(self) -> None:
        self.serve.kill()


@pytest.fixture
def ports() -> dict[str, int]:
    """Fixed ports, the same across restarts, as clients expect of a server."""
    return {"imaps": stable_port(HOST), "submissions": stable_port(HOST)}


def node_config(
    tmp_path: Path, database_url: str, ports: dict[str, int], zone: ZoneServer, peer: SMTPPeer
) -> Path:
    point_mx(zone)  # remote.test's MX: the peer, on 127.0.0.1
    return write_config(
        tmp_path / "node",
        database_url=database_url,
        imap={"tls_port": ports["imaps"]},
        smtp={"tls_port": ports["submissions"]},
        **outbound_settings(zone, peer.port),
    )


@dataclass
class Rig:
    """A server on `config` and its clients: two submitting to `target`, one to the remote
    peer, two APPENDing to `target`'s INBOX (all five writing into that INBOX or their own
    Sent), and an observer of that INBOX."""

    config: Path
    node: Node
    load: Load
    target: Account
    senders: list[Account]

    def served_again(self, since: float) -> None:
        """Every writing client has had something acknowledged after `since` (bounded)."""
        eventually(
            lambda: self.load.acknowledged_since(since) >= self.load.writers or None,
            RECOVERY_TIMEOUT,
            "every client to be served again",
        )

    def judge(self, peer: SMTPPeer, kills: Sequence[float] = ()) -> Verdict:
        """Stop the clients, let the queue drain, read every mailbox, hold them to the books."""
        load = self.load
        load.stop()
        assert not load.failures, load.failures
        try:
            wait_queue(self.config, lambda rows: rows == [], "the outbound queue to empty", 60)
        except AssertionError as exc:
            log = "".join(self.node.serve.log.splitlines(keepends=True)[-60:])
            raise AssertionError(f"{exc}: {queue(self.config)}\nserver log:\n{log}") from None
        mailboxes: dict[tuple[str, str], Listing] = {
            (self.target.address, "INBOX"): read_mailbox(load, self.target),
            **{(s.address, "Sent"): read_mailbox(load, s, "Sent") for s in self.senders},
        }
        arrivals = [(t.began, t.data) for t in peer.messages]
        recorded = recorded_deliveries(self.node.serve.log)
        return verdict(load.attempts, mailboxes, arrivals, kills, load.observers, recorded)


@contextlib.contextmanager
def rig(
    tmp_path: Path, database_url: str, ports: dict[str, int], zone: ZoneServer, peer: SMTPPeer
) -> Iterator[Rig]:
    """The server started and the clients at work; both stopped at the end."""
    config = node_config(tmp_path, database_url, ports, zone, peer)
    target, *senders = make_accounts(config, "target", "local0", "local1", "remote0")
    load = Load(lambda: ports, client_tls())
    for sender in senders[:-1]:
        load.submitter(sender, target.address)
    load.submitter(senders[-1], f"bob-{uuid.uuid4().hex[:6]}+{{n}}@{REMOTE}", OUTBOUND)
    load.appender(target)
    load.appender(target)
    load.observer(target)
    node = Node(config)
    try:
        node.start()
        load.start()
        yield Rig(config, node, load, target, senders)
    finally:
        load.stopping.set()
        node.close()


@pytest.mark.timeout(600)  # 20 restarts: a busy machine may need several seconds for each
def test_sigkill_under_load_loses_nothing_and_stores_nothing_twice(
    database: str,
    zone: ZoneServer,
    peer: SMTPPeer,
    ports: dict[str, int],
    tmp_path: Path,
    seed: int,
) -> None:
    began = time.monotonic()
    with rig(tmp_path, database, ports, zone, peer) as running:
        kills = kill_loop(seed, KILLS, running.node.kill, running.node.start, UPTIME, print)
        running.served_again(kills.at[-1])
        result = running.judge(peer, kills.at)
    load = running.load
    recovery = sorted(kills.recovery)
    print(
        f"{len(kills.at)} kills in {time.monotonic() - began:.1f} s (seed {seed}), serving again "
        f"after p50 {recovery[len(recovery) // 2]:.2f} s, max {recovery[-1]:.2f} s; "
        f"{result.summary()}; {result.resent_after_kill}"
    )
    assert result.problems == [], f"seed {seed}: {result.summary()}: {result.problems[:20]}"
    assert len(kills.at) == KILLS
    # Each kind of client got work done between the kills, not only before the first.
    kinds = {a.kind for a in load.attempts if a.acknowledged and a.started > kills.at[0]}
    assert kinds == {LOCAL, APPEND, OUTBOUND}, f"seed {seed}: acknowledged kinds {kinds}"
    # A crash shows as a lost connection, never as a refusal: no 5xx, no NO, no BAD.
    refused = [a.reply for a in load.attempts if not a.acknowledged and refusal(a.reply)]
    refused += [r for c in load.clients for r in c.refusals]
    assert refused == [], f"seed {seed}"


@pytest.fixture
def pg_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the database outage is PostgreSQL's: SQLite is a file of the process")


@pytest.mark.usefixtures("pg_only")
def test_database_outage_under_load_answers_try_later_and_sessions_resume(
    database: str,
    zone: ZoneServer,
    peer: SMTPPeer,
    ports: dict[str, int],
    tmp_path: Path,
    seed: int,
) -> None:
    proxy = CuttableProxy.before(database)
    try:
        with rig(tmp_path, via(database, proxy.port), ports, zone, peer) as running:
            running.served_again(0.0)  # every session open and working before the first cut
            outages = outage_loop(seed, OUTAGES, proxy.cut, proxy.restore, BETWEEN_OUTAGES, OUTAGE)
            running.served_again(outages.ended[-1])
            result = running.judge(peer)
    finally:
        proxy.close()
    load = running.load
    print(f"{OUTAGES} outages (seed {seed}): {result.summary()}")
    assert result.problems == [], f"seed {seed}: {result.summary()}: {result.problems[:20]}"
    assert result.resent_after_kill == []

    # Meanwhile: "try again later", and only that; the sessions outlived every outage.
    unacknowledged = [a for a in load.attempts if not a.acknowledged]
    submitted = {a.reply[:9] for a in unacknowledged if a.kind != APPEND}
    appended = {a.reply.split("]")[0] for a in unacknowledged if a.kind == APPEND}
    assert submitted == {"451 4.3.0"}, f"seed {seed}: {submitted}"
    assert appended == {"NO [UNAVAILABLE"}, f"seed {seed}: {appended}"
    sessions = {c.name: c.connections for c in load.clients if isinstance(c, Submitter | Appender)}
    assert set(sessions.values()) == {1}, f"seed {seed}: sessions opened per client {sessions}"
