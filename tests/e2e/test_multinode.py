"""Scale-out: real `mailgate serve` processes on one PostgreSQL database behave as one server.

A client on node B sees what is committed through node A (IDLE pushes it, the next command
reports it), UIDs stay ascending and gapless under concurrent submission through both nodes,
and a database outage loses nothing acknowledged while IDLE sessions resume afterwards.
"""

from __future__ import annotations

import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import make_message
from tests.e2e.cluster import Cluster, CuttableProxy, cluster
from tests.e2e.process import Serve
from tests.harness import PG_URL_ENV, Account, client_tls, postgres
from tests.transcript import Transcript

pytestmark = pytest.mark.skipif(
    postgres() is None, reason=f"{PG_URL_ENV} is not set: the multi-node tests need PostgreSQL"
)

EXISTS = re.compile(rb"^\* (\d+) EXISTS$")


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Cluster]:
    pg = postgres()
    assert pg is not None
    with cluster(tmp_path, pg, nodes=2) as running:
        yield running


def imap(node: Serve, account: Account) -> Transcript:
    raw = socket.create_connection(("127.0.0.1", node.ports["imaps"]))
    t = Transcript(client_tls().wrap_socket(raw))
    t.ok(f'LOGIN "{account.address}" "{account.key}"')
    return t


def smtp(node: Serve, account: Account) -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(
        "127.0.0.1", node.ports["submissions"], context=client_tls(), timeout=30
    )
    client.login(account.address, account.key)
    return client


def idle(t: Transcript) -> str:
    tag = t.next_tag()
    t.send(f"{tag} IDLE\r\n")
    assert t.read_line().startswith(b"+")
    return tag


def test_idle_on_one_node_sees_mail_submitted_through_the_other(nodes: Cluster) -> None:
    a, b = nodes.nodes
    alice, bob = nodes.account("alice"), nodes.account("bob")
    watcher = imap(b, bob)
    watcher.ok("SELECT INBOX")
    idle(watcher)
    with smtp(a, alice) as client:
        client.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
    lines = watcher.read_until(lambda line: EXISTS.match(line) is not None, timeout=5)
    assert lines[-1] == b"* 1 EXISTS"


def test_idle_on_one_node_sees_mail_sent_over_the_api_of_the_other(nodes: Cluster) -> None:
    from agentmail import AgentMail, AgentMailEnvironment

    a, b = nodes.nodes
    alice, bob = nodes.account("alice"), nodes.account("bob")
    watcher = imap(b, bob)
    watcher.ok("SELECT INBOX")
    idle(watcher)
    base = f"http://127.0.0.1:{a.ports['api']}"
    client = AgentMail(
        api_key=alice.key, environment=AgentMailEnvironment(http=base, websockets=base)
    )
    sent = client.inboxes.messages.send(alice.address, to=bob.address, text="via the API")
    lines = watcher.read_until(lambda line: EXISTS.match(line) is not None, timeout=5)
    assert lines[-1] == b"* 1 EXISTS"
    # And node B's API sees on bob's side the very message node A's API sent.
    base_b = f"http://127.0.0.1:{b.ports['api']}"
    reader = AgentMail(
        api_key=bob.key, environment=AgentMailEnvironment(http=base_b, websockets=base_b)
    )
    assert reader.inboxes.messages.get(bob.address, sent.message_id).text.strip() == "via the API"


def test_changes_on_one_node_reach_an_idle_session_on_the_other(nodes: Cluster) -> None:
    a, b = nodes.nodes
    owner = nodes.account()
    writer, watcher = imap(a, owner), imap(b, owner)
    message = make_message(owner.address, owner.address, subject="shared")
    writer.ok("APPEND INBOX (\\Seen) \x00", message)
    writer.ok("SELECT INBOX")
    watcher.ok("SELECT INBOX")
    tag = idle(watcher)

    writer.ok("APPEND INBOX \x00", message)
    assert watcher.read_until(lambda line: line.endswith(b"EXISTS"))[-1] == b"* 2 EXISTS"

    writer.ok("STORE 1 +FLAGS (\\Flagged)")
    flags = watcher.read_until(lambda line: b"FETCH" in line)[-1]
    assert flags.startswith(b"* 1 FETCH (")
    assert b"\\Flagged" in flags
    assert b"\\Seen" in flags

    writer.ok("STORE 2 +FLAGS (\\Deleted)")
    writer.ok("EXPUNGE")
    assert watcher.read_until(lambda line: line.endswith(b"EXPUNGE"))[-1] == b"* 2 EXPUNGE"

    watcher.send("DONE\r\n")
    assert watcher.finish(tag).status == "OK"


