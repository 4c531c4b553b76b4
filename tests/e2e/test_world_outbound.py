"""Mail to the world: one mailgate server, a real DNS zone on loopback, and real SMTP peers as
the remote MX hosts (or a smarthost). Each test shows what a user would see: what reached the
remote, what `mailgate queue list` says meanwhile, and the bounce in the sender's INBOX."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import re
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest

from mailgate.provision import rotate_dkim
from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.process import run
from tests.e2e.world import (
    REMOTE,
    attempted,
    cli_config,
    drained,
    eventually,
    free_port,
    outbound_settings,
    point_mx,
    publish_domain,
    queue_of,
    world,
    zone_txt,
)
from tests.harness import DOMAIN, Account, Server
from tests.smtp.helpers import read_mailbox
from tests.smtppeer import SMTPPeer, Transaction, refusing_port, silent_port

BOB = f"bob@{REMOTE}"
CAROL = f"carol@{REMOTE}"
DAVE = f"dave@{REMOTE}"


Sender = tuple[Server, Account]


@pytest.fixture
def sender_for(make_server: Callable[..., Server], zone: ZoneServer) -> Callable[..., Sender]:
    """A server that finds REMOTE's MX (127.0.0.1 unless the test says otherwise) in the zone
    and delivers on `mx_port`, with an inbox to send from and its domain published."""

    def make(mx_port: int, *, mx: bool = True, **outbound: Any) -> Sender:
        if mx:
            point_mx(zone)
        server = make_server(**outbound_settings(zone, mx_port, **outbound))
        account = server.account()
        publish_domain(zone, server, DOMAIN)
        return server, account

    return make


def send(
    server: Server, account: Account, to: list[str], subject: str = "Hello", **kw: Any
) -> bytes:
    message = make_message(account.address, to, subject, **kw)
    with server.smtp_client(account) as smtp:
        smtp.sendmail(account.address, to, message)
    return message


def dkim_verifies(data: bytes, index: int, dnsfunc: Callable[..., bytes | None]) -> bool:
    """dkimpy's verdict on the `index`-th DKIM-Signature, keys fetched from the zone."""
    try:
        return bool(dkimpy.DKIM(data).verify(idx=index, dnsfunc=dnsfunc))
    except dkimpy.DKIMException:
        return False


def subject_of(t: Transaction) -> str:
    return str(t.message()["Subject"])


# -------------------------------------------------------------------- what a bounce looks like


def bounces(server: Server, account: Account, count: int = 1) -> list[email.message.Message]:
    """The DSNs in the sender's INBOX, once there are `count` (bounded wait)."""

    def found() -> list[email.message.Message] | None:
        stored = read_mailbox(server, account)
        return [parse(s.raw) for s in stored] if len(stored) >= count else None

    return eventually(found, 20, f"{count} bounce(s) in {account.address}'s INBOX")


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


