"""The outbound queue survives crashes and is shared by nodes: real `mailgate serve` processes,
SIGKILLed at the worst moments, a real DNS zone and real SMTP peers. What counts is what the
remote received: every acknowledged message, exactly once per recipient."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mailgate.config import Settings
from mailgate.delivery.outbound import node_id
from mailgate.store.api import Store
from mailgate.store.models import outbound
from mailgate.store.records import QueuedRecipient
from mailgate.store.rows import now
from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.cluster import CuttableProxy, via
from tests.e2e.process import Serve, submit
from tests.e2e.world import (
    REMOTE,
    REMOTE_MX,
    attempted,
    create_inbox,
    eventually,
    free_port,
    mailgate,
    outbound_settings,
    point_mx,
    queue_of,
    stable_port,
    wait_queue,
    write_config,
)
from tests.harness import Loop, Server, postgres, settings_for
from tests.smtppeer import SMTPPeer

BOB = f"bob@{REMOTE}"
CAROL = f"carol@{REMOTE}"


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as dns:
        yield dns


@pytest.fixture
def nodes() -> Iterator[list[Serve]]:
    """Serve processes a test starts; whatever is still running at the end is stopped."""
    started: list[Serve] = []
    yield started
    for node in started:
        node.kill()


# -------------------------------------------------------------------- helpers


def received(peer: SMTPPeer) -> Counter[tuple[str, str]]:
    """(subject, recipient) -> how many times the remote accepted it."""
    return Counter((str(t.message()["Subject"]), r) for t in peer.messages for r in t.rcpt_tos)


def exactly_once(peer: SMTPPeer, expected: set[tuple[str, str]], config: Path) -> None:
    """Every expected (subject, recipient) arrived, once the queue is empty, exactly once."""
    eventually(lambda: set(received(peer)) >= expected or None, 30, "every recipient's mail")
    wait_queue(config, lambda rows: rows == [], "the queue to empty")
    counts = received(peer)
    assert set(counts) == expected
    assert {k: n for k, n in counts.items() if n != 1} == {}


@contextlib.contextmanager
def silent(host: str, port: int) -> Iterator[None]:
    """A host that accepts TCP on `port` and never greets: a delivery there hangs."""
    with socket.socket() as sock:
        sock.bind((host, port))
        sock.listen(16)
        yield


class HeldReply(deque[str]):
    """The peer's DATA replies, holding back its answer to the `held`-th message until
    released (the peer's own loop waits): a delivery in flight, for as long as a test needs."""

    def __init__(self, held: int) -> None:
        super().__init__()
        self.held = held
        self.calls = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def popleft(self) -> str:
        self.calls += 1
        if self.calls != self.held:
            raise IndexError  # the peer's ordinary 250
        self.reached.set()
        self.release.wait(60)
        return "451 4.3.0 Answered after the sender was gone"


# -------------------------------------------------------------------- crashes


def test_sigkill_with_mail_queued_delivers_everything_exactly_once(
    database: str, zone: ZoneServer, nodes: list[Serve], tmp_path: Path
) -> None:
    port = stable_port("127.0.0.1")  # the remote is down: nothing listens there yet
    point_mx(zone)
    config = write_config(
        tmp_path / "node",
        database_url=database,
        **outbound_settings(zone, port, retry_intervals=[1]),
    )
    nodes.append(Serve(config, tmp_path))
    alice = create_inbox(config)
    expected = set()
    for i in range(6):
        to = [BOB, CAROL] if i % 2 else [BOB]
        subject = submit(nodes[0], alice, to, f"queued {i}")
        expected |= {(subject, r) for r in to}
    wait_queue(config, lambda rows: len(rows) == 9 and all(r["attempts"] for r in rows), "tries")
    # Two more, and the crash right after their 250: they may be claimed, mid-attempt.
    for i in range(2):
        subject = submit(nodes[0], alice, [CAROL], f"just acknowledged {i}")
        expected.add((subject, CAROL))
    nodes[0].kill()  # SIGKILL

    with SMTPPeer(port=port) as remote:
        nodes.append(Serve(config, tmp_path))  # same data directory, same database
        exactly_once(remote, expected, config)


def test_restart_while_a_delivery_is_in_flight_never_resends_what_got_250(
    database: str, zone: ZoneServer, nodes: list[Serve], tmp_path: Path
) -> None:
    with SMTPPeer() as remote:
        remote.data_replies = held = HeldReply(2)  # the second message on the connection
        point_mx(zone)
        config = write_config(
            tmp_path / "node",
            database_url=database,
            **outbound_settings(zone, remote.port, retry_intervals=[3600]),
        )
        nodes.append(Serve(config, tmp_path))
        alice = create_inbox(config)
        # Both queued while the DNS is down, then due together: one connection, two messages.
        zone.answering = False
        first = submit(nodes[0], alice, [BOB], "first")
        second = submit(nodes[0], alice, [BOB, CAROL], "second")
        wait_queue(
            config, lambda rows: len(rows) == 3 and all(r["attempts"] for r in rows), "tries"
        )
        zone.answering = True
        assert mailgate(config, "queue", "retry", "--all") == {"rescheduled": 3}

        assert held.reached.wait(30), "the second message never reached DATA"
        (got,) = remote.messages
        assert (str(got.message()["Subject"]), got.rcpt_tos) == (first, (BOB,))
        nodes[0].kill()  # SIGKILL while the remote has not answered the second DATA
        held.release.set()

        nodes.append(Serve(config, tmp_path))
        assert mailgate(config, "queue", "retry", "--all")["rescheduled"] >= 0
        exactly_once(remote, {(first, BOB), (second, BOB), (second, CAROL)}, config)
        assert [(str(t.message()["Subject"]), t.reply[:3]) for t in remote.refused] == [
            (second, "451")
        ]


def test_stopping_interrupts_a_hung_delivery_and_gives_its_claim_back(
    backend: str, zone: ZoneServer, tmp_path: Path
) -> None:
    hung_ip, live_ip = "127.0.0.2", "127.0.0.3"
    port = free_port(hung_ip, live_ip)
    point_mx(zone, REMOTE, (10, REMOTE_MX, hung_ip))
    # The remote never greets, and the worker would wait two minutes for it.
    settings, database = settings_for(
        tmp_path, backend, **outbound_settings(zone, port, timeout=120.0)
    )
    try:
        with silent(hung_ip, port):
            first = Server(settings, backend)
            alice = first.account()
            with first.smtp_client(alice) as smtp:
                smtp.sendmail(alice.address, [BOB], make_message(alice.address, BOB, "hung"))
            eventually(lambda: queue_of(first)[0].lease_owner, 20, "the worker to claim it")
            first.stop()  # within its grace period, not after the two minutes
        (row,) = queue_of_database(settings)
        # Given back, not counted as a try: due at once on the next start.
        assert (row.lease_owner, row.attempts) == (None, 0)

        zone.set(REMOTE_MX, "A", [live_ip])
        with SMTPPeer(host=live_ip, port=port) as remote:
            second = Server(settings, backend)
            try:
                (delivered,) = remote.wait_for(1)
                assert str(delivered.message()["Subject"]) == "hung"
                eventually(lambda: not queue_of(second) or None, 20, "the queue to empty")
                assert len(remote.messages) == 1
            finally:
                second.stop()
    finally:
        pg = postgres()
        if database is not None and pg is not None:
            Loop.get().run(pg.drop(database))


def queue_of_database(settings: Settings) -> list[QueuedRecipient]:
    """The queue as a fresh store on the server's database sees it (no server running)."""

    async def read() -> list[QueuedRecipient]:
        store = await Store.open(settings.database_url)
        try:
            return await store.list_outbound()
        finally:
            await store.close()

    return Loop.get().run(read())


# -------------------------------------------------------------------- several nodes


@pytest.fixture
def pg_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("several nodes share one queue on PostgreSQL only")


def node_config(
    tmp_path: Path, index: int, database: str, zone: ZoneServer, mx_port: int, **outbound: Any
) -> Path:
    return write_config(
        tmp_path / f"node{index}",
        database_url=database,
        server={"hostname": f"node{index}.example.test"},
        **outbound_settings(zone, mx_port, **outbound),
    )


@pytest.mark.usefixtures("pg_only")
def test_two_nodes_send_each_queued_recipient_once(
    database: str, zone: ZoneServer, nodes: list[Serve], tmp_path: Path
) -> None:
    with SMTPPeer() as remote:
        point_mx(zone)
        configs = [node_config(tmp_path, i, database, zone, remote.port) for i in range(2)]
        mailgate(configs[0], "db", "upgrade")
        nodes.extend(Serve(c, tmp_path) for c in configs)
        senders = [create_inbox(configs[0], f"s{i}") for i in range(4)]

        # Submissions through both nodes at once: each node's worker wakes for its own and
        # claims whatever is due, the other node's mail included.
        jobs = [
            (nodes[i % 2], senders[i % 4], [BOB, CAROL] if i % 3 else [BOB], f"m{i}")
            for i in range(40)
        ]
        with ThreadPoolExecutor(8) as pool:
            subjects = list(pool.map(lambda job: submit(*job), jobs))
        expected = {(s, r) for (_, _, to, _), s in zip(jobs, subjects, strict=True) for r in to}
        exactly_once(remote, expected, configs[0])
        # Sent by the nodes' workers (which of them is up to the race).
        assert {t.helo for t in remote.messages} <= {"node0.example.test", "node1.example.test"}


@pytest.mark.usefixtures("pg_only")
def test_a_node_that_dies_mid_delivery_leaves_its_claims_to_another(
    database: str, zone: ZoneServer, nodes: list[Serve], tmp_path: Path
) -> None:
    hung_ip, live_ip = "127.0.0.2", "127.0.0.3"
    port = free_port(hung_ip, live_ip)
    lease = 3
    point_mx(zone, REMOTE, (10, REMOTE_MX, hung_ip))
    configs = [
        node_config(tmp_path, i, database, zone, port, lease=lease, timeout=120.0) for i in range(2)
    ]
    mailgate(configs[0], "db", "upgrade")
    with silent(hung_ip, port):
        nodes.append(Serve(configs[0], tmp_path))
        alice = create_inbox(configs[0])
        subject = submit(nodes[0], alice, [BOB], "in flight")
        (row,) = wait_queue(
            configs[0], lambda rows: rows and rows[0]["lease_owner"], "node0 to claim it"
        )
        owner, first_lease = row["lease_owner"], row["lease_until"]
        assert row["attempts"] == 0

        # Another node is up meanwhile, but node0 is alive and renews its claim, which
        # outlives its first lease: node1 leaves it alone.
        nodes.append(Serve(configs[1], tmp_path))
        (renewed,) = wait_queue(
            configs[0],
            lambda rows: rows and (rows[0]["lease_until"] or 0) > first_lease,
            "node0 to renew its claim",
        )
        assert renewed["lease_owner"] == owner

        nodes[0].kill()  # SIGKILL, holding the claim; the MX host comes back to life
        zone.set(REMOTE_MX, "A", [live_ip])
        with SMTPPeer(host=live_ip, port=port) as remote:
            (delivered,) = remote.wait_for(1, timeout=lease + 30)
            assert delivered.rcpt_tos == (BOB,)
            assert str(delivered.message()["Subject"]) == subject
            assert delivered.helo == "node1.example.test"
            wait_queue(configs[1], lambda rows: rows == [], "the queue to empty")
            assert len(remote.messages) == 1


@pytest.mark.usefixtures("pg_only")
def test_a_claim_whose_answer_was_lost_is_given_back_when_the_database_returns(
    database: str, zone: ZoneServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL went away while the worker claimed: the claim may have been committed without
    the worker hearing of it. Once the database is back, such rows are given back and sent,
    not left until their lease (minutes) runs out. Found by tests/e2e/test_crash_safety.py."""
    proxy = CuttableProxy.before(database)
    try:
        with SMTPPeer() as remote:
            point_mx(zone)
            zone.answering = False  # the first attempt is deferred for an hour
            settings, _ = settings_for(
                tmp_path,
                "sqlite",  # no database of its own: the test's, through the proxy
                database={"url": via(database, proxy.port), "pool_timeout": 3.0},
                **outbound_settings(zone, remote.port, retry_intervals=[3600]),
            )
            server = Server(settings, "postgres")
            try:
                alice = server.account()
                with server.smtp_client(alice) as smtp:
                    smtp.sendmail(alice.address, [BOB], make_message(alice.address, BOB, "lost"))
                (row,) = attempted(server)
                zone.answering = True
                # Due again, and claimed for the worker's node as by a claim whose answer the
                # worker never got: in one statement, so the worker cannot claim it first.
                server.call(claim_as(server.store, row.id, node_id(settings), 600))
                proxy.cut()
                server.wake_outbound()  # its claim fails
                eventually(
                    lambda: any("cannot read the queue" in r.getMessage() for r in caplog.records),
                    20,
                    "the worker to fail to claim",
                )
                proxy.restore()
                server.wake_outbound()
                (delivered,) = remote.wait_for(1, timeout=20)
                assert str(delivered.message()["Subject"]) == "lost"
            finally:
                server.stop()
    finally:
        proxy.close()


async def claim_as(store: Store, queue_id: int, owner: str, lease: int) -> None:
    """Make a queued recipient due and leased to `owner`, as a claim the database committed."""

    async def work(conn: Any) -> None:
        current = now()
        await conn.execute(
            update(outbound)
            .where(outbound.c.id == queue_id)
            .values(next_attempt_at=current, lease_owner=owner, lease_until=current + lease)
        )

    await store.db.write(work)