def test_flags_set_on_one_node_show_at_the_next_command_on_the_other(nodes: Cluster) -> None:
    a, b = nodes.nodes
    owner = nodes.account()
    writer, reader = imap(a, owner), imap(b, owner)
    writer.ok("APPEND INBOX \x00", make_message(owner.address, owner.address))
    reader.ok("SELECT INBOX")
    writer.ok("SELECT INBOX")
    writer.ok("STORE 1 +FLAGS (\\Answered)")
    reply = reader.ok("NOOP")
    fetches = reply.lines(b"FETCH")
    assert len(fetches) == 1
    assert b"\\Answered" in fetches[0]


def test_concurrent_senders_through_both_nodes_arrive_once_in_uid_order(nodes: Cluster) -> None:
    a, b = nodes.nodes
    target = nodes.account("target")
    senders = [nodes.account(f"sender{i}") for i in range(4)]
    per_sender = 50
    total = per_sender * len(senders)

    watcher = imap(b, target)
    watcher.ok("SELECT INBOX")
    idle(watcher)
    seen_exists: list[int] = []
    observed_sets: list[list[int]] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def send(sender: Account, node: Serve) -> None:
        try:
            with smtp(node, sender) as client:
                for i in range(per_sender):
                    subject = f"{sender.address} {i}"
                    body = make_message(sender.address, target.address, subject=subject)
                    client.sendmail(sender.address, [target.address], body)
        except BaseException as exc:
            failures.append(exc)

    def poll() -> None:
        # A second client on the other node: every UID set it sees must be exactly 1..k
        # (no session may ever see UID n+1 before UID n).
        poller = imap(a, target)
        poller.ok("SELECT INBOX")
        while not done.is_set():
            uids = _uid_search(poller)
            observed_sets.append(uids)
        poller.close()

    threads = [
        threading.Thread(target=send, args=(sender, (a, b)[i % 2]))
        for i, sender in enumerate(senders)
    ]
    poller = threading.Thread(target=poll)
    poller.start()
    for thread in threads:
        thread.start()
    while not seen_exists or seen_exists[-1] < total:
        line = watcher.read_until(lambda line: EXISTS.match(line) is not None, timeout=30)[-1]
        seen_exists.append(int(EXISTS.match(line).group(1)))  # type: ignore[union-attr]
    for thread in threads:
        thread.join()
    done.set()
    poller.join()
    assert not failures

    assert seen_exists == sorted(seen_exists), "EXISTS went down"
    assert seen_exists[-1] == total
    for uids in observed_sets:
        assert uids == list(range(1, len(uids) + 1)), f"a session saw a gap: {uids}"

    checker = imap(b, target)
    checker.ok("EXAMINE INBOX")
    assert _uid_search(checker) == list(range(1, total + 1))
    subjects = _subjects(checker)
    expected = {f"{s.address} {i}" for s in senders for i in range(per_sender)}
    assert sorted(subjects) == sorted(expected), "a message is missing or arrived twice"


def test_database_outage_loses_nothing_acknowledged_and_idle_resumes(tmp_path: Path) -> None:
    pg = postgres()
    assert pg is not None
    proxy = CuttableProxy.before(pg.url)
    try:
        with cluster(tmp_path, pg, nodes=2, proxy=proxy) as running:
            _outage(running, proxy)
    finally:
        proxy.close()


