"""One client cannot stall the server. While the costliest SEARCH still allowed runs over a
20,000-message mailbox, other clients' IMAP and SMTP commands and HTTP API requests are answered
before it finishes
(ordering, not milliseconds); commands larger than `[imap] max_command_size` are refused before
they are read."""

from __future__ import annotations

import select
import uuid
from collections.abc import Callable

import httpx

from mailgate.imap.syntax.search import MAX_SEARCH_KEYS
from mailgate.store.records import Parcel, Target
from mailgate.store.rows import MAX_UID
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession
from tests.transcript import Transcript, sock_closed

MESSAGES = 20_000


def fill(server: Server, account: Account, count: int) -> None:
    """At least `count` small messages in the account's INBOX: a thousand filed straight into
    the store, then copied onto themselves until there are enough (a copy costs a tenth of a
    delivery, and the search reads each copy as it reads any message)."""

    async def go() -> None:
        inbox = await server.store.get_inbox(account.address)
        box = await server.store.get_mailbox(inbox.id, "INBOX")
        await server.store.deliver(
            [
                Parcel(
                    f"From: a@example.test\r\nSubject: message {n} {uuid.uuid4().hex}\r\n"
                    f"\r\nBody {n}\r\n".encode(),
                    (Target(box.id),),
                )
                for n in range(min(count, 1000))
            ]
        )
        while (await server.store.status(box.id)).messages < count:
            await server.store.copy(box.id, [(1, MAX_UID)], box.id)

    server.call(go(), timeout=600)


def costliest_search() -> bytes:
    """As many keys as a SEARCH program may have, each reading a header of every message."""
    ors = (MAX_SEARCH_KEYS - 1) // 2  # each OR counts, and one key more ends the chain
    terms = [f"OR SUBJECT nowhere{n}" for n in range(ors)]
    return ("SEARCH " + " ".join(terms) + " SUBJECT nowhere").encode()


def replied(t: Transcript) -> bool:
    """Whether anything of a reply has arrived, without waiting."""
    if t._buffer or t.sock.pending():  # type: ignore[attr-defined]
        return True
    return bool(select.select([t.sock], [], [], 0)[0])


def test_others_are_answered_while_a_costly_search_runs(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    busy_account, other_account = server.account(), server.account()
    fill(server, busy_account, MESSAGES)
    with (
        Transcript.login(server, busy_account) as busy,
        Transcript.login(server, other_account) as other,
        SMTPSession.connect(server) as smtp,
        httpx.Client(
            base_url=server.api_url, headers={"Authorization": f"Bearer {other_account.key}"}
        ) as http,
    ):
        busy.ok("SELECT INBOX")
        smtp.ehlo()
        busy.send(b"s1 " + costliest_search() + b"\r\n")
        answered = 0
        while not replied(busy):
            other.ok("NOOP")
            smtp.expect("NOOP", "250")
            me = http.get("/v0/auth/me", timeout=30)
            assert me.status_code == 200, me.text
            answered += 1
        lines = busy.read_until(lambda line: line.startswith(b"s1 "), timeout=300)
        assert lines[-1].startswith(b"s1 OK"), lines[-1]
        assert lines[:-1] == [b"* SEARCH"]
        # Answered over and over while the search ran, not once before it started.
        assert answered >= 3, answered


def test_a_search_over_the_key_limit_is_bad(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        s.ok("SELECT INBOX")
        too_many = " ".join(["OR SEEN"] * (MAX_SEARCH_KEYS // 2 + 1) + ["SEEN"])
        assert s.bad("SEARCH " + too_many).code == "LIMIT"
        s.ok("NOOP")


def test_a_big_search_is_refused_before_it_is_read(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        s.ok("SELECT INBOX")
        # A 9 MB literal: refused at its announcement, no "+" and no byte of it read.
        s.send(b"a1 SEARCH TEXT {9000000}\r\n")
        assert s.read_line().startswith(b"a1 BAD [TOOBIG]")
        s.ok("NOOP")
        # 100 KB of small LITERAL+ terms, already on their way: refused, and the server hangs
        # up rather than read the rest.
        term = b" OR SUBJECT {1+}\r\nx"
        s.send(b"a2 SEARCH" + term * (100_000 // len(term)) + b" ALL\r\n")
        lines = s.read_until(lambda line: line.startswith(b"* BYE"))
        assert lines[0].startswith(b"a2 BAD [TOOBIG]"), lines
        assert sock_closed(s)


def test_a_command_line_longer_than_the_limit_ends_the_session(
    server: Server, account: Account
) -> None:
    with Transcript.login(server, account) as s:
        s.send(b"a1 SEARCH " + b"OR SEEN " * 12_500 + b"SEEN\r\n")  # 100 KB, one line
        assert s.read_until(lambda line: line.startswith(b"* BYE"))[-1].startswith(b"* BYE")
        assert sock_closed(s)
