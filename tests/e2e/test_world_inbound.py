"""Mail from the world into B's MX, end to end: A's DKIM signatures checked by dkimpy itself,
forged and tampered mail, allow and block lists, a DNS outage, and the local path.

A (a.test, 127.0.0.2) and B (b.test, 127.0.0.3) resolve through one DNS server on loopback
(tests/e2e/world.py). A forger connects to B's MX straight from 127.0.0.9, which no SPF record
authorizes; A's own deliveries come from 127.0.0.1, which a.test's SPF record does.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dkim
import dns.nameserver
import dns.resolver
import pytest

from mailgate.delivery.domains import default_dmarc
from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.world import SENDING_IP, World, world
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, Stored
from tests.smtp.helpers import read_mailbox as mailbox

FORGER_IP = "127.0.0.9"
B_HOST = "mx.b.test"


@pytest.fixture(scope="module")
def shared(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp(f"world-inbound-{backend}"), backend) as w:
        yield w


@pytest.fixture
def w(shared: World) -> Iterator[World]:
    """The shared world, with the zone as `mailgate domain dns` prints it after each test."""
    yield shared
    shared.dns.answering = True
    shared.publish(shared.a, "a.test")
    shared.publish(shared.b, "b.test")


def account(w: World, server: Server, name: str, pod: str = "default") -> Account:
    domain = "a.test" if server is w.a else "b.test"
    return server.account(f"{name}-{uuid.uuid4().hex[:8]}@{domain}", pod=pod)


# ------------------------------------------------------------------------------ helpers


def wait_for(
    server: Server, who: Account, count: int, name: str = "INBOX", timeout: float = 20
) -> list[Stored]:
    """The mailbox once it holds `count` messages (a bounded wait for A's delivery worker)."""
    deadline = time.monotonic() + timeout
    while True:
        found = mailbox(server, who, name)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{name} of {who.address} has {len(found)}"
        time.sleep(0.05)  # between polls of a bounded wait


def nothing_for(server: Server, who: Account) -> bool:
    return mailbox(server, who) == [] and mailbox(server, who, "Spam") == []


def results(stored: Stored, host: str = B_HOST) -> str:
    """The one Authentication-Results field naming `host`, whitespace collapsed."""
    found = [v for v in stored.header("Authentication-Results") if v.startswith(host + ";")]
    assert len(found) == 1, stored.header("Authentication-Results")
    return re.sub(r"\s+", " ", found[0])


def says(verdict: str, *results: str) -> None:
    missing = [r for r in results if r not in verdict]
    assert not missing, f"{missing} not in {verdict!r}"


def dkim_results(text: str) -> list[str]:
    return re.findall(r"dkim=(\w+)", text)


def to_b(w: World, *, source: str = FORGER_IP, helo: str = "relay.elsewhere.test") -> SMTPSession:
    """A raw SMTP session with B's MX, from `source`, after EHLO."""
    sock = socket.create_connection((w.b.host, w.mx_port), timeout=30, source_address=(source, 0))
    session = SMTPSession(sock)
    assert session.greeting.line.startswith(f"220 {B_HOST}"), session.greeting
    session.ehlo(helo)
    return session


def send_to_b(
    w: World, sender: str, recipient: str, data: bytes, *, source: str = FORGER_IP
) -> str:
    """MAIL, RCPT, DATA straight to B's MX; the reply to the final dot (its last line)."""
    with to_b(w, source=source) as s:
        reply = s.send_mail(sender, [recipient], data)
        assert reply.has_enhanced_code(), reply.text
        return reply.line


def signed_by_a(w: World) -> tuple[Account, Account, bytes]:
    """(alice on A, bob on B, the message exactly as A sent it): alice writes to bob through
    A's outbound queue, and bob's copy loses what B put on top."""
    alice, bob = account(w, w.a, "alice"), account(w, w.b, "bob")
    with w.a.smtp_client(alice) as smtp:
        smtp.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
    (stored,) = wait_for(w.b, bob, 1)
    return alice, bob, as_sent(stored.raw)


def as_sent(raw: bytes) -> bytes:
    """A message B received, without the Received and Authentication-Results B added."""
    header, blank, body = raw.partition(b"\r\n\r\n")
    fields = re.split(rb"\r\n(?![ \t])", header)
    assert fields[0].startswith(b"Received: ")
    assert f"by {B_HOST}".encode() in fields[0]
    assert fields[1].startswith(f"Authentication-Results: {B_HOST};".encode())
    return b"\r\n".join(fields[2:]) + blank + body


def tamper(message: bytes) -> bytes:
    """`message` with one byte of its body changed."""
    header, blank, body = message.partition(b"\r\n\r\n")
    assert body.startswith(b"Hello there.")
    return header + blank + b"J" + body[1:]


def zone_txt(zone: ZoneServer) -> Callable[..., bytes | None]:
    """dkimpy's `dnsfunc`: TXT records asked of the test's DNS server over real UDP/TCP."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(zone.host, zone.port)]

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        record: Any = answer[0]
        return b"".join(record.strings)

    return txt


# ------------------------------------------------------------------------------ A's signatures


def test_as_signatures_pass_dkimpys_own_verifier(w: World) -> None:
    _, bob, sent = signed_by_a(w)
    lookup = zone_txt(w.dns)
    verifier = dkim.DKIM(sent)
    signatures = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    tags = [dict(re.findall(rb"(\w+)=([^;]*)", re.sub(rb"\s+", b"", s))) for s in signatures]
    assert [t[b"a"] for t in tags] == [b"rsa-sha256", b"ed25519-sha256"]
    for index, signature in enumerate(tags):
        assert signature[b"d"] == b"a.test", signature
        assert signature[b"c"] == b"relaxed/relaxed", signature
        assert verifier.verify(idx=index, dnsfunc=lookup), f"signature {index} does not verify"
    assert dkim.verify(sent, dnsfunc=lookup)
    # The verifier can say no: one changed byte of the body fails both signatures.
    tampered = dkim.DKIM(tamper(sent))
    for index in (0, 1):
        with pytest.raises(dkim.ValidationError, match="body hash mismatch"):
            tampered.verify(idx=index, dnsfunc=lookup)
    # And B, verifying for itself, said the same as dkimpy.
    (stored,) = mailbox(w.b, bob)
    verdict = results(stored)
    assert dkim_results(verdict) == ["pass", "pass"], verdict
    says(verdict, "spf=pass", "dmarc=pass")


# ------------------------------------------------------------------------------ forged mail


def test_forged_mail_under_p_reject_is_refused_naming_dmarc(w: World) -> None:
    bob = account(w, w.b, "bob")
    w.set_dmarc("a.test", "reject")
    forged = make_message("ceo@a.test", bob.address, "Wire the money")
    reply = send_to_b(w, "ceo@a.test", bob.address, forged)
    assert reply.startswith("550 5.7.1"), reply
    assert "DMARC policy of a.test" in reply, reply
    assert nothing_for(w.b, bob)


def test_forged_mail_under_p_quarantine_lands_in_spam(w: World) -> None:
    bob = account(w, w.b, "bob")
    w.set_dmarc("a.test", "quarantine")
    forged = make_message("ceo@a.test", bob.address, "Wire the money")
    assert send_to_b(w, "ceo@a.test", bob.address, forged).startswith("250 2.0.0")
    assert mailbox(w.b, bob) == []
    (stored,) = mailbox(w.b, bob, "Spam")
    verdict = results(stored)
    assert "spf=fail smtp.mailfrom=a.test" in verdict, verdict
    assert "dkim=none" in verdict, verdict
    assert "dmarc=fail (p=quarantine) header.from=a.test" in verdict, verdict
    assert stored.header("Subject") == ["Wire the money"]


def test_a_tampered_body_fails_both_signatures(w: World) -> None:
    _, bob, sent = signed_by_a(w)
    # Relayed unchanged from a host SPF does not know (a forwarder): DKIM still vouches.
    assert send_to_b(w, "relay@a.test", bob.address, sent).startswith("250 2.0.0")
    forwarded = mailbox(w.b, bob)[-1]
    verdict = results(forwarded)
    assert dkim_results(verdict) == ["pass", "pass"], verdict
    says(verdict, "spf=fail", "dmarc=pass")
    # One byte of the body changed: both signatures fail, and so does DMARC.
    assert send_to_b(w, "relay@a.test", bob.address, tamper(sent)).startswith("250 2.0.0")
    (stored,) = mailbox(w.b, bob, "Spam")
    verdict = results(stored)
    assert dkim_results(verdict) == ["fail", "fail"], verdict
    assert verdict.count('reason="body hash mismatch"') == 2, verdict
    says(verdict, "header.a=rsa-sha256", "header.a=ed25519-sha256", "dmarc=fail")
    assert b"Jello there." in stored.raw
    assert len(mailbox(w.b, bob)) == 2  # the original and the forwarded copy only


def test_author_signature_outweighs_spf_fail_without_a_dmarc_record(w: World) -> None:
    _, bob, sent = signed_by_a(w)
    # No DMARC record: the name holds some other text. Deleting it would leave a negative
    # answer in B's resolver cache for 5 minutes (see the xfail on negative answers in
    # tests/smtp/test_mx.py), and the next test would find no policy for a.test.
    w.dns.set("_dmarc.a.test", "TXT", ["no policy here"])
    assert send_to_b(w, "relay@a.test", bob.address, sent).startswith("250 2.0.0")
    # An SPF fail with an aligned DKIM pass is not suspicious, policy or no policy.
    inbox = mailbox(w.b, bob)
    assert len(inbox) == 2, [results(s) for s in mailbox(w.b, bob, "Spam")]
    verdict = results(inbox[-1])
    says(verdict, "spf=fail", "dmarc=none")
    assert dkim_results(verdict) == ["pass", "pass"], verdict


# ------------------------------------------------------------------------------ allow and block


def test_allow_listed_sender_reaches_inbox_whatever_dmarc_says(w: World) -> None:
    bob = account(w, w.b, "bob")
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    carol = account(w, w.b, "carol", pod=pod)
    w.b.call(w.b.store.add_sender_rule("allow", "a.test", inbox=bob.address))
    w.b.call(w.b.store.add_sender_rule("allow", "ceo@a.test", pod=pod))
    for policy in ("reject", "quarantine"):
        w.set_dmarc("a.test", policy)
        for who in (bob, carol):
            forged = make_message("ceo@a.test", who.address, f"under p={policy}")
            assert send_to_b(w, "ceo@a.test", who.address, forged).startswith("250 2.0.0")
    for who in (bob, carol):
        stored = mailbox(w.b, who)
        assert [s.header("Subject") for s in stored] == [["under p=reject"], ["under p=quarantine"]]
        # The verdict is still recorded as it was; only the folder follows the list.
        assert "dmarc=fail (p=reject)" in results(stored[0])
        assert mailbox(w.b, who, "Spam") == []
    # Someone who allowed no one still gets the policy applied.
    dave = account(w, w.b, "dave")
    forged = make_message("ceo@a.test", dave.address)
    assert send_to_b(w, "ceo@a.test", dave.address, forged).startswith("250 2.0.0")
    assert len(mailbox(w.b, dave, "Spam")) == 1


def test_block_listed_sender_is_refused_and_bounced_to_them(w: World) -> None:
    alice, bob = account(w, w.a, "alice"), account(w, w.b, "bob")
    w.b.call(w.b.store.add_sender_rule("block", alice.address, inbox=bob.address))
    with to_b(w, source=SENDING_IP) as s:
        s.expect(f"MAIL FROM:<{alice.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "550 5.7.1 Sender blocked")
    # Alice's real mail through A gets the same 550, and A bounces it to her INBOX.
    with w.a.smtp_client(alice) as smtp:
        smtp.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
    (bounce,) = wait_for(w.a, alice, 1)
    assert b"550 5.7.1 Sender blocked" in bounce.raw, bounce.raw[:2000]
    assert nothing_for(w.b, bob)


# ------------------------------------------------------------------------------ DNS outage


def test_dns_timeout_under_p_reject_is_451_then_decided(w: World) -> None:
    bob = account(w, w.b, "bob")
    w.set_dmarc("a.test", "reject")
    forged = make_message("ceo@a.test", bob.address, "Wire the money")
    w.dns.answering = False
    reply = send_to_b(w, "ceo@a.test", bob.address, forged)
    # Nothing could be checked, and a.test's policy might say reject: try again later.
    assert reply.startswith("451 4.7.0"), reply
    assert "DMARC" in reply, reply
    assert nothing_for(w.b, bob)
    # Retried once DNS answers, the message is decided for good.
    w.dns.answering = True
    assert send_to_b(w, "ceo@a.test", bob.address, forged).startswith("550 5.7.1")
    assert nothing_for(w.b, bob)


# ------------------------------------------------------------------------------ the local path


def test_mail_between_inboxes_of_one_server_is_not_checked_again(w: World) -> None:
    carol, dave = account(w, w.b, "carol"), account(w, w.b, "dave")
    # b.test asks receivers to reject what fails DMARC; carol's mail to dave is not mail from
    # the world, so nothing checks it (it passed AUTH) and nothing is recorded.
    w.dns.set("_dmarc.b.test", "TXT", [default_dmarc("b.test", "reject")])
    with w.b.smtp_client(carol) as smtp:
        smtp.sendmail(carol.address, [dave.address], make_message(carol.address, dave.address))
    (stored,) = mailbox(w.b, dave)
    assert stored.header("Authentication-Results") == []
    assert "with ESMTPSA" in stored.header("Received")[0]
    assert w.b.call(w.b.store.list_outbound()) == []