def _outage(running: Cluster, proxy: CuttableProxy) -> None:
    a, b = running.nodes
    sender, owner = running.account("sender"), running.account("owner")
    acknowledged: list[str] = []
    watcher = imap(b, owner)
    watcher.ok("SELECT INBOX")
    tag = idle(watcher)
    client = smtp(a, sender)
    bystander = imap(a, owner)

    def submit(subject: str) -> None:
        client.sendmail(
            sender.address, [owner.address], make_message(sender.address, owner.address, subject)
        )
        acknowledged.append(subject)

    for i in range(5):
        submit(f"before {i}")
    watcher.read_until(lambda line: line == b"* 5 EXISTS", timeout=10)

    proxy.cut()
    # SMTP says "try again later" (451 4.3.0), IMAP NO [UNAVAILABLE]; nothing is half-stored.
    with pytest.raises(smtplib.SMTPException) as refused:
        submit("during the outage")
    assert _temporary(refused.value), refused.value
    reply = bystander.no("STATUS INBOX (MESSAGES)")
    assert reply.code == "UNAVAILABLE"

    proxy.restore()
    # Service resumes by itself: the same connections work again once the database is back.
    deadline = time.monotonic() + 20
    while (failure := _attempt(submit, "after the outage")) is not None:
        assert _temporary(failure), failure
        assert time.monotonic() < deadline, "service did not resume"
        time.sleep(0.2)  # between attempts of a bounded wait for recovery
    # The idling session on the other node resumes: it is told about the new message.
    lines = watcher.read_until(lambda line: line == b"* 6 EXISTS", timeout=20)
    assert lines[-1] == b"* 6 EXISTS"
    watcher.send("DONE\r\n")
    assert watcher.finish(tag).status == "OK"

    checker = imap(b, owner)
    checker.ok("EXAMINE INBOX")
    stored = _subjects(checker)
    assert sorted(stored) == sorted(acknowledged)
    assert "during the outage" not in stored


def _attempt(submit: Callable[[str], None], subject: str) -> smtplib.SMTPException | None:
    try:
        submit(subject)
    except smtplib.SMTPException as exc:
        return exc
    return None


def _temporary(exc: smtplib.SMTPException) -> bool:
    code = getattr(exc, "smtp_code", None)
    if code is None and isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = next(iter(exc.recipients.values()))[0]
    return code is not None and 400 <= code < 500


def _uid_search(t: Transcript) -> list[int]:
    reply = t.ok("UID SEARCH ALL")
    numbers = reply.lines(b"SEARCH")[0].split()[2:]
    return [int(n) for n in numbers]


def _subjects(t: Transcript) -> list[str]:
    reply = t.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = []
    for line in reply.lines(b"FETCH"):
        match = re.search(rb"Subject: ([^\r\n]*)", line)
        assert match is not None, line
        out.append(match.group(1).decode())
    return out


def test_websocket_on_one_node_gets_the_event_of_mail_sent_through_the_other(
    nodes: Cluster,
) -> None:
    import json

    from agentmail.events.types.message_received_event import MessageReceivedEvent
    from websockets.sync.client import connect

    a, b = nodes.nodes
    alice, bob = nodes.account("alice"), nodes.account("bob")
    url = f"ws://127.0.0.1:{b.ports['api']}/v0"
    with connect(url, additional_headers={"Authorization": f"Bearer {bob.key}"}) as ws:
        ws.send(json.dumps({"type": "subscribe", "event_types": ["message.received"]}))
        assert json.loads(ws.recv(10))["type"] == "subscribed"
        with smtp(a, alice) as client:
            client.sendmail(
                alice.address,
                [bob.address],
                make_message(alice.address, bob.address, subject="Across nodes"),
            )
        event = MessageReceivedEvent.model_validate(json.loads(ws.recv(10)))
    assert event.message.inbox_id == bob.address
    assert event.message.subject == "Across nodes"


def test_an_mcp_subscriber_on_one_node_is_told_of_mail_sent_through_the_other(
    nodes: Cluster,
) -> None:
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.client.subscriptions import ResourceUpdated

    a, b = nodes.nodes
    alice, bob = nodes.account("alice"), nodes.account("bob")
    uri = f"mailgate://inboxes/{bob.address}"

    async def subscribe_and_wait() -> ResourceUpdated:
        headers = {"Authorization": f"Bearer {bob.key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(
                f"http://127.0.0.1:{b.ports['api']}/mcp", http_client=http
            )
            async with (
                Client(transport) as client,
                client.listen(resource_subscriptions=[uri]) as subscription,
            ):
                events = aiter(subscription)

                def submit() -> None:
                    with smtp(a, alice) as sender:
                        message = make_message(alice.address, bob.address, subject="Across")
                        sender.sendmail(alice.address, [bob.address], message)

                await asyncio.get_running_loop().run_in_executor(None, submit)
                event = await asyncio.wait_for(anext(events), 10)
                assert isinstance(event, ResourceUpdated)
                return event

    assert asyncio.run(subscribe_and_wait()).uri == uri


