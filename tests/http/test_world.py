"""Sending over the HTTP API to another server: queued in the same commit as the Sent copy,
DKIM-signed and delivered by the outbound worker to a real SMTP peer on loopback, found through
the MX records of a real DNS server on loopback (as SMTP submission's mail is)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from agentmail import ValidationError
from agentmail.events.types.message_bounced_event import MessageBouncedEvent
from agentmail.events.types.message_delivered_event import MessageDeliveredEvent
from agentmail.events.types.message_sent_event import MessageSentEvent
from websockets.sync.client import connect

from tests.dnsserver import ZoneServer
from tests.e2e.world import REMOTE, eventually, outbound_settings, point_mx, publish_domain
from tests.harness import DOMAIN, Server
from tests.http.sdk import Api
from tests.smtp.helpers import read_mailbox
from tests.smtppeer import SMTPPeer


def test_a_send_to_the_world_is_signed_and_delivered(
    make_server: Callable[..., Server], zone: ZoneServer, peer: SMTPPeer
) -> None:
    point_mx(zone)
    server = make_server(**outbound_settings(zone, peer.port))
    account = server.account()
    publish_domain(zone, server, DOMAIN)
    api = Api(server, account.key)
    try:
        sent = api.client.inboxes.messages.send(
            account.address,
            to=[f"bob@{REMOTE}", "Carol <carol@" + REMOTE + ">"],
            subject="Hello world",
            text="From the API.",
        )
    finally:
        api.close()
    (delivered,) = peer.wait_for(1)
    assert sorted(delivered.rcpt_tos) == [f"bob@{REMOTE}", f"carol@{REMOTE}"]
    assert delivered.mail_from == account.address
    assert f"Message-ID: {sent.message_id}".encode() in delivered.data
    assert b"DKIM-Signature:" in delivered.data
    assert b"From the API." in delivered.data
    (copy,) = read_mailbox(server, account, "Sent")
    assert copy.header("Message-ID") == [sent.message_id]


def test_a_send_refused_for_good_is_labelled_bounced(
    make_server: Callable[..., Server], zone: ZoneServer, peer: SMTPPeer
) -> None:
    point_mx(zone)
    peer.rcpt_by_address[f"bob@{REMOTE}"] = "550 5.1.1 no such user"
    server = make_server(**outbound_settings(zone, peer.port))
    account = server.account()
    publish_domain(zone, server, DOMAIN)
    api = Api(server, account.key)
    messages = api.client.inboxes.messages
    try:
        # With a Bcc the Sent copy is a message of its own; it is marked all the same.
        sent = messages.send(
            account.address, to=[f"bob@{REMOTE}"], bcc=[f"carol@{REMOTE}"], text="Anyone?"
        )
        eventually(
            lambda: "bounced" in messages.get(account.address, sent.message_id).labels or None,
            what="the bounced label",
        )
        (copy,) = read_mailbox(server, account, "Sent", with_bodies=False)
        assert "$Bounced" in copy.flags
        bounced = messages.list(account.address, labels=["bounced"]).messages
        assert [m.message_id for m in bounced] == [sent.message_id]
        # A system label: it follows what delivery did, not what a client says.
        for change in ({"add_labels": ["bounced"]}, {"remove_labels": ["Bounced"]}):
            with pytest.raises(ValidationError):
                messages.update(account.address, sent.message_id, **change)
    finally:
        api.close()


def test_the_sender_is_told_of_each_recipients_fate(
    make_server: Callable[..., Server], zone: ZoneServer, peer: SMTPPeer
) -> None:
    point_mx(zone)
    peer.rcpt_by_address[f"bob@{REMOTE}"] = "550 5.1.1 no such user"
    server = make_server(**outbound_settings(zone, peer.port))
    account = server.account()
    publish_domain(zone, server, DOMAIN)
    url = server.api_url.replace("http", "ws", 1) + "/v0"
    api = Api(server, account.key)
    try:
        with connect(url, additional_headers={"Authorization": f"Bearer {account.key}"}) as ws:
            ws.send(json.dumps({"type": "subscribe"}))
            assert json.loads(ws.recv(10))["type"] == "subscribed"
            sent = api.client.inboxes.messages.send(
                account.address, to=[f"bob@{REMOTE}", f"carol@{REMOTE}"], text="Anyone?"
            )
            got: dict[str, dict[str, Any]] = {}
            while len(got) < 3:
                event = json.loads(ws.recv(20))
                got[event["event_type"]] = event
    finally:
        api.close()
    assert set(got) == {"message.sent", "message.delivered", "message.bounced"}
    told = MessageSentEvent.model_validate(got["message.sent"]).send
    assert sorted(told.recipients) == [f"bob@{REMOTE}", f"carol@{REMOTE}"]
    delivered = MessageDeliveredEvent.model_validate(got["message.delivered"]).delivery
    assert delivered.recipients == [f"carol@{REMOTE}"]
    bounce = MessageBouncedEvent.model_validate(got["message.bounced"]).bounce
    assert (bounce.type, bounce.sub_type) == ("Permanent", "NoEmail")
    assert [(r.address, r.status) for r in bounce.recipients] == [(f"bob@{REMOTE}", "5.1.1")]
    for outcome in (told, delivered, bounce):
        assert outcome.inbox_id == account.address
        assert outcome.message_id == sent.message_id
        assert outcome.thread_id == sent.thread_id
