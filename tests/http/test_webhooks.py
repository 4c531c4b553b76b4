"""Webhooks over the HTTP API, driven by the agentmail SDK, delivered to real receivers on
127.0.0.1 and checked with the `svix` library and the SDK's event models.

CRUD at the top, under pods and under inboxes, and which key sees which webhook; custom headers;
client_id; validation. Deliveries: mail submitted over SMTP arrives as message.received at the
recipient's webhook and message.sent + message.delivered at the sender's, signed as Svix signs;
filters hold; a failing endpoint is retried with the same svix-id, then gets the next events in
order; a hanging endpoint delays no other; URLs that reach non-public addresses are refused,
at creation and at delivery (DNS may change); an endpoint that keeps failing is disabled; and a
restart in the middle of a burst delivers every event exactly once.

Most tests share one server per backend that lets webhooks reach 127.0.0.1 and retries after
1 s; each test uses inboxes of its own and webhooks scoped to them.
"""

from __future__ import annotations

import base64
import datetime
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agentmail import (
    MessageDeliveredEvent,
    MessageReceivedEvent,
    MessageSentEvent,
    NotFoundError,
    ValidationError,
)
from agentmail.core.api_error import ApiError
from agentmail.webhooks import ListWebhooksResponse, Webhook, WebhookHeaderNamesResponse
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from svix.webhooks import Webhook as SvixWebhook

from mailgate.app import App
from mailgate.store.records import Webhook as WebhookRecord
from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.harness import Account, Server, running_server
from tests.http.metrics import scrape
from tests.http.receiver import Delivery, Receiver
from tests.http.sdk import Api, username

MAIL_EVENTS = ["message.received", "message.sent", "message.delivered"]
# Receivers are on 127.0.0.1; retries come after a second, not Svix's 5 s.
FAST: dict[str, Any] = {
    "allow_private_webhooks": True,
    "webhook_retry_intervals": (1,),
    "webhook_timeout": 5.0,
}


@pytest.fixture(scope="module")
def hooks_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp(f"webhooks-{backend}"), backend, api=FAST) as srv:
        srv.account()  # the first inbox of example.test adds the domain
        yield srv


@pytest.fixture
def apis(hooks_server: Server) -> Iterator[Callable[[str], Api]]:
    opened: list[Api] = []

    def make(key: str) -> Api:
        opened.append(Api(hooks_server, key))
        return opened[-1]

    yield make
    for api in opened:
        api.close()


@pytest.fixture
def org(hooks_server: Server, apis: Callable[[str], Api]) -> Api:
    return apis(hooks_server.org_key())


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def _pod(org: Api) -> str:
    name = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=name)
    return name


def _inbox(org: Api, pod: str) -> str:
    return org.client.pods.inboxes.create(pod, username=username()).inbox_id


def send(server: Server, sender: Account, to: str, count: int = 1) -> list[str]:
    """`count` messages from `sender` to `to` over SMTP (TLS, AUTH); their subjects."""
    subjects = [f"Note {uuid.uuid4().hex[:8]}" for _ in range(count)]
    with server.smtp_client(sender) as smtp:
        for subject in subjects:
            smtp.sendmail(sender.address, [to], make_message(sender.address, to, subject))
    return subjects


def verified(hook: Any, delivery: Delivery) -> dict[str, Any]:
    """The delivery's event, once svix has verified its signature with the webhook's secret."""
    assert delivery.headers["content-type"] == "application/json"
    SvixWebhook(hook.secret).verify(delivery.body, delivery.headers)
    event = delivery.event
    assert event["event_id"] == delivery.svix_id
    return event


def record(server: Server, webhook_id: str) -> WebhookRecord:
    return server.call(server.store.get_webhook(webhook_id))


def event_ids(server: Server, inbox: str, types: list[str]) -> list[str]:
    found = server.call(server.store.events_after(0, limit=10_000, inboxes=[inbox]))
    return [e.event_id for e in found if e.event_type in types]


