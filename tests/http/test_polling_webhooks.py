"""Polling webhooks over the HTTP API, made with the agentmail SDK and read as users read them,
with the `svix` library's AutoConfigConsumer and the token create answers with.

The resource at the top, under pods and under inboxes; the token shown once; ten per owner; a
repeated client_id re-issues the token. Mail submitted over SMTP arrives through
`AutoConfigConsumer.receive` as the SDK's event objects; a commit moves the consumer on, a poll
not committed comes again once its lease is over, each consumer has its own place, and a restart
keeps it. An inbox key's polling webhook gets only its inbox's events. A wrong token is a 401, and
so is the token of a deleted or re-issued polling webhook.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from agentmail import MessageReceivedEvent, MessageSentEvent, NotFoundError, ValidationError
from agentmail.core.api_error import ApiError
from agentmail.webhooks.polling import (
    CreatePollingWebhookResponse,
    ListPollingWebhooksResponse,
    PollingWebhook,
)
from svix import AutoConfigConsumer
from svix.api.errors.http_error import HttpError
from svix.api.errors.http_validation_error import HTTPValidationError
from svix.api_internal.message_pollerv2 import MessagePollerv2ConsumerPollOptions as Options
from svix.autoconfig import AutoConfigError
from svix.models import PollerV2MessageOut, PollerV2PollOut, SinkInCommon, StartingPosition

from mailgate.app import App
from tests.conftest import make_message
from tests.harness import Account, Server
from tests.http.sdk import Api, username

RECEIVED = ["message.received"]


def _pod(org: Api) -> str:
    name = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=name)
    return name


def _inbox(org: Api, pod: str) -> str:
    return org.client.pods.inboxes.create(pod, username=username()).inbox_id


def _client_id() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


def send(server: Server, sender: Account, to: str, count: int = 1) -> list[str]:
    """`count` messages from `sender` to `to` over SMTP (TLS, AUTH); their subjects."""
    subjects = [f"Note {uuid.uuid4().hex[:8]}" for _ in range(count)]
    with server.smtp_client(sender) as smtp:
        for subject in subjects:
            smtp.sendmail(sender.address, [to], make_message(sender.address, to, subject))
    return subjects


def consumer(token: str, **sink: Any) -> AutoConfigConsumer:
    """A consumer of the token, subscribed as a user subscribes."""
    reader = AutoConfigConsumer(token, SinkInCommon(**sink))
    reader.subscribe()
    return reader


def receive_all(
    reader: AutoConfigConsumer, consumer_id: str, count: int, **options: Any
) -> list[PollerV2MessageOut]:
    """Polls until `count` messages came (each once, as a poll without a lease gives them
    again); at most 15 s. Local mail's events are committed with the 250, so the first poll
    mostly has them."""
    got: dict[int, PollerV2MessageOut] = {}
    deadline = time.monotonic() + 15
    while len(got) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} messages came"
        got.update((m.offset, m) for m in reader.receive(consumer_id, Options(**options)).data)
    assert len(got) == count, [m.event_type for m in got.values()]
    return list(got.values())


def event_ids(server: Server, inbox: str, types: list[str]) -> list[str]:
    found = server.call(server.store.events_after(0, limit=10_000, inboxes=[inbox]))
    return [e.event_id for e in found if e.event_type in types]


def decoded(token: str) -> dict[str, Any]:
    assert token.startswith("auto_v2_")
    value = json.loads(base64.b64decode(token.removeprefix("auto_v2_")))
    assert isinstance(value, dict)
    return value


def refused(call: Callable[[], Any]) -> int:
    """The status of the svix error `call` raises."""
    with pytest.raises((HttpError, HTTPValidationError)) as error:
        call()
    return int(error.value.status_code)


# ------------------------------------------------------------------------------ the resource


def test_create_get_list_delete_at_three_levels(server: Server, org: Api) -> None:
    pod = _pod(org)
    inbox, other = _inbox(org, pod), _inbox(org, pod)
    polling = org.client.webhooks.polling

    top = org.valid(
        CreatePollingWebhookResponse,
        polling.create(client_id=_client_id(), event_types=RECEIVED, inbox_ids=[inbox]),
    )
    assert (top.pod_id, top.inbox_id, top.inbox_ids, top.pod_ids) == (None, None, [inbox], None)
    assert top.event_types == RECEIVED
    assert top.webhook_id.startswith("wh_")
    assert top.created_at.tzinfo is not None
    content = decoded(top.token)
    assert set(content) == {"aid", "sid", "surl", "esec", "tok"}
    assert content["surl"] == server.api_url
    assert content["esec"].startswith("whsec_")
    # The token is kept only as its hash.
    stored = server.call(server.store.get_polling_webhook(top.webhook_id))
    assert content["tok"] not in repr(stored)
    assert stored.token_hash != content["tok"]

    in_pod = org.valid(
        CreatePollingWebhookResponse,
        org.client.pods.webhooks.polling.create(
            pod, client_id=_client_id(), event_types=["message.sent"], inbox_ids=[other]
        ),
    )
    assert (in_pod.pod_id, in_pod.inbox_id, in_pod.inbox_ids) == (pod, None, [other])
    in_inbox = org.valid(
        CreatePollingWebhookResponse,
        org.client.inboxes.webhooks.polling.create(
            inbox, client_id=_client_id(), event_types=RECEIVED
        ),
    )
    assert (in_inbox.pod_id, in_inbox.inbox_id, in_inbox.inbox_ids) == (pod, inbox, [inbox])

    # Shown without its token.
    got = org.valid(PollingWebhook, polling.get(top.webhook_id))
    assert got.webhook_id == top.webhook_id
    assert "token" not in (org.last.json() if org.last else {})
    assert org.client.pods.webhooks.polling.get(pod, in_inbox.webhook_id).inbox_id == inbox
    assert org.client.inboxes.webhooks.polling.get(inbox, in_inbox.webhook_id).client_id

    # Each route lists the polling webhooks made through it, newest first.
    listed = org.valid(ListPollingWebhooksResponse, polling.list(limit=100))
    assert top.webhook_id in [h.webhook_id for h in listed.polling_webhooks]
    assert in_pod.webhook_id not in [h.webhook_id for h in listed.polling_webhooks]
    under_pod = org.valid(ListPollingWebhooksResponse, org.client.pods.webhooks.polling.list(pod))
    assert [h.webhook_id for h in under_pod.polling_webhooks] == [in_pod.webhook_id]
    under_inbox = org.client.inboxes.webhooks.polling.list(inbox)
    assert [h.webhook_id for h in under_inbox.polling_webhooks] == [in_inbox.webhook_id]
    # Not found where it does not belong, nor among the URL webhooks.
    with pytest.raises(NotFoundError):
        org.client.inboxes.webhooks.polling.get(other, in_inbox.webhook_id)
    with pytest.raises(NotFoundError):
        org.client.webhooks.get(top.webhook_id)

    org.client.inboxes.webhooks.polling.delete(inbox, in_inbox.webhook_id)
    with pytest.raises(NotFoundError):
        polling.get(in_inbox.webhook_id)
    with pytest.raises(NotFoundError):
        polling.delete(in_inbox.webhook_id)


def test_ten_per_owner_and_a_repeated_client_id_reissues_the_token(
    server: Server, org: Api
) -> None:
    pod = _pod(org)
    inbox = _inbox(org, pod)
    polling = org.client.inboxes.webhooks.polling
    made = [polling.create(inbox, client_id=f"agent-{i}", event_types=RECEIVED) for i in range(10)]
    with pytest.raises(ValidationError) as full:
        polling.create(inbox, client_id="agent-10", event_types=RECEIVED)
    assert "10 polling webhooks" in full.value.body.message
    # Another owner's count is its own.
    org.client.pods.webhooks.polling.create(pod, client_id="agent-10", event_types=RECEIVED)

    first = made[0]
    old = consumer(first.token)
    old.receive("me")
    again = polling.create(inbox, client_id="agent-0", event_types=RECEIVED)
    assert again.webhook_id == first.webhook_id
    assert again.token != first.token
    assert polling.list(inbox).count == 10
    # The old token stops working; the new one reads the same subscription.
    assert refused(lambda: old.receive("me")) == 401
    assert consumer(again.token).receive("me").done


def test_invalid_polling_webhooks_are_refused_naming_the_field(org: Api) -> None:
    pod = _pod(org)
    inbox = _inbox(org, pod)

    def fields(call: Callable[[], Any]) -> list[Any]:
        with pytest.raises(ValidationError) as bad:
            call()
        return [e["path"] for e in bad.value.body.errors]

    polling = org.client.webhooks.polling
    assert fields(
        lambda: polling.create(client_id="a", event_types=["message.sent", "message.opened"])
    ) == [["event_types", 1]]
    assert fields(lambda: polling.create(client_id="a", event_types=[])) == [["event_types"]]
    assert fields(
        lambda: polling.create(client_id="a", event_types=RECEIVED, inbox_ids=["no@where.test"])
    ) == [["inbox_ids", 0]]
    at_inbox = org.raw(
        "POST",
        f"/v0/inboxes/{inbox}/webhooks/polling",
        json={"client_id": "a", "event_types": RECEIVED, "inbox_ids": [inbox]},
    )
    assert (at_inbox.status_code, at_inbox.json()["errors"][0]["path"]) == (400, ["inbox_ids"])


# ------------------------------------------------------------------------------ reading


def test_mail_arrives_through_the_svix_consumer_as_the_sdk_reads_it(
    server: Server, org: Api
) -> None:
    sender, recipient = server.account(), server.account()
    made = org.client.inboxes.webhooks.polling.create(
        recipient.address, client_id=_client_id(), event_types=RECEIVED
    )
    reader = AutoConfigConsumer(made.token, SinkInCommon(uid="my-agent"))
    # Svix's rule: receive() only after subscribe().
    with pytest.raises(AutoConfigError):
        reader.receive("worker")
    destination = reader.subscribe()
    assert destination.id == made.webhook_id
    assert destination.uid == "my-agent"
    assert destination.event_types == RECEIVED
    assert destination.channels == [recipient.address]
    assert reader.receive("worker").done

    (subject,) = send(server, sender, recipient.address)
    (message,) = receive_all(reader, "worker", 1)
    assert message.event_type == "message.received"
    event = MessageReceivedEvent.model_validate(message.payload)
    assert event.message.subject == subject
    assert event.message.inbox_id == recipient.address
    assert event.thread.thread_id == event.message.thread_id
    # The outbox's event, with its seq as the offset.
    assert [message.event_id] == event_ids(server, recipient.address, RECEIVED)
    assert message.id == event.event_id == message.event_id
    assert recipient.address in (message.channels or [])
    out = reader.receive("worker")
    assert (out.data, out.done) == ([], True)
    # The JSON is Svix's model (camelCase), as other Svix libraries read it.
    raw = httpx.get(
        f"{server.api_url}/api/v1/app/{made.webhook_id}/polling-endpoint/{made.webhook_id}"
        "/consumer/fresh",
        headers={"Authorization": f"Bearer {decoded(made.token)['tok']}"},
        timeout=30,
    )
    assert raw.status_code == 200
    PollerV2PollOut.model_validate(raw.json())
    assert raw.json()["data"][0]["eventType"] == "message.received"


def test_commit_moves_on_and_what_is_not_committed_comes_again(server: Server, org: Api) -> None:
    sender, recipient = server.account(), server.account()
    made = org.client.webhooks.polling.create(
        client_id=_client_id(), event_types=RECEIVED, inbox_ids=[recipient.address]
    )
    reader = consumer(made.token)
    send(server, sender, recipient.address, count=3)
    expected = event_ids(server, recipient.address, RECEIVED)
    assert len(expected) == 3

    # Without a lease, a poll not committed is given again; a commit moves on.
    first = reader.receive("c", Options(lease_duration_ms=0))
    assert [m.event_id for m in first.data] == expected
    assert first.done
    assert reader.receive("c", Options(lease_duration_ms=0)).data == first.data
    reader.commit("c", first.data[1].offset)
    rest = reader.receive("c", Options(lease_duration_ms=0))
    assert [m.event_id for m in rest.data] == expected[2:]
    send(server, sender, recipient.address)
    newer = reader.receive("c", Options(lease_duration_ms=0))
    assert [m.event_id for m in newer.data][:1] == expected[2:]
    assert len(newer.data) == 2
    reader.commit("c", newer.data[-1].offset)
    assert reader.receive("c").data == []

    # Bounded polls: `limit`, and `done` once nothing is left.
    page = reader.receive("b", Options(limit=2))
    assert [m.event_id for m in page.data] == expected[:2]
    assert not page.done
    # In the lease, the next poll reads on from where the last one ended.
    page = reader.receive("b", Options(limit=2))
    assert [m.event_id for m in page.data] == [expected[2], newer.data[-1].event_id]
    assert page.done

    # Once its lease is over, what was not committed comes again.
    leased = reader.receive("d", Options(limit=2, lease_duration_ms=1))
    lease_end = time.monotonic() + 0.002
    while time.monotonic() < lease_end:
        pass  # a lease of one millisecond; a sleep would wait far longer
    assert reader.receive("d", Options(limit=2)).data == leased.data

    # "latest" starts a new consumer after the newest event.
    assert reader.receive("e", Options(starting_position=StartingPosition.LATEST)).data == []
    (subject,) = send(server, sender, recipient.address)
    (late,) = receive_all(reader, "e", 1)
    assert MessageReceivedEvent.model_validate(late.payload).message.subject == subject

    # A commit names an offset that exists.
    assert refused(lambda: reader.commit("c", late.offset + 1000)) == 422


def test_the_async_consumer_and_a_narrower_subscription(server: Server, org: Api) -> None:
    sender, recipient = server.account(), server.account()
    made = org.client.webhooks.polling.create(
        client_id=_client_id(),
        event_types=["message.received", "message.sent"],
        inbox_ids=[sender.address, recipient.address],
    )

    async def read() -> list[PollerV2MessageOut]:
        # Subscribed for the sender's inbox and message.sent only.
        reader = AutoConfigConsumer(
            made.token, SinkInCommon(event_types=["message.sent"], channels=[sender.address])
        )
        destination = await reader.subscribe_async()
        assert destination.event_types == ["message.sent"]
        send(server, sender, recipient.address)
        out = await reader.receive_async("async")
        await reader.commit_async("async", out.data[-1].offset)
        assert (await reader.receive_async("async")).data == []
        # The recipient's message.sent events are not on its channel: passed over, not left
        # in the way of a consumer that reads without a lease.
        send(server, recipient, sender.address, count=2)
        unleased = Options(limit=1, lease_duration_ms=0)
        first = await reader.receive_async("async", unleased)
        assert (first.data, first.done) == ([], False)
        second = await reader.receive_async("async", unleased)
        assert (second.data, second.done) == ([], True)
        return out.data

    (sent,) = asyncio.run(read())
    event = MessageSentEvent.model_validate(sent.payload)
    assert event.send.inbox_id == sender.address


def test_a_restart_keeps_each_consumers_place(make_server: Callable[..., Server]) -> None:
    server = make_server()
    sender, recipient = server.account(), server.account()
    org = Api(server, server.org_key())
    try:
        client_id = _client_id()
        made = org.client.inboxes.webhooks.polling.create(
            recipient.address, client_id=client_id, event_types=RECEIVED
        )
        reader = consumer(made.token)
        send(server, sender, recipient.address, count=2)
        before = receive_all(reader, "worker", 2, lease_duration_ms=0)
        reader.commit("worker", before[0].offset)
    finally:
        org.close()

    # A clean stop and a start on the same data (and database), on a new port.
    server.loop.run(server.app.stop())
    server.app = App(server.settings)
    server.loop.run(server.app.start())
    (subject,) = send(server, sender, recipient.address)
    org = Api(server, server.org_key())
    try:
        # The token names the old port: a new one, for the same subscription.
        again = org.client.inboxes.webhooks.polling.create(
            recipient.address, client_id=client_id, event_types=RECEIVED
        )
    finally:
        org.close()
    assert again.webhook_id == made.webhook_id
    # Its destination was kept: no subscribe() is needed again.
    reader = AutoConfigConsumer(again.token, SinkInCommon())
    after = reader.receive("worker", Options(lease_duration_ms=0))
    assert [m.event_id for m in after.data] == [before[1].event_id, after.data[-1].event_id]
    assert MessageReceivedEvent.model_validate(after.data[-1].payload).message.subject == subject


# ------------------------------------------------------------------------------ who sees what


def test_an_inbox_keys_polling_webhook_gets_only_its_inbox(
    server: Server, org: Api, apis: Callable[[str], Api]
) -> None:
    pod = _pod(org)
    mine, neighbour = _inbox(org, pod), _inbox(org, pod)
    sender = server.account()
    inbox_api = apis(server.inbox_key(mine))
    made = inbox_api.client.webhooks.polling.create(client_id=_client_id(), event_types=RECEIVED)
    assert (made.inbox_id, made.inbox_ids) == (mine, [mine])
    # Neither another inbox's events, nor pod polling webhooks, nor others' polling webhooks.
    with pytest.raises(ValidationError):
        inbox_api.client.webhooks.polling.create(
            client_id=_client_id(), event_types=RECEIVED, inbox_ids=[neighbour]
        )
    with pytest.raises(ApiError) as forbidden:
        inbox_api.client.pods.webhooks.polling.create(
            pod, client_id=_client_id(), event_types=RECEIVED
        )
    assert forbidden.value.status_code == 403
    of_pod = org.client.pods.webhooks.polling.create(
        pod, client_id=_client_id(), event_types=RECEIVED
    )
    with pytest.raises(NotFoundError):
        inbox_api.client.webhooks.polling.get(of_pod.webhook_id)
    assert [h.webhook_id for h in inbox_api.client.webhooks.polling.list().polling_webhooks] == [
        made.webhook_id
    ]

    reader, pod_reader = consumer(made.token), consumer(of_pod.token)
    send(server, sender, neighbour)
    (subject,) = send(server, sender, mine)
    (got,) = receive_all(reader, "worker", 1)
    assert MessageReceivedEvent.model_validate(got.payload).message.subject == subject
    assert reader.receive("worker").data == []
    # The pod's sees both of its inboxes.
    assert len(receive_all(pod_reader, "worker", 2)) == 2


def test_a_wrong_or_ended_token_is_401(server: Server, org: Api) -> None:
    pod = _pod(org)
    inbox = _inbox(org, pod)
    polling = org.client.inboxes.webhooks.polling
    made = polling.create(inbox, client_id=_client_id(), event_types=RECEIVED)
    other = polling.create(inbox, client_id=_client_id(), event_types=RECEIVED)
    content = decoded(made.token)

    def token(**changed: str) -> str:
        encoded = json.dumps({**content, **changed}).encode()
        return "auto_v2_" + base64.b64encode(encoded).decode()

    wrong = AutoConfigConsumer(token(tok=content["tok"] + "x"), SinkInCommon())
    assert refused(wrong.subscribe) == 401
    # Another polling webhook's token does not open this one.
    crossed = AutoConfigConsumer(token(tok=decoded(other.token)["tok"]), SinkInCommon())
    assert refused(crossed.subscribe) == 401
    bare = httpx.get(
        f"{server.api_url}/api/v1/app/{made.webhook_id}/autoconfig/{made.webhook_id}", timeout=30
    )
    assert bare.status_code == 401
    assert bare.json()["code"] == "authentication_failed"

    reader = consumer(made.token)
    assert reader.receive("worker").done
    polling.delete(inbox, made.webhook_id)
    assert refused(lambda: reader.receive("worker")) == 401
    assert refused(lambda: reader.commit("worker", 0)) == 401
    # The other one is untouched.
    assert consumer(other.token).receive("worker").done
