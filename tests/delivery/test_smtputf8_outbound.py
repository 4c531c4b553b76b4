"""SMTPUTF8 on the way out (RFC 6531 §3.2): mail that needs it is relayed to the recipient's MX
with SMTPUTF8 when the MX offers it, IDN domains are looked up by their A-labels, and an MX
that does not offer it gets nothing: the message bounces at once with 5.6.7 (it is never
downgraded), in an RFC 6533 report. The MX is a real SMTP peer on loopback, found through a
real DNS server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.test_world_outbound import dkim_verifies
from tests.e2e.world import (
    drained,
    eventually,
    outbound_settings,
    point_mx,
    publish_domain,
    queue_of,
    zone_txt,
)
from tests.harness import DOMAIN, Account, Server
from tests.smtp.helpers import read_mailbox
from tests.smtppeer import SMTPPeer

IDN = "例え.jp"
IDN_ASCII = "xn--r8jz45g.jp"
UTF8_RECIPIENT = f"δοκιμή@{IDN}"
QUEUED_RECIPIENT = f"δοκιμή@{IDN_ASCII}"  # as the queue keeps it, and RCPT TO names it
IDN_MX = "mx.xn--r8jz45g.jp"

Sender = tuple[Server, Account]


@pytest.fixture
def sender_for(make_server: Callable[..., Server], zone: ZoneServer) -> Callable[..., Sender]:
    """A server whose MX lookups for the IDN domain (by its A-labels) find `port` on
    loopback, with an inbox to send from and its domain's DKIM keys published."""

    def make(port: int, **outbound: Any) -> Sender:
        point_mx(zone, IDN_ASCII, (10, IDN_MX, "127.0.0.1"))
        server = make_server(**outbound_settings(zone, port, **outbound))
        account = server.account()
        publish_domain(zone, server, DOMAIN)
        return server, account

    return make


def submit(server: Server, account: Account, to: str, subject: str) -> bytes:
    message = make_message(
        f"Jörg <{account.address}>", f"Δοκιμή <{to}>", subject, body="Grüße.\r\n"
    )
    with server.smtp_client(account) as smtp:
        assert smtp.sendmail(account.address, [to], message, mail_options=["SMTPUTF8"]) == {}
    return message


def test_relayed_with_smtputf8_to_an_mx_that_offers_it(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port)
    message = submit(server, alice, UTF8_RECIPIENT, "Grüße aus 例え")
    (delivered,) = peer.wait_for(1)
    assert "SMTPUTF8" in delivered.mail_options
    assert delivered.mail_from == alice.address
    assert delivered.rcpt_tos == (QUEUED_RECIPIENT,)
    head = delivered.data.split(b"\r\n\r\n", 1)[0]
    for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        assert line in head.split(b"\r\n"), line  # every header line as it was sent
    # Both signatures (RSA and Ed25519) over the UTF-8 header fields verify.
    txt = zone_txt(zone)
    assert dkim_verifies(delivered.data, 0, txt)
    assert dkim_verifies(delivered.data, 1, txt)
    drained(server)
    assert read_mailbox(server, alice) == []  # no bounce


def test_no_smtputf8_at_the_mx_bounces_with_5_6_7_once(
    sender_for: Callable[..., Sender], zone: ZoneServer
) -> None:
    with SMTPPeer(smtputf8=False) as peer:
        server, alice = sender_for(peer.port)
        submit(server, alice, UTF8_RECIPIENT, "Grüße")
        [dsn] = eventually(lambda: read_mailbox(server, alice), 20, "the bounce")
        # Off the queue at once: not retried.
        drained(server)
        assert server.retry_outbound() == 0
        assert peer.messages == []
        assert peer.refused == []
        assert peer.connections == 1
    raw = dsn.raw
    assert b"multipart/report; report-type=delivery-status" in raw
    # RFC 6533: the report of an internationalized message is internationalized too.
    assert b"Content-Type: message/global-delivery-status" in raw
    assert b"Content-Type: message/global-headers" in raw
    assert f"Final-Recipient: utf-8; {QUEUED_RECIPIENT}".encode() in raw
    assert b"Status: 5.6.7" in raw
    assert b"Remote-MTA: dns; mx.xn--r8jz45g.jp" in raw
    assert b"does not offer SMTPUTF8" in raw
    assert "Subject: Grüße".encode() in raw  # the original header, as it was


def test_an_ascii_recipient_at_an_idn_needs_no_smtputf8(
    sender_for: Callable[..., Sender],
) -> None:
    """A message with ASCII header fields to an ASCII local part at an IDN goes to an MX
    without SMTPUTF8, the domain as A-labels; UTF-8 header fields submitted with SMTPUTF8
    to the same MX bounce."""
    with SMTPPeer(smtputf8=False) as peer:
        server, alice = sender_for(peer.port)
        plain = make_message(alice.address, f"bob@{IDN_ASCII}", "ASCII")
        with server.smtp_client(alice) as smtp:
            assert smtp.sendmail(alice.address, [f"bob@{IDN}"], plain, ["SMTPUTF8"]) == {}
        (delivered,) = peer.wait_for(1)
        assert delivered.rcpt_tos == (f"bob@{IDN_ASCII}",)
        assert "SMTPUTF8" not in delivered.mail_options
        assert delivered.data.endswith(plain)
        submit(server, alice, f"bob@{IDN}", "Grüße")
        [dsn] = eventually(lambda: read_mailbox(server, alice), 20, "the bounce")
        assert b"Status: 5.6.7" in dsn.raw
        assert f"Final-Recipient: rfc822; bob@{IDN_ASCII}".encode() in dsn.raw
        assert queue_of(server) == []
        assert len(peer.messages) == 1