def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """For state only the store shows: looked at every 50 ms, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ the resource


def test_create_get_list_update_delete_at_three_levels(
    org: Api, receivers: Callable[..., Receiver]
) -> None:
    url = receivers().url
    pod = _pod(org)
    inbox, other = _inbox(org, pod), _inbox(org, pod)

    top = org.valid(
        Webhook,
        org.client.webhooks.create(url=url, event_types=["message.received"], inbox_ids=[inbox]),
    )
    assert top.secret.startswith("whsec_")
    assert len(base64.b64decode(top.secret.removeprefix("whsec_"))) == 24
    assert (top.url, top.enabled, top.event_types) == (url, True, ["message.received"])
    assert (top.pod_id, top.inbox_id, top.inbox_ids, top.pod_ids) == (None, None, [inbox], None)
    assert top.created_at.tzinfo is not None
    in_pod = org.valid(
        Webhook, org.client.pods.webhooks.create(pod, url=url, event_types=["message.sent"])
    )
    assert (in_pod.pod_id, in_pod.inbox_id, in_pod.pod_ids) == (pod, None, [pod])
    in_inbox = org.valid(
        Webhook,
        org.client.inboxes.webhooks.create(inbox, url=url, event_types=["message.delivered"]),
    )
    assert (in_inbox.pod_id, in_inbox.inbox_id, in_inbox.inbox_ids) == (pod, inbox, [inbox])

    # The secret is shown whenever the webhook is (the SDK's Webhook requires it).
    got = org.valid(Webhook, org.client.webhooks.get(top.webhook_id))
    assert (got.webhook_id, got.secret) == (top.webhook_id, top.secret)
    assert org.client.pods.webhooks.get(pod, in_inbox.webhook_id).inbox_id == inbox
    assert org.client.inboxes.webhooks.get(inbox, in_inbox.webhook_id).secret == in_inbox.secret

    listed = org.valid(ListWebhooksResponse, org.client.webhooks.list())
    ids = [w.webhook_id for w in listed.webhooks]
    assert listed.count == len(ids)
    # Newest first.
    assert ids.index(in_inbox.webhook_id) < ids.index(in_pod.webhook_id) < ids.index(top.webhook_id)
    under_pod = org.valid(ListWebhooksResponse, org.client.pods.webhooks.list(pod))
    assert [w.webhook_id for w in under_pod.webhooks] == [in_inbox.webhook_id, in_pod.webhook_id]
    oldest_first = org.client.pods.webhooks.list(pod, ascending=True)
    assert [w.webhook_id for w in oldest_first.webhooks] == [in_pod.webhook_id, in_inbox.webhook_id]
    under_inbox = org.client.inboxes.webhooks.list(inbox)
    assert [w.webhook_id for w in under_inbox.webhooks] == [in_inbox.webhook_id]
    first = org.client.pods.webhooks.list(pod, limit=1)
    assert first.count == 1
    assert first.next_page_token
    second = org.client.pods.webhooks.list(pod, limit=1, page_token=first.next_page_token)
    assert second.next_page_token is None
    assert [w.webhook_id for w in (*first.webhooks, *second.webhooks)] == [
        in_inbox.webhook_id,
        in_pod.webhook_id,
    ]
    # A webhook is not found under a pod or inbox it does not belong to.
    with pytest.raises(NotFoundError):
        org.client.inboxes.webhooks.get(inbox, in_pod.webhook_id)
    with pytest.raises(NotFoundError):
        org.client.inboxes.webhooks.get(other, in_inbox.webhook_id)

    changed = org.valid(
        Webhook,
        org.client.webhooks.update(
            top.webhook_id,
            add_inbox_ids=[other],
            event_types=["message.received", "message.sent"],
        ),
    )
    assert changed.inbox_ids == [inbox, other]
    assert changed.event_types == ["message.received", "message.sent"]
    changed = org.client.webhooks.update(top.webhook_id, remove_inbox_ids=[inbox], event_types=[])
    assert changed.inbox_ids == [other]
    assert changed.event_types == ["message.received", "message.sent"]  # [] changes nothing
    with pytest.raises(ValidationError):  # it would then get every event
        org.client.webhooks.update(top.webhook_id, remove_inbox_ids=[other])
    # A pod's webhook covers its pod: an inbox added to it adds nothing it did not get.
    widened = org.client.pods.webhooks.update(pod, in_pod.webhook_id, add_inbox_ids=[other])
    assert (widened.pod_ids, widened.inbox_ids) == ([pod], [other])

    off = org.valid(Webhook, org.client.pods.webhooks.update(pod, in_pod.webhook_id, enabled=False))
    assert off.enabled is False
    assert org.client.webhooks.get(in_pod.webhook_id).enabled is False
    assert org.client.webhooks.update(in_pod.webhook_id, enabled=True).enabled is True

    org.client.inboxes.webhooks.delete(inbox, in_inbox.webhook_id)
    org.client.pods.webhooks.delete(pod, in_pod.webhook_id)
    org.client.webhooks.delete(top.webhook_id)
    for webhook_id in (top.webhook_id, in_pod.webhook_id, in_inbox.webhook_id):
        with pytest.raises(NotFoundError):
            org.client.webhooks.get(webhook_id)
        with pytest.raises(NotFoundError):
            org.client.webhooks.delete(webhook_id)


def test_each_key_sees_the_webhooks_of_its_scope(
    hooks_server: Server, org: Api, apis: Callable[[str], Api], receivers: Callable[..., Receiver]
) -> None:
    url = receivers().url
    mine, theirs = _pod(org), _pod(org)
    a1, a2, b1 = _inbox(org, mine), _inbox(org, mine), _inbox(org, theirs)
    key_a1, key_a2 = apis(hooks_server.inbox_key(a1)), apis(hooks_server.inbox_key(a2))
    key_pod = apis(hooks_server.pod_key(mine))
    types = ["message.received"]

    # At the top, a webhook belongs to the key's own scope.
    of_a1 = key_a1.valid(Webhook, key_a1.client.webhooks.create(url=url, event_types=types))
    assert (of_a1.inbox_id, of_a1.pod_id, of_a1.inbox_ids) == (a1, mine, [a1])
    of_pod = key_pod.valid(Webhook, key_pod.client.webhooks.create(url=url, event_types=types))
    assert (of_pod.pod_id, of_pod.inbox_id, of_pod.pod_ids) == (mine, None, [mine])
    of_a2 = key_a2.client.inboxes.webhooks.create(a2, url=url, event_types=types)
    of_b1 = org.client.inboxes.webhooks.create(b1, url=url, event_types=types)
    of_org = org.client.webhooks.create(url=url, event_types=types, inbox_ids=[b1])

    assert [w.webhook_id for w in key_a1.client.webhooks.list().webhooks] == [of_a1.webhook_id]
    assert [w.webhook_id for w in key_a1.client.pods.webhooks.list(mine).webhooks] == [
        of_a1.webhook_id
    ]
    assert {w.webhook_id for w in key_pod.client.webhooks.list().webhooks} == {
        of_a1.webhook_id,
        of_a2.webhook_id,
        of_pod.webhook_id,
    }
    # What is outside a key's scope does not exist for it: the same 404 as for no webhook.
    for hidden in (of_a2, of_b1, of_pod, of_org):
        with pytest.raises(NotFoundError) as missing:
            key_a1.client.webhooks.get(hidden.webhook_id)
        assert missing.value.body.message == f"no webhook {hidden.webhook_id}"
        with pytest.raises(NotFoundError):
            key_a1.client.webhooks.update(hidden.webhook_id, enabled=False)
        with pytest.raises(NotFoundError):
            key_a1.client.webhooks.delete(hidden.webhook_id)
    for hidden in (of_b1, of_org):
        with pytest.raises(NotFoundError):
            key_pod.client.webhooks.get(hidden.webhook_id)
    # (The SDK's list raises a plain ApiError for a 404.)
    for listing in (
        lambda: key_a1.client.inboxes.webhooks.list(a2),
        lambda: key_pod.client.pods.webhooks.list(theirs),
    ):
        with pytest.raises(ApiError) as absent:
            listing()
        assert absent.value.status_code == 404
    # An inbox key sees its pod, but may not make a webhook for all of it.
    with pytest.raises(ApiError) as forbidden:
        key_a1.client.pods.webhooks.create(mine, url=url, event_types=types)
    assert forbidden.value.status_code == 403
    # Pods and inboxes named must be the key's to see, and within the webhook's owner.
    with pytest.raises(ValidationError) as unseen:
        key_pod.client.webhooks.create(url=url, event_types=types, inbox_ids=[a1, b1])
    assert [e["path"] for e in unseen.value.body.errors] == [["inbox_ids", 1]]
    with pytest.raises(ValidationError) as other_pod:
        key_pod.client.webhooks.create(url=url, event_types=types, pod_ids=[theirs])
    assert [e["path"] for e in other_pod.value.body.errors] == [["pod_ids", 0]]
    with pytest.raises(ValidationError):
        key_a1.client.webhooks.create(url=url, event_types=types, inbox_ids=[a2])
    with pytest.raises(ValidationError):
        key_pod.client.webhooks.update(of_pod.webhook_id, add_inbox_ids=[b1])
    # The key's own webhooks it manages.
    assert key_a1.client.webhooks.update(of_a1.webhook_id, enabled=False).enabled is False
    key_a1.client.inboxes.webhooks.delete(a1, of_a1.webhook_id)
    assert org.client.pods.webhooks.list(mine).count == 2


def test_headers_are_write_only_and_set_or_removed_at_once(
    org: Api, receivers: Callable[..., Receiver]
) -> None:
    inbox = _inbox(org, _pod(org))
    hook = org.client.inboxes.webhooks.create(
        inbox,
        url=receivers().url,
        event_types=["message.received"],
        headers={"X-Token": "value-never-shown", "X-Other": "1"},
    )
    names = org.valid(WebhookHeaderNamesResponse, org.client.webhooks.get_headers(hook.webhook_id))
    assert names.header_names == ["X-Token", "X-Other"]
    assert "value-never-shown" not in org.raw("GET", f"/v0/webhooks/{hook.webhook_id}").text
    assert "value-never-shown" not in org.raw("GET", f"/v0/inboxes/{inbox}/webhooks").text

    org.client.inboxes.webhooks.update_headers(
        inbox,
        hook.webhook_id,
        headers={"x-token": "new", "X-Added": "2"},
        remove_headers=["x-other"],
    )
    got = org.client.inboxes.webhooks.get_headers(inbox, hook.webhook_id)
    assert got.header_names == ["x-token", "X-Added"]
    org.client.webhooks.update_headers(hook.webhook_id, remove_headers=["X-ADDED"])
    assert org.client.webhooks.get_headers(hook.webhook_id).header_names == ["x-token"]

    for given in (
        {"headers": {"A-B": "1"}, "remove_headers": ["a-b"]},  # set and removed at once
        {"headers": {"svix-signature": "v1,forged"}},  # what mailgate signs with
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"Bad Name": "1"}},
        {"headers": {"X-Line": "a\r\nInjected: 1"}},
        {},
    ):
        with pytest.raises(ValidationError):
            org.client.webhooks.update_headers(hook.webhook_id, **given)
    with pytest.raises(ValidationError):
        org.client.webhooks.create(
            url=receivers().url, event_types=["message.sent"], headers={"Host": "elsewhere"}
        )
    assert org.client.webhooks.get_headers(hook.webhook_id).header_names == ["x-token"]


def test_client_id_makes_create_idempotent_per_owner(
    org: Api, receivers: Callable[..., Receiver]
) -> None:
    url = receivers().url
    pod = _pod(org)
    inbox = _inbox(org, pod)
    client_id = f"hook-{uuid.uuid4().hex[:8]}"
    first = org.client.inboxes.webhooks.create(
        inbox, url=url, event_types=["message.received"], client_id=client_id
    )
    assert first.client_id == client_id
    again = org.client.inboxes.webhooks.create(
        inbox, url=url, event_types=["message.received"], client_id=client_id
    )
    assert (again.webhook_id, again.secret) == (first.webhook_id, first.secret)
    # Another owner's client ids are its own.
    of_pod = org.client.pods.webhooks.create(
        pod, url=url, event_types=["message.received"], client_id=client_id
    )
    assert of_pod.webhook_id != first.webhook_id
    assert org.client.inboxes.webhooks.list(inbox).count == 1


def test_invalid_webhooks_are_refused_naming_the_field(
    org: Api, receivers: Callable[..., Receiver]
) -> None:
    url = receivers().url
    pod = _pod(org)
    inbox = _inbox(org, pod)

    def refused(call: Callable[[], Any]) -> list[Any]:
        with pytest.raises(ValidationError) as bad:
            call()
        return [e["path"] for e in bad.value.body.errors]

    for wrong in ("ftp://example.com/hook", "not a url", "http://user:pw@example.com/", "http://"):
        assert refused(
            lambda wrong=wrong: org.client.webhooks.create(url=wrong, event_types=["message.sent"])
        ) == [["url"]]
    assert refused(
        lambda: org.client.webhooks.create(url=url, event_types=["message.sent", "message.opened"])
    ) == [["event_types", 1]]
    assert refused(lambda: org.client.webhooks.create(url=url, event_types=[])) == [["event_types"]]
    many = [_inbox(org, pod) for _ in range(11)]
    assert refused(
        lambda: org.client.webhooks.create(url=url, event_types=["message.sent"], inbox_ids=many)
    ) == [[]]
    hook = org.client.webhooks.create(url=url, event_types=["message.sent"], inbox_ids=many[:10])
    assert refused(lambda: org.client.webhooks.update(hook.webhook_id, add_pod_ids=[pod])) == [[]]
    # What the path fixes cannot be asked for (the SDK does not send it; a client might).
    body = {"url": url, "event_types": ["message.sent"]}
    at_pod = org.raw("POST", f"/v0/pods/{pod}/webhooks", json={**body, "pod_ids": [pod]})
    assert (at_pod.status_code, at_pod.json()["errors"][0]["path"]) == (400, ["pod_ids"])
    at_inbox = org.raw("POST", f"/v0/inboxes/{inbox}/webhooks", json={**body, "inbox_ids": [inbox]})
    assert (at_inbox.status_code, at_inbox.json()["errors"][0]["path"]) == (400, ["inbox_ids"])


# ------------------------------------------------------------------------------ deliveries


def test_mail_arrives_as_signed_events_the_sdk_reads(
    hooks_server: Server, org: Api, receivers: Callable[..., Receiver]
) -> None:
    sender, recipient = hooks_server.account(), hooks_server.account()
    at_sender, at_recipient = receivers(), receivers()
    sender_hook = org.client.inboxes.webhooks.create(
        sender.address, url=at_sender.url, event_types=MAIL_EVENTS, headers={"X-Token": "t0k"}
    )
    recipient_hook = org.client.inboxes.webhooks.create(
        recipient.address, url=at_recipient.url, event_types=MAIL_EVENTS
    )
    (subject,) = send(hooks_server, sender, recipient.address)

    sent, delivered = (verified(sender_hook, d) for d in at_sender.wait_for(2))
    (received,) = (verified(recipient_hook, d) for d in at_recipient.wait_for(1))
    assert at_sender.deliveries[0].headers["x-token"] == "t0k"
    assert at_sender.deliveries[0].path == "/hook"
    assert "x-token" not in at_recipient.deliveries[0].headers

    sent_event = MessageSentEvent.model_validate(sent)
    assert sent_event.event_type == "message.sent"
    assert sent_event.send.inbox_id == sender.address
    assert sent_event.send.recipients == [recipient.address]
    delivered_event = MessageDeliveredEvent.model_validate(delivered)
    assert delivered_event.delivery.recipients == [recipient.address]
    assert delivered_event.delivery.message_id == sent_event.send.message_id
    received_event = MessageReceivedEvent.model_validate(received)
    assert received_event.event_type == "message.received"
    assert received_event.message.inbox_id == recipient.address
    assert received_event.message.subject == subject
    assert received_event.message.message_id == sent_event.send.message_id
    assert received_event.thread.thread_id == received_event.message.thread_id
    assert received_event.thread.inbox_id == recipient.address
    # Each event is the one the outbox holds, in its order.
    assert [sent["event_id"], delivered["event_id"]] == event_ids(
        hooks_server, sender.address, MAIL_EVENTS
    )


def test_filters_choose_the_events(
    hooks_server: Server, org: Api, receivers: Callable[..., Receiver]
) -> None:
    a, b = hooks_server.account(), hooks_server.account()
    only_b, only_delivered = receivers(), receivers()
    b_hook = org.client.webhooks.create(
        url=only_b.url, event_types=["message.received"], inbox_ids=[b.address]
    )
    org.client.inboxes.webhooks.create(
        a.address, url=only_delivered.url, event_types=["message.delivered"]
    )
    send(hooks_server, a, b.address)
    send(hooks_server, b, a.address)
    send(hooks_server, a, b.address)
    # Deliveries are in outbox order: anything the filters let through would come before the
    # last event awaited here.
    got = only_b.wait_for(2)
    assert [verified(b_hook, d)["event_type"] for d in got] == ["message.received"] * 2
    assert [d.svix_id for d in got] == event_ids(hooks_server, b.address, ["message.received"])
    delivered = only_delivered.wait_for(2)
    assert [d.event["event_type"] for d in delivered] == ["message.delivered"] * 2
    assert [d.svix_id for d in delivered] == event_ids(
        hooks_server, a.address, ["message.delivered"]
    )

    # A pod's webhook narrowed to one of its inboxes.
    pod = _pod(org)
    p1, p2 = _inbox(org, pod), _inbox(org, pod)
    narrowed = receivers()
    org.client.pods.webhooks.create(
        pod, url=narrowed.url, event_types=["message.received"], inbox_ids=[p1]
    )
    send(hooks_server, a, p2)
    send(hooks_server, a, p1)
    (only,) = narrowed.wait_for(1)
    assert only.event["message"]["inbox_id"] == p1
    assert [only.svix_id] == event_ids(hooks_server, p1, ["message.received"])


def test_a_failing_endpoint_is_retried_with_the_same_id_then_gets_the_rest_in_order(
    hooks_server: Server, org: Api, receivers: Callable[..., Receiver]
) -> None:
    sender, recipient = hooks_server.account(), hooks_server.account()
    flaky = receivers(lambda n: 500 if n < 2 else 200)
    hook = org.client.inboxes.webhooks.create(
        recipient.address, url=flaky.url, event_types=["message.received"]
    )
    send(hooks_server, sender, recipient.address, count=3)
    got = flaky.wait_for(5)
    for delivery in got:
        verified(hook, delivery)  # each attempt signed afresh
    expected = event_ids(hooks_server, recipient.address, ["message.received"])
    assert [d.svix_id for d in got] == [expected[0]] * 3 + expected[1:]
    # Retried after [api] webhook_retry_intervals (1 s here); the rest at once after the 2xx.
    assert got[1].at - got[0].at >= 0.9
    assert got[2].at - got[1].at >= 0.9
    assert got[4].at - got[2].at < 1.0
    assert record(hooks_server, hook.webhook_id).attempts == 0
    assert record(hooks_server, hook.webhook_id).last_error is None
    # Operators see it: two failures of this endpoint, and nothing left behind.
    seen = scrape(hooks_server)
    assert seen.value("mailgate_webhook_failures_total", webhook=hook.webhook_id) == 2
    assert seen.value("mailgate_webhook_failing_attempts", webhook=hook.webhook_id) == 0
    assert seen.has("mailgate_webhook_backlog", webhook=hook.webhook_id)
    assert seen.total("mailgate_webhook_deliveries_total") >= 3


def test_a_redirect_is_a_failure_and_is_not_followed(
    hooks_server: Server, org: Api, receivers: Callable[..., Receiver]
) -> None:
    sender, recipient = hooks_server.account(), hooks_server.account()
    elsewhere = receivers()
    moved = receivers(lambda n: 307 if n == 0 else 200, headers={"Location": elsewhere.url})
    hook = org.client.inboxes.webhooks.create(
        recipient.address, url=moved.url, event_types=["message.received"]
    )
    send(hooks_server, sender, recipient.address)
    first, second = moved.wait_for(2)
    assert first.svix_id == second.svix_id
    assert elsewhere.deliveries == []
    verified(hook, second)


def test_a_hanging_endpoint_delays_neither_other_endpoints_nor_mail(
    hooks_server: Server, org: Api, receivers: Callable[..., Receiver]
) -> None:
    sender, recipient = hooks_server.account(), hooks_server.account()
    hanging, quick = receivers(lambda n: None), receivers()
    org.client.inboxes.webhooks.create(
        recipient.address, url=hanging.url, event_types=["message.received"]
    )
    org.client.inboxes.webhooks.create(
        recipient.address, url=quick.url, event_types=["message.received"]
    )
    send(hooks_server, sender, recipient.address)
    hanging.wait_open(1)
    quick.wait_for(1, timeout=3)
    # While the first delivery still hangs (its timeout is 5 s), mail goes on and so do the
    # other endpoint's deliveries.
    started = time.monotonic()
    send(hooks_server, sender, recipient.address)
    assert time.monotonic() - started < 2
    second = quick.wait_for(2, timeout=3)[1]
    assert second.at - started < 2
    assert hanging.open == 1
    assert len(hanging.deliveries) == 1
    listed = Api(hooks_server, recipient.key)
    try:
        assert listed.client.inboxes.messages.list(recipient.address).count == 2
    finally:
        listed.close()


def test_webhooks_may_not_reach_private_addresses(
    make_server: Callable[..., Server], receivers: Callable[..., Receiver]
) -> None:
    rx = receivers()
    with ZoneServer() as zone:
        zone.set("internal.example.test", "A", ["10.1.2.3"])
        zone.set("metadata.example.test", "AAAA", ["fd00:ec2::254"])
        zone.set("mixed.example.test", "A", ["8.8.8.8", "127.0.0.1"])
        zone.set("public.example.test", "A", ["8.8.8.8"])
        server = make_server(
            api={"webhook_retry_intervals": (1,)},
            dns={"nameservers": (zone.address,), "timeout": 1.0},
        )
        account = server.account()
        org = Api(server, server.org_key())
        try:
            for url in (
                rx.url,
                "http://10.0.0.1/hook",
                "http://169.254.169.254/latest/meta-data/",
                "http://100.64.0.1/hook",
                "http://[::1]:8080/hook",
                "http://[::ffff:127.0.0.1]/hook",
                "http://0.0.0.0/hook",
                "http://224.0.0.1/hook",
                "http://localhost:8080/hook",
                "http://internal.example.test/hook",
                "https://metadata.example.test/hook",
                "http://mixed.example.test/hook",
            ):
                with pytest.raises(ValidationError) as refused:
                    org.client.webhooks.create(url=url, event_types=["message.received"])
                assert [e["path"] for e in refused.value.body.errors] == [["url"]], url
                assert "non-public" in refused.value.body.errors[0]["message"]

            # A name resolving to a public address is accepted; when DNS then points it at
            # this machine, each delivery checks again and refuses.
            hook = org.client.webhooks.create(
                url=f"http://public.example.test:{rx.port}/hook",
                event_types=["message.received"],
                inbox_ids=[account.address],
            )
            zone.set("public.example.test", "A", ["127.0.0.1"])
            send(server, account, account.address)
            eventually(
                lambda: "refused" in (record(server, hook.webhook_id).last_error or ""),
                "the delivery to be refused",
            )
            assert "127.0.0.1" in (record(server, hook.webhook_id).last_error or "")
            assert rx.deliveries == []
        finally:
            org.close()


def test_a_failing_endpoint_is_disabled_and_re_enabled_from_then_on(
    make_server: Callable[..., Server], receivers: Callable[..., Receiver]
) -> None:
    failing = receivers(lambda n: 500)
    pinned = receivers()
    with ZoneServer() as zone:
        zone.set("hooks.example.test", "A", ["127.0.0.1"])
        server = make_server(
            api={**FAST, "webhook_disable_after": 2},
            dns={"nameservers": (zone.address,), "timeout": 1.0},
        )
        sender, recipient = server.account(), server.account()
        org = Api(server, server.org_key())
        try:
            hook = org.client.inboxes.webhooks.create(
                recipient.address, url=failing.url, event_types=["message.received"]
            )
            # Delivered to the address checked, under the URL's own name.
            by_name = org.client.inboxes.webhooks.create(
                recipient.address,
                url=f"http://hooks.example.test:{pinned.port}/in",
                event_types=["message.received"],
            )
            send(server, sender, recipient.address)
            (first,) = pinned.wait_for(1)
            assert first.headers["host"] == f"hooks.example.test:{pinned.port}"
            assert first.path == "/in"
            verified(by_name, first)

            failing.wait_for(2)
            eventually(
                lambda: not org.client.webhooks.get(hook.webhook_id).enabled, "it to be disabled"
            )
            assert record(server, hook.webhook_id).failing_since is not None
            reason = record(server, hook.webhook_id).disabled_reason or ""
            assert "answered 500" in reason
            attempts = len(failing.deliveries)
            # Disabled, it is sent nothing; re-enabled, only what happens from then on.
            send(server, sender, recipient.address)
            pinned.wait_for(2)
            assert org.client.webhooks.update(hook.webhook_id, enabled=True).enabled is True
            send(server, sender, recipient.address)
            pinned.wait_for(3)
            got = failing.wait_for(attempts + 1)
            newest = event_ids(server, recipient.address, ["message.received"])[-1]
            assert got[attempts].svix_id == newest
        finally:
            org.close()


def _certificate(directory: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name`: the server's context, and a client's trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


def test_https_is_sent_to_the_checked_address_under_the_url_name(
    make_server: Callable[..., Server], receivers: Callable[..., Receiver], tmp_path: Path
) -> None:
    server_tls, trusting = _certificate(tmp_path, "secure.example.test")
    rx = receivers(tls=server_tls)
    with ZoneServer() as zone:
        zone.set("secure.example.test", "A", ["127.0.0.1"])
        server = make_server(api=FAST, dns={"nameservers": (zone.address,), "timeout": 1.0})
        worker = server.app.webhooks
        assert worker is not None
        worker._tls = trusting  # the test's CA, in place of the system's
        sender, recipient = server.account(), server.account()
        org = Api(server, server.org_key())
        try:
            by_name = org.client.inboxes.webhooks.create(
                recipient.address,
                url=f"https://secure.example.test:{rx.port}/tls",
                event_types=["message.received"],
            )
            # The certificate names secure.example.test, not the address: refused.
            by_address = org.client.inboxes.webhooks.create(
                recipient.address, url=rx.url, event_types=["message.received"]
            )
            send(server, sender, recipient.address)
            (got,) = rx.wait_for(1)
            assert got.path == "/tls"
            assert got.headers["host"] == f"secure.example.test:{rx.port}"
            verified(by_name, got)
            eventually(
                lambda: "certificate" in (record(server, by_address.webhook_id).last_error or ""),
                "the certificate to be refused",
            )
            assert len(rx.deliveries) == 1
        finally:
            org.close()


def test_a_restart_in_the_middle_of_a_burst_delivers_each_event_exactly_once(
    make_server: Callable[..., Server], receivers: Callable[..., Receiver]
) -> None:
    server = make_server(api=FAST)
    sender, recipient = server.account(), server.account()
    rx = receivers(delay=0.02)  # slower than mail comes in: the burst is still being sent
    org = Api(server, server.org_key())
    try:
        for inbox in (sender.address, recipient.address):
            org.client.inboxes.webhooks.create(inbox, url=rx.url, event_types=MAIL_EVENTS)
    finally:
        org.close()
    send(server, sender, recipient.address, count=30)
    rx.wait_for(1)
    # A clean stop and a start on the same data (and database).
    server.loop.run(server.app.stop())
    before = len(rx.deliveries)
    server.app = App(server.settings)
    server.loop.run(server.app.start())
    send(server, sender, recipient.address, count=10)

    expected = set(event_ids(server, sender.address, MAIL_EVENTS)) | set(
        event_ids(server, recipient.address, MAIL_EVENTS)
    )
    assert len(expected) == 120
    got = rx.wait_until(lambda d: {x.svix_id for x in d} >= expected, what="every event")
    assert 0 < before < len(expected), "the restart was not in the middle of the burst"
    counts = Counter(d.svix_id for d in got)
    assert set(counts) == expected
    assert [i for i, n in counts.items() if n != 1] == []
