"""Idempotent sends over the HTTP API (the SDK's `idempotency_key=`): a retry with the same key
returns the message the first request sent and sends nothing more; the key reused for another
request is a 409 (ConflictError); concurrent retries send one message."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from agentmail import ConflictError, ValidationError

from tests.harness import DOMAIN, Account, Server
from tests.http.sdk import NO_RETRIES, Api, username
from tests.smtp.helpers import read_mailbox


class Inbox:
    def __init__(self, address: str, api: Api) -> None:
        self.address = address
        self.api = api
        self.messages = api.client.inboxes.messages

    @property
    def account(self) -> Account:
        return Account(self.address, self.api.key)


@pytest.fixture
def pair(org: Api, pod: str, server: Server, apis: Callable[[str], Api]) -> tuple[Inbox, Inbox]:
    made = []
    for _ in range(2):
        inbox = org.client.pods.inboxes.create(pod, username=username(), domain=DOMAIN)
        made.append(Inbox(inbox.inbox_id, apis(server.inbox_key(inbox.inbox_id))))
    return made[0], made[1]


def inbox_count(server: Server, inbox: Inbox, mailbox: str = "INBOX") -> int:
    return len(read_mailbox(server, inbox.account, mailbox, with_bodies=False))


def test_a_retried_send_sends_once(server: Server, pair: tuple[Inbox, Inbox]) -> None:
    a, b = pair
    first = a.messages.send(a.address, to=[b.address], text="Once.", idempotency_key="order-1")
    again = a.messages.send(a.address, to=[b.address], text="Once.", idempotency_key="order-1")
    assert (again.message_id, again.thread_id) == (first.message_id, first.thread_id)
    assert inbox_count(server, b) == 1
    assert inbox_count(server, a, "Sent") == 1
    # Another key is another send; no key, every request sends.
    other = a.messages.send(a.address, to=[b.address], text="Once.", idempotency_key="order-2")
    assert other.message_id != first.message_id
    a.messages.send(a.address, to=[b.address], text="Once.")
    a.messages.send(a.address, to=[b.address], text="Once.")
    assert inbox_count(server, b) == 4


def test_the_key_reused_for_another_request_is_a_conflict(
    server: Server, pair: tuple[Inbox, Inbox]
) -> None:
    a, b = pair
    sent = a.messages.send(a.address, to=[b.address], text="First.", idempotency_key="k")
    with pytest.raises(ConflictError):
        a.messages.send(
            a.address,
            to=[b.address],
            text="Second.",
            idempotency_key="k",
            request_options=NO_RETRIES,
        )
    with pytest.raises(ConflictError):
        a.messages.reply(
            a.address,
            sent.message_id,
            text="A reply.",
            idempotency_key="k",
            request_options=NO_RETRIES,
        )
    assert inbox_count(server, b) == 1
    # Keys belong to the sending inbox: b's "k" is b's own.
    b.messages.send(b.address, to=[a.address], text="First.", idempotency_key="k")
    assert inbox_count(server, a) == 1


def test_concurrent_retries_send_one_message(server: Server, pair: tuple[Inbox, Inbox]) -> None:
    a, b = pair

    def send(_: int) -> str:
        return a.messages.send(
            a.address, to=[b.address], subject="Race", text="One.", idempotency_key="race"
        ).message_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(send, range(8)))
    assert len(ids) == 1
    assert inbox_count(server, b) == 1
    assert inbox_count(server, a, "Sent") == 1


def test_replies_forwards_and_drafts_are_idempotent(
    server: Server, pair: tuple[Inbox, Inbox]
) -> None:
    a, b = pair
    original = a.messages.send(a.address, to=[b.address], subject="Hi", text="Hello.")
    received = b.messages.list(b.address).messages[0].message_id
    for _ in range(2):
        reply = b.messages.reply(b.address, received, text="Hi back.", idempotency_key="r")
        forward = b.messages.forward(
            b.address, received, to=[a.address], text="FYI.", idempotency_key="f"
        )
    assert forward.message_id != reply.message_id
    assert inbox_count(server, a) == 2  # one reply, one forward
    assert reply.thread_id == forward.thread_id == b.messages.get(b.address, received).thread_id
    assert original.message_id != reply.message_id

    draft = b.api.client.inboxes.drafts.create(b.address, to=[a.address], text="A draft.")
    sent = b.api.client.inboxes.drafts.send(b.address, draft.draft_id, idempotency_key="d")
    # The draft is gone, yet the retry is answered with what it sent, not a 404.
    again = b.api.client.inboxes.drafts.send(b.address, draft.draft_id, idempotency_key="d")
    assert again.message_id == sent.message_id
    assert inbox_count(server, a) == 3


def test_a_key_is_remembered_for_a_day(server: Server, pair: tuple[Inbox, Inbox]) -> None:
    a, b = pair
    a.messages.send(a.address, to=[b.address], text="Today.", idempotency_key="daily")
    # What the server's pruning does a day later.
    assert server.call(server.store.prune_receipts(int(time.time()) + 1)) >= 1
    a.messages.send(a.address, to=[b.address], text="Today.", idempotency_key="daily")
    assert inbox_count(server, b) == 2


def test_an_unusable_key_is_a_bad_request(pair: tuple[Inbox, Inbox]) -> None:
    a, b = pair
    with pytest.raises(ValidationError):
        a.messages.send(a.address, to=[b.address], text="No.", idempotency_key="x" * 256)
    empty = a.api.raw(
        "POST",
        f"/v0/inboxes/{a.address}/messages/send",
        json={"to": [b.address], "text": "No."},
        headers={"Idempotency-Key": ""},
    )
    assert empty.status_code == 400
    assert empty.json()["errors"][0]["path"] == ["Idempotency-Key"]