def delivery_status(dsn: email.message.Message) -> list[dict[str, str]]:
    """RFC 3464 fields: the per-message block, then one block per recipient."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["From"].addresses[0].username == "MAILER-DAEMON"
    parts = dsn.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    blocks = parts[1].get_payload()
    return [{k.lower(): re.sub(r"\s+", " ", str(v)) for k, v in b.items()} for b in blocks]


def original_headers(dsn: email.message.Message) -> str:
    part = dsn.get_payload()[2]
    return part.get_payload(decode=True).decode()


def failed_recipients(dsn: email.message.Message) -> dict[str, dict[str, str]]:
    blocks = delivery_status(dsn)
    assert "reporting-mta" in blocks[0]
    recipients = {}
    for block in blocks[1:]:
        assert block["action"] == "failed"
        recipients[block["final-recipient"].removeprefix("rfc822; ")] = block
    return recipients


# -------------------------------------------------------------------- `mailgate queue list`


def queue_list(server: Server, tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    """What `mailgate queue list --json` and `mailgate queue list` print for this server."""
    config = cli_config(server, tmp_path)
    as_json = run("queue", "list", "--json", "--config", str(config), cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    text = run("queue", "list", "--config", str(config), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    return json.loads(as_json.stdout), text.stdout


# -------------------------------------------------------------------- temporary failures


@pytest.mark.parametrize(
    ("where", "reply"),
    [("rcpt", "450 4.2.1 Mailbox busy, try later"), ("data", "451 4.3.0 Queue full")],
)
def test_4xx_then_250_delivers_exactly_once_after_a_retry(
    sender_for: Callable[..., Sender],
    peer: SMTPPeer,
    tmp_path: Path,
    where: str,
    reply: str,
) -> None:
    (peer.rcpt_replies if where == "rcpt" else peer.data_replies).append(reply)
    # An hour between tries: the queue is looked at before the retry, which the test triggers.
    server, alice = sender_for(peer.port, retry_intervals=(3600,))
    send(server, alice, [BOB], "Try again")

    (row,) = attempted(server)
    listed, text = queue_list(server, tmp_path)
    assert [(r["id"], r["recipient"], r["mail_from"]) for r in listed] == [
        (row.id, BOB, alice.address)
    ]
    assert listed[0]["attempts"] == 1
    assert reply in listed[0]["last_reply"]
    assert "mx.remote.test" in listed[0]["last_reply"]
    assert listed[0]["next_attempt_at"] > listed[0]["created_at"]
    assert listed[0]["lease_owner"] is None
    assert BOB in text
    assert "attempts 1" in text
    assert reply in text
    assert peer.messages == []

    assert server.retry_outbound() == 1
    (delivered,) = peer.wait_for(1)
    assert delivered.rcpt_tos == (BOB,)
    assert subject_of(delivered) == "Try again"
    drained(server)
    assert len(peer.messages) == 1  # exactly once
    assert len(peer.refused) == (1 if where == "data" else 0)
    assert read_mailbox(server, alice) == []  # no bounce


def test_retries_follow_the_schedule_without_help(
    sender_for: Callable[..., Sender], peer: SMTPPeer
) -> None:
    # Nobody pokes the worker: the 1 s interval alone brings the second try.
    peer.data_replies.append("421 4.3.2 Shutting down")
    server, alice = sender_for(peer.port, retry_intervals=(1,))
    send(server, alice, [BOB])
    (delivered,) = peer.wait_for(1, timeout=20)
    assert delivered.rcpt_tos == (BOB,)
    drained(server)
    assert len(peer.messages) == 1


# -------------------------------------------------------------------- permanent failures


def test_5xx_at_rcpt_bounces_to_the_senders_inbox(
    sender_for: Callable[..., Sender], peer: SMTPPeer
) -> None:
    peer.rcpt_by_address[BOB] = "550 5.1.1 <bob@remote.test>: no such user here"
    server, alice = sender_for(peer.port)
    send(server, alice, [BOB], "Are you there?")

    (dsn,) = bounces(server, alice)
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["To"] == alice.address
    assert dsn["Auto-Submitted"] == "auto-replied"
    (block,) = failed_recipients(dsn).values()
    assert block["final-recipient"] == f"rfc822; {BOB}"
    assert block["status"] == "5.1.1"
    assert block["remote-mta"] == "dns; mx.remote.test"
    assert "550 5.1.1 <bob@remote.test>: no such user here" in block["diagnostic-code"]
    assert block["diagnostic-code"].startswith("smtp;")
    assert "Subject: Are you there?" in original_headers(dsn)
    # Gone from the queue; nothing reached the remote, and no bounce was sent anywhere.
    assert queue_of(server) == []
    assert peer.messages == []
    assert peer.refused == []
    # The sent message says so too, in the same commit as the bounce.
    (sent,) = read_mailbox(server, alice, "Sent", with_bodies=False)
    assert "$Bounced" in sent.flags


def test_5xx_at_data_bounces_with_the_remotes_words(
    sender_for: Callable[..., Sender], peer: SMTPPeer
) -> None:
    peer.data_replies.append("554 5.7.1 Message rejected as spam")
    server, alice = sender_for(peer.port)
    send(server, alice, [BOB, CAROL])
    (dsn,) = bounces(server, alice)
    failed = failed_recipients(dsn)
    assert set(failed) == {BOB, CAROL}
    for block in failed.values():
        assert block["status"] == "5.7.1"
        assert "554 5.7.1 Message rejected as spam" in block["diagnostic-code"]
    assert queue_of(server) == []
    assert len(peer.refused) == 1
    assert peer.messages == []


def test_several_failed_recipients_get_one_bounce_and_the_rest_their_mail(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    peer.rcpt_by_address[BOB] = "550 5.1.1 No such user"
    peer.rcpt_by_address[CAROL] = "552 5.2.2 Mailbox full"
    zone.set("nomail.test", "MX", ["0 ."])  # another destination, failing its own way
    server, alice = sender_for(peer.port)
    send(server, alice, [BOB, CAROL, DAVE, "eve@nomail.test"])
    (dsn,) = bounces(server, alice)
    failed = failed_recipients(dsn)
    assert {r: b["status"] for r, b in failed.items()} == {
        BOB: "5.1.1",
        CAROL: "5.2.2",
        "eve@nomail.test": "5.1.10",
    }
    (delivered,) = peer.wait_for(1)
    assert delivered.rcpt_tos == (DAVE,)
    drained(server)
    assert len(read_mailbox(server, alice)) == 1  # one bounce, not one per recipient


def test_no_bounce_when_the_sending_inbox_is_gone(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    peer.rcpt_by_address[BOB] = "550 5.1.1 No such user"
    server, alice = sender_for(peer.port, retry_intervals=(3600,))
    zone.answering = False
    send(server, alice, [BOB])
    attempted(server)
    server.call(server.store.delete_inbox(alice.address))
    (row,) = queue_of(server)
    assert row.inbox_id is None  # still queued: it was acknowledged
    zone.answering = True
    server.retry_outbound()
    drained(server)  # refused, and nobody to tell: no bounce goes anywhere
    assert peer.messages == []
    assert peer.refused == []


def test_mixed_hosted_and_remote_recipients(
    sender_for: Callable[..., Sender], peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port)
    local = server.account()
    name, _, domain = local.address.partition("@")
    tagged = f"{name}+orders@{domain}"  # plus-addressing, as on the MX
    send(server, alice, [tagged, BOB, local.address])
    (delivered,) = peer.wait_for(1)
    assert delivered.rcpt_tos == (BOB,)  # the hosted one is not sent out
    drained(server)
    assert len(read_mailbox(server, local)) == 1
    assert len(read_mailbox(server, alice, "Sent")) == 1
    # An unknown address at a hosted domain is refused, not queued for the world.
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(server, alice, [f"nobody+x@{domain}"])
    assert refused.value.recipients[f"nobody+x@{domain}"][0] == 550


def test_bcc_recipients_get_the_mail_without_the_bcc_header(
    sender_for: Callable[..., Sender], peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port)
    send(server, alice, [BOB, CAROL], extra={"To": BOB, "Bcc": CAROL})
    (delivered,) = peer.wait_for(1)
    assert sorted(delivered.rcpt_tos) == [BOB, CAROL]
    assert b"\r\nBcc:" not in delivered.data.split(b"\r\n\r\n")[0]
    assert "Bcc: " + CAROL in read_mailbox(server, alice, "Sent")[0].raw.decode()


# -------------------------------------------------------------------- unreachable hosts


@pytest.mark.parametrize("kind", ["refusing", "silent"])
def test_unreachable_mx_is_retried_then_bounced_at_max_queue_age(
    sender_for: Callable[..., Sender], tmp_path: Path, kind: str
) -> None:
    port_of = refusing_port if kind == "refusing" else silent_port
    with port_of() as port:
        # The second attempt comes 1 s after the first; the queue age leaves it room on a
        # loaded machine, where the worker may take a few seconds to come round.
        server, alice = sender_for(port, retry_intervals=(1,), max_queue_age=10, timeout=1.0)
        send(server, alice, [BOB], "Nobody home")
        (row,) = attempted(server, times=2)  # tried again, not bounced at once
        expected = "connection refused" if kind == "refusing" else "timed out"
        assert expected in row.last_reply
        assert "mx.remote.test" in row.last_reply
        (dsn,) = bounces(server, alice)
    (block,) = failed_recipients(dsn).values()
    assert block["status"] == "4.4.7"
    assert expected in block["diagnostic-code"]
    assert queue_of(server) == []


def test_dns_timeout_is_retried_not_bounced(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port, retry_intervals=(3600,))
    zone.answering = False
    send(server, alice, [BOB])
    (row,) = attempted(server)
    assert "DNS" in row.last_reply
    zone.answering = True
    server.retry_outbound()
    peer.wait_for(1)
    drained(server)
    assert read_mailbox(server, alice) == []


# -------------------------------------------------------------------- finding the MX


@pytest.fixture
def two_hosts() -> tuple[str, str, int]:
    return "127.0.0.2", "127.0.0.3", free_port("127.0.0.2", "127.0.0.3")


def test_mx_hosts_are_tried_by_preference(
    sender_for: Callable[..., Sender], zone: ZoneServer, two_hosts: tuple[str, str, int]
) -> None:
    first_ip, second_ip, port = two_hosts
    with SMTPPeer(host=first_ip, port=port) as first, SMTPPeer(host=second_ip, port=port) as second:
        # Listed in the zone with the less preferred one first.
        point_mx(
            zone, REMOTE, (20, "mx2.remote.test", second_ip), (10, "mx1.remote.test", first_ip)
        )
        server, alice = sender_for(port, mx=False)
        send(server, alice, [BOB])
        first.wait_for(1)
        drained(server)
        assert second.connections == 0


def test_next_mx_on_connection_failure(
    sender_for: Callable[..., Sender], zone: ZoneServer, two_hosts: tuple[str, str, int]
) -> None:
    down_ip, up_ip, port = two_hosts
    with SMTPPeer(host=up_ip, port=port) as backup:
        point_mx(zone, REMOTE, (10, "mx1.remote.test", down_ip), (20, "mx2.remote.test", up_ip))
        server, alice = sender_for(port, mx=False, retry_intervals=(3600,))
        send(server, alice, [BOB])
        (delivered,) = backup.wait_for(1)  # in the first attempt: no retry was due
        assert delivered.rcpt_tos == (BOB,)
        drained(server)


def test_implicit_mx_is_the_domains_own_address(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    zone.set(REMOTE, "A", ["127.0.0.1"])  # RFC 5321 §5.1: no MX, so the A record
    server, alice = sender_for(peer.port, mx=False)
    send(server, alice, [BOB])
    (delivered,) = peer.wait_for(1)
    assert delivered.rcpt_tos == (BOB,)
    drained(server)


def test_null_mx_bounces_at_once(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    zone.set(REMOTE, "MX", ["0 ."])  # RFC 7505
    zone.set(REMOTE, "A", ["127.0.0.1"])  # not to be used as an implicit MX
    server, alice = sender_for(peer.port, mx=False, retry_intervals=(3600,))
    send(server, alice, [BOB])
    (dsn,) = bounces(server, alice)
    (block,) = failed_recipients(dsn).values()
    assert block["status"] == "5.1.10"
    assert "null MX" in block["diagnostic-code"]
    assert queue_of(server) == []
    assert peer.connections == 0


def test_nonexistent_domain_bounces(sender_for: Callable[..., Sender], peer: SMTPPeer) -> None:
    server, alice = sender_for(peer.port, retry_intervals=(3600,))
    send(server, alice, ["someone@no-such-domain.test"])
    (dsn,) = bounces(server, alice)
    (block,) = failed_recipients(dsn).values()
    assert block["final-recipient"] == "rfc822; someone@no-such-domain.test"
    assert block["status"].startswith("5.")
    assert queue_of(server) == []


# -------------------------------------------------------------------- the connection


def test_one_connection_per_host_for_all_its_recipients(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port, retry_intervals=(3600,))
    # The DNS is down while three messages are queued; then they are all due at once.
    zone.answering = False
    send(server, alice, [BOB, CAROL, DAVE], "first")
    send(server, alice, [BOB], "second")
    send(server, alice, [CAROL, DAVE], "third")
    assert len(attempted(server)) == 6
    zone.answering = True
    server.retry_outbound()
    delivered = peer.wait_for(3)
    drained(server)
    assert peer.connections == 1
    assert {t.connection for t in delivered} == {1}
    by_subject = {subject_of(t): sorted(t.rcpt_tos) for t in delivered}
    assert by_subject == {"first": [BOB, CAROL, DAVE], "second": [BOB], "third": [CAROL, DAVE]}
    assert {t.mail_from for t in delivered} == {alice.address}
    assert {t.helo for t in delivered} == {server.settings.server.hostname}


def test_size_and_8bit_body_are_declared(sender_for: Callable[..., Sender], peer: SMTPPeer) -> None:
    server, alice = sender_for(peer.port)
    send(server, alice, [BOB], "ascii")
    send(server, alice, [BOB], "eight bit", body="Grüße aus Köln.\r\n")
    delivered = {subject_of(t): t for t in peer.wait_for(2)}
    for t in delivered.values():
        (size,) = [o for o in t.mail_options if o.startswith("SIZE=")]
        assert int(size.removeprefix("SIZE=")) == len(t.data)
    assert "BODY=8BITMIME" not in delivered["ascii"].mail_options
    assert "BODY=8BITMIME" in delivered["eight bit"].mail_options
    assert "Grüße aus Köln.".encode() in delivered["eight bit"].data


def test_a_remote_too_small_for_the_message_bounces_it(
    sender_for: Callable[..., Sender], peer: SMTPPeer
) -> None:
    peer.mail_replies.append("552 5.3.4 Message size exceeds fixed limit")
    server, alice = sender_for(peer.port)
    send(server, alice, [BOB])
    (dsn,) = bounces(server, alice)
    (block,) = failed_recipients(dsn).values()
    assert block["status"] == "5.3.4"
    assert queue_of(server) == []


@pytest.mark.parametrize("offered", [True, False])
def test_starttls_whenever_the_remote_offers_it(
    sender_for: Callable[..., Sender], offered: bool
) -> None:
    with SMTPPeer(tls="starttls" if offered else "none") as remote:
        server, alice = sender_for(remote.port)
        send(server, alice, [BOB])
        (delivered,) = remote.wait_for(1)
        assert delivered.tls is offered


# -------------------------------------------------------------------- the smarthost


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_smarthost_with_auth_receives_everything(
    sender_for: Callable[..., Sender], tmp_path: Path, mode: str
) -> None:
    with SMTPPeer(tls=mode, auth=("relay-user", "s3cret"), cert_dir=tmp_path) as relay:
        server, alice = sender_for(
            1,  # no MX is ever used
            mx=False,
            smarthost=f"127.0.0.1:{relay.port}",
            smarthost_tls=mode,
            smarthost_username="relay-user",
            smarthost_password="s3cret",
            smarthost_ca_file=str(tmp_path / "peer.crt"),
        )
        # Domains with no DNS at all: the relay finds them, not us.
        send(server, alice, [BOB, "someone@elsewhere.test"])
        send(server, alice, ["other@third.test"])
        delivered = relay.wait_for(2)
        drained(server)
        assert sorted(r for t in delivered for r in t.rcpt_tos) == sorted(
            [BOB, "someone@elsewhere.test", "other@third.test"]
        )
        assert {(t.tls, t.auth_user) for t in delivered} == {(True, "relay-user")}
        assert read_mailbox(server, alice) == []


def test_wrong_smarthost_password_defers(sender_for: Callable[..., Sender], tmp_path: Path) -> None:
    with SMTPPeer(tls="starttls", auth=("relay-user", "s3cret"), cert_dir=tmp_path) as relay:
        server, alice = sender_for(
            1,
            mx=False,
            smarthost=f"127.0.0.1:{relay.port}",
            smarthost_username="relay-user",
            smarthost_password="wrong",
            smarthost_ca_file=str(tmp_path / "peer.crt"),
            retry_intervals=(3600,),
        )
        send(server, alice, [BOB])
        (row,) = attempted(server)
        assert "535" in row.last_reply
        assert relay.messages == []
        assert read_mailbox(server, alice) == []  # deferred, not bounced


def test_smarthost_certificate_must_name_the_smarthost(
    sender_for: Callable[..., Sender], tmp_path: Path
) -> None:
    # The certificate is signed by the trusted CA (itself) but names 127.0.0.1 and localhost,
    # not 127.0.0.2: the password must not be handed over.
    port = free_port("127.0.0.2")
    with SMTPPeer(
        host="127.0.0.2", port=port, tls="implicit", auth=("u", "p"), cert_dir=tmp_path
    ) as relay:
        server, alice = sender_for(
            1,
            mx=False,
            smarthost=f"127.0.0.2:{port}",
            smarthost_tls="implicit",
            smarthost_username="u",
            smarthost_password="p",
            smarthost_ca_file=str(tmp_path / "peer.crt"),
            retry_intervals=(3600,),
        )
        send(server, alice, [BOB])
        (row,) = attempted(server)
        assert "certificate" in row.last_reply.lower()
        assert relay.messages == []


# -------------------------------------------------------------------- what is sent


def test_sent_mail_carries_two_dkim_signatures_that_verify(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port)
    long_line = "x" * 2500
    mime = {"MIME-Version": "1.0", "Content-Type": "text/plain; charset=us-ascii"}
    send(server, alice, [BOB], "Signed", body=f"Hello.\r\n{long_line}\r\nBye.\r\n", extra=mime)
    (delivered,) = peer.wait_for(1)
    data = delivered.data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    # Folded, not cut: the text is all there.
    assert long_line.encode() in data.replace(b"\r\n ", b"")

    signatures = delivered.message().get_all("DKIM-Signature")
    algorithms = sorted(re.search(r"a=([\w-]+)", s).group(1) for s in signatures)
    assert algorithms == ["ed25519-sha256", "rsa-sha256"]
    for signature in signatures:
        assert f"d={DOMAIN}" in signature
        assert "c=relaxed/relaxed" in signature
        signed = re.search(r"h=([^;]+)", signature).group(1).replace(" ", "").lower().split(":")
        for name in ("to", "subject", "date", "message-id", "mime-version", "content-type"):
            assert name in signed, (name, signed)
        assert signed.count("from") == 2  # over-signed: no From can be added after signing
    txt = zone_txt(zone)
    assert dkim_verifies(data, 0, txt)
    assert dkim_verifies(data, 1, txt)
    tampered = data.replace(b"Bye.", b"Bye!")
    assert not dkim_verifies(tampered, 0, txt)
    assert not dkim_verifies(tampered, 1, txt)


def test_rotated_keys_sign_and_the_old_ones_stay_published(
    sender_for: Callable[..., Sender], zone: ZoneServer, peer: SMTPPeer
) -> None:
    server, alice = sender_for(peer.port)
    before = server.call(server.store.get_domain(DOMAIN))
    rotated = server.call(rotate_dkim(server.store, DOMAIN))
    publish_domain(zone, server, DOMAIN)
    new = {k.selector for k in rotated.signing_keys}
    old = {k.selector for k in before.keys}
    assert len(new) == 2
    assert not new & old
    assert {k.selector for k in rotated.keys} == new | old
    send(server, alice, [BOB])
    (delivered,) = peer.wait_for(1)
    signatures = delivered.message().get_all("DKIM-Signature")
    assert {re.search(r"s=([\w.-]+)", s).group(1) for s in signatures} == new
    txt = zone_txt(zone)
    assert dkim_verifies(delivered.data, 0, txt)
    assert dkim_verifies(delivered.data, 1, txt)
    for selector in old:  # still published for mail signed before the rotation
        assert txt(f"{selector}._domainkey.{DOMAIN}.".encode())


# -------------------------------------------------------------------- two mailgate servers


def test_unknown_recipient_at_the_other_mailgate_bounces_back(backend: str, tmp_path: Path) -> None:
    with world(tmp_path, backend) as two:
        alice = two.account(two.a, "alice")
        bob = two.account(two.b, "bob")
        to = [bob.address, "nobody@b.test"]
        send(two.a, alice, to, "To B")
        (dsn,) = bounces(two.a, alice)
        (block,) = failed_recipients(dsn).values()
        assert block["final-recipient"] == "rfc822; nobody@b.test"
        assert block["status"] == "5.1.1"
        assert block["remote-mta"] == "dns; mx.b.test"
        (stored,) = read_mailbox(two.b, bob)
        assert stored.header("Subject") == ["To B"]
        drained(two.a)
