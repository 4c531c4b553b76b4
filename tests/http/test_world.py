"""Sending over the HTTP API to another server: queued in the same commit as the Sent copy,
DKIM-signed and delivered by the outbound worker to a real SMTP peer on loopback, found through
the MX records of a real DNS server on loopback (as SMTP submission's mail is)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.dnsserver import ZoneServer
from tests.e2e.world import REMOTE, outbound_settings, point_mx, publish_domain
from tests.harness import DOMAIN, Server
from tests.http.sdk import Api
from tests.smtp.helpers import read_mailbox
from tests.smtppeer import SMTPPeer


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as dns:
        yield dns


@pytest.fixture
def peer() -> Iterator[SMTPPeer]:
    with SMTPPeer() as started:
        yield started


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