def test_each_new_message_is_recent_on_exactly_one_node(nodes: Cluster) -> None:
    """\\Recent (RFC 3501 §2.3.2) is decided by the database: sessions on both nodes that
    select or catch up at once share the new messages out, each one recent exactly once."""
    a, b = nodes.nodes
    owner = nodes.account()
    sessions = [imap(node, owner) for node in (a, b, a, b)]
    writer = imap(a, owner)
    for i in range(4):
        writer.ok("APPEND INBOX \x00", make_message(owner.address, owner.address, subject=f"{i}"))
    for n, s in enumerate(sessions):  # all at once
        s.send(f"s{n} SELECT INBOX\r\n")
    for n, s in enumerate(sessions):
        assert s.finish(f"s{n}").status == "OK"
    with smtp(b, owner) as client:  # and more while they have it selected
        for _ in range(4):
            client.sendmail(
                owner.address, [owner.address], make_message(owner.address, owner.address)
            )
    # Node A hears of node B's commits through PostgreSQL: NOOP, all at once, until every
    # session counts 8 (a bounded wait).
    deadline = time.monotonic() + 10
    waiting = dict(enumerate(sessions))
    while waiting and time.monotonic() < deadline:
        for n, s in waiting.items():
            s.send(f"n{n} NOOP\r\n")
        for n, s in list(waiting.items()):
            if b"* 8 EXISTS" in s.finish(f"n{n}").untagged:
                del waiting[n]
    assert not waiting
    recent: list[int] = []
    for s in sessions:
        for line in s.ok("FETCH 1:* (UID FLAGS)").lines(b"FETCH"):
            if b"\\Recent" in line:
                recent.append(int(line.split(b"UID ")[1].split()[0]))
    assert sorted(recent) == list(range(1, 9))


def test_a_keyword_set_on_one_node_is_announced_before_use_on_the_other(nodes: Cluster) -> None:
    a, b = nodes.nodes
    owner = nodes.account()
    writer, watcher = imap(a, owner), imap(b, owner)
    writer.ok("APPEND INBOX \x00", make_message(owner.address, owner.address))
    writer.ok("SELECT INBOX")
    watcher.ok("SELECT INBOX")
    tag = idle(watcher)
    writer.ok("STORE 1 +FLAGS ($FromNodeA)")
    lines = watcher.read_until(lambda line: b"FETCH" in line)
    announced = [i for i, line in enumerate(lines) if line.startswith(b"* FLAGS (")]
    assert announced, lines
    assert b"$FromNodeA" in lines[announced[0]]
    assert b"$FromNodeA" in lines[-1]
    watcher.send("DONE\r\n")
    assert watcher.finish(tag).status == "OK"


def test_changes_on_one_node_reach_a_notify_session_on_the_other(nodes: Cluster) -> None:
    """IMAP NOTIFY (RFC 5465): a session on node B that asked to be told is told, between
    commands, of mail and mailboxes that node A commits."""
    a, b = nodes.nodes
    alice, bob = nodes.account("alice"), nodes.account("bob")
    watcher, writer = imap(b, bob), imap(a, bob)
    watcher.ok("SELECT Drafts")
    watcher.ok(
        "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange))"
        " (personal (MessageNew MessageExpunge MailboxName))"
    )
    with smtp(a, alice) as client:
        client.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
    status = (
        rb'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UNSEEN 1 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)'
    )
    told = watcher.read_until(lambda line: line.startswith(b"* STATUS"))[-1]
    assert re.fullmatch(status, told), told
    writer.ok("CREATE Projects")
    listed = watcher.read_until(lambda line: line.startswith(b"* LIST"))[-1]
    assert listed == b'* LIST (\\HasNoChildren) "/" "Projects"'
    writer.ok("APPEND Drafts \x00", make_message(bob.address, bob.address))
    assert watcher.read_until(lambda line: line.endswith(b"EXISTS"))[-1] == b"* 1 EXISTS"
