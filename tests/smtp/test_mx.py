"""The MX listener on one server: what another mail server sees when it delivers to us.

No AUTH, STARTTLS offered, recipients only for hosted inboxes (plus-addressing included),
allow and block lists, the size, hop and session limits, and what a DNS timeout does. The
sender domain `sender.test` lives in a real DNS server on loopback; a client connecting from
127.0.0.1 is its SPF-authorized host, one from 127.0.0.9 is not.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator

import pytest
from dnslib import RR, DNSError

from mailgate.delivery.dkim import generate_keys, sign
from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.harness import DOMAIN, Account, Server, running_server
from tests.smtp.helpers import SMTPSession, Stored, dot_stuff, plain, read_mailbox

SENDER_DOMAIN = "sender.test"
SENDER = f"news@{SENDER_DOMAIN}"
SPF_OK_IP = "127.0.0.1"
FORGER_IP = "127.0.0.9"
HOSTNAME = "mail.example.test"  # the test server's [server] hostname (tests/harness.py)


class Zone(ZoneServer):
    """The loopback DNS server, with names that get no answer at all: a DNS timeout for just
    those names (one domain's nameservers down) while the rest of the zone answers."""

    def __init__(self) -> None:
        super().__init__()
        self.silent: set[str] = set()

    def lookup(self, name: str, rtype: str) -> tuple[list[RR], bool]:
        if name in self.silent:
            raise DNSError(f"{name}: no answer")  # dnslib's handler then sends nothing
        return super().lookup(name, rtype)


@pytest.fixture(scope="module")
def zone() -> Iterator[Zone]:
    with Zone() as z:
        yield z


@pytest.fixture(autouse=True)
def sender_zone(zone: Zone) -> Iterator[Zone]:
    """sender.test: SPF allows 127.0.0.1 only, DMARC p=none; each test may change it."""
    zone.set(SENDER_DOMAIN, "TXT", [f"v=spf1 ip4:{SPF_OK_IP} -all"])
    set_dmarc(zone, "none")
    yield zone
    zone.silent.clear()
    zone.clear()


def set_dmarc(zone: ZoneServer, policy: str) -> None:
    zone.set(f"_dmarc.{SENDER_DOMAIN}", "TXT", [f"v=DMARC1; p={policy}"])


@pytest.fixture(scope="module")
def mx(backend: str, tmp_path_factory: pytest.TempPathFactory, zone: Zone) -> Iterator[Server]:
    """One server for the module, resolving through `zone` (a short timeout keeps the DNS
    timeout tests quick)."""
    directory = tmp_path_factory.mktemp(f"mx-{backend}")
    dns = {"nameservers": (zone.address,), "timeout": 0.5}
    with running_server(directory, backend, dns=dns) as srv:
        yield srv


@pytest.fixture(scope="module")
def limited(backend: str, tmp_path_factory: pytest.TempPathFactory, zone: Zone) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(f"mx-limited-{backend}")
    dns = {"nameservers": (zone.address,), "timeout": 0.5}
    smtp = {"max_message_size": 4096, "max_recipients": 2}
    with running_server(directory, backend, dns=dns, smtp=smtp) as srv:
        yield srv


@pytest.fixture
def bob(mx: Server) -> Account:
    return mx.account()


def connect(
    server: Server, *, source: str = SPF_OK_IP, helo: str | None = "relay.sender.test"
) -> SMTPSession:
    """A raw SMTP session with the MX from `source`, EHLO sent unless helo is None."""
    sock = socket.create_connection(
        (server.host, server.port("mx")), timeout=30, source_address=(source, 0)
    )
    session = SMTPSession(sock)
    assert session.greeting.line.startswith(f"220 {HOSTNAME}"), session.greeting
    if helo is not None:
        session.ehlo(helo)
    return session


def deliver(
    server: Server,
    sender: str,
    recipients: list[str],
    data: bytes,
    *,
    source: str = SPF_OK_IP,
    helo: str = "relay.sender.test",
) -> str:
    """MAIL, RCPT (each must get 250), DATA; the final reply's last line."""
    with connect(server, source=source, helo=helo) as s:
        reply = s.send_mail(sender, recipients, data)
        assert reply.has_enhanced_code(), reply.text
        return reply.line


def only(server: Server, account: Account, mailbox: str) -> Stored:
    stored = read_mailbox(server, account, mailbox)
    assert len(stored) == 1, f"{mailbox}: {len(stored)} messages"
    return stored[0]


def nothing_stored(server: Server, account: Account) -> bool:
    return read_mailbox(server, account) == [] and read_mailbox(server, account, "Spam") == []


def our_results(stored: Stored) -> str:
    """Our Authentication-Results (exactly one), whitespace collapsed."""
    ours = [v for v in stored.header("Authentication-Results") if _authserv(v) == HOSTNAME]
    assert len(ours) == 1, stored.header("Authentication-Results")
    return re.sub(r"\s+", " ", ours[0])


def _authserv(value: str) -> str:
    return value.split(";", 1)[0].strip().rstrip(".").lower()


def mail_from_sender(to: str, **extra: str) -> bytes:
    return make_message(SENDER, to, extra=extra or None)


# ------------------------------------------------------------------------------ EHLO, AUTH, TLS


def test_mx_offers_starttls_and_size_but_never_auth(mx: Server, bob: Account) -> None:
    with connect(mx, helo=None) as s:
        keywords = s.ehlo("relay.sender.test")
        assert "STARTTLS" in keywords
        assert f"SIZE {mx.settings.smtp.max_message_size}" in keywords
        assert not [k for k in keywords if k.startswith("AUTH")], keywords
        # Even a valid inbox key does not log in here: the MX is not a submission port.
        s.expect(f"AUTH PLAIN {_plain(bob)}", "538 5.7.11")
        s.starttls()
        keywords = s.ehlo("relay.sender.test")
        assert "STARTTLS" not in keywords
        assert not [k for k in keywords if k.startswith("AUTH")], keywords
        reply = s.cmd(f"AUTH PLAIN {_plain(bob)}")
        assert reply.code == 504, reply.text
        assert reply.has_enhanced_code(), reply.text
        # Mail needs no AUTH at all.
        assert s.send_mail(SENDER, [bob.address], mail_from_sender(bob.address)).line.startswith(
            "250 2.0.0"
        )


def _plain(account: Account) -> str:
    return plain(account.address, account.key)


def test_mail_over_starttls_is_delivered_and_traced_as_esmtps(mx: Server, bob: Account) -> None:
    with connect(mx) as s:
        s.starttls()
        s.ehlo("relay.sender.test")
        reply = s.send_mail(SENDER, [bob.address], mail_from_sender(bob.address))
        assert reply.line.startswith("250 2.0.0"), reply.text
    stored = only(mx, bob, "INBOX")
    received = stored.header("Received")[0]
    assert f"by {HOSTNAME}" in received
    assert "with ESMTPS" in received, received
    assert "(using TLSv1." in received, received
    assert "spf=pass smtp.mailfrom=sender.test" in our_results(stored)


def test_mail_in_plain_text_is_traced_as_esmtp(mx: Server, bob: Account) -> None:
    reply = deliver(mx, SENDER, [bob.address], mail_from_sender(bob.address))
    assert reply.startswith("250 2.0.0"), reply
    match = re.search(r"250 2\.0\.0 Message accepted (\S+)$", reply)
    assert match is not None, reply
    received = only(mx, bob, "INBOX").header("Received")[0]
    assert received.startswith("from relay.sender.test ([127.0.0.1])"), received
    # RFC 3848: no TLS and no AUTH is plain ESMTP.
    assert f"with ESMTP id {match.group(1)}" in received, received
    assert "(using" not in received, received


# ------------------------------------------------------------------------------ RCPT


def test_unknown_address_at_a_hosted_domain_is_550_5_1_1(mx: Server, bob: Account) -> None:
    with connect(mx) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect(f"RCPT TO:<nobody-{uuid.uuid4().hex[:8]}@{DOMAIN}>", "550 5.1.1")
        # Unknown even with a tag: the part before "+" must be an inbox.
        s.expect(f"RCPT TO:<nobody+{bob.address}>", "550 5.1.1")


def test_another_domain_is_relaying_denied(mx: Server) -> None:
    with connect(mx) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect("RCPT TO:<someone@elsewhere.test>", "550 5.7.1 Relaying denied")
        # A domain that merely ends like ours is not ours.
        s.expect(f"RCPT TO:<someone@not{DOMAIN}>", "550 5.7.1 Relaying denied")
        s.expect("DATA", "503 5.5.1")


def test_plus_addressing_reaches_the_inbox_once(mx: Server, bob: Account) -> None:
    local, _, domain = bob.address.partition("@")
    tagged = f"{local.upper()}+Orders@{domain.upper()}"
    data = mail_from_sender(tagged)
    assert deliver(mx, SENDER, [tagged, bob.address], data).startswith("250 2.0.0")
    stored = only(mx, bob, "INBOX")
    assert f"for <{bob.address}>" in stored.header("Received")[0]
    assert stored.header("To") == [tagged]


def test_a_bounce_with_the_null_sender_is_accepted(mx: Server, bob: Account) -> None:
    data = make_message(f"MAILER-DAEMON@{SENDER_DOMAIN}", bob.address, "Undelivered Mail")
    with connect(mx, helo=SENDER_DOMAIN) as s:
        s.expect("MAIL FROM:<>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(data) + b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    # RFC 7208 §2.4: with no MAIL FROM, SPF checks the HELO name.
    assert "spf=pass smtp.helo=sender.test" in our_results(only(mx, bob, "INBOX"))


def test_too_many_recipients_is_452_4_5_3(limited: Server) -> None:
    first, second, third = limited.account(), limited.account(), limited.account()
    with connect(limited) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{first.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{second.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{third.address}>", "452 4.5.3")


def test_a_repeated_rcpt_counts_but_the_message_arrives_once(limited: Server) -> None:
    first, second = limited.account(), limited.account()
    with connect(limited) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{first.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{first.address.upper()}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{second.address}>", "452 4.5.3")
        s.expect("DATA", "354")
        s.send(dot_stuff(mail_from_sender(first.address)) + b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    only(limited, first, "INBOX")
    assert nothing_stored(limited, second)


# ------------------------------------------------------------------------------ quota


def test_a_full_inbox_is_552_5_2_2_at_rcpt_and_the_others_get_the_message(
    mx: Server, bob: Account
) -> None:
    full = mx.account()
    mx.call(mx.store.set_inbox_quota(full.address, 1000))
    # Not full yet: the message that fills it is taken whole (Dovecot's quota_grace).
    big = make_message(SENDER, full.address, body="x" * 2000 + "\r\n")
    assert deliver(mx, SENDER, [full.address], big).startswith("250 2.0.0")
    with connect(mx) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        assert s.expect(f"RCPT TO:<{full.address}>", "552 5.2.2").has_enhanced_code()
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(mail_from_sender(bob.address)) + b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    only(mx, bob, "INBOX")
    only(mx, full, "INBOX")
    # Spam counts toward the quota too, and mail for Spam is refused alike.
    with connect(mx, source=FORGER_IP) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{full.address}>", "552 5.2.2")


# ------------------------------------------------------------------------------ allow and block


def test_blocked_envelope_sender_is_refused_at_rcpt(mx: Server, bob: Account) -> None:
    mx.call(mx.store.add_sender_rule("block", "mallory@spam.test", inbox=bob.address))
    other = mx.account()
    with connect(mx) as s:
        for sender in ("mallory@spam.test", "Mallory@SPAM.test", "mallory+x@spam.test"):
            s.expect(f"MAIL FROM:<{sender}>", "250 2.1.0")
            s.expect(f"RCPT TO:<{bob.address}>", "550 5.7.1 Sender blocked")
            # Another inbox has not blocked anyone.
            s.expect(f"RCPT TO:<{other.address}>", "250 2.1.5")
            s.expect("RSET", "250")
        # Someone else at that domain is not blocked.
        s.expect("MAIL FROM:<alice@spam.test>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")


def test_blocked_domain_covers_subdomains_and_every_local_part_form(
    mx: Server, bob: Account
) -> None:
    mx.call(mx.store.add_sender_rule("block", "spam.test", inbox=bob.address))
    with connect(mx) as s:
        for sender in (
            "a@spam.test",
            "a@mail.SPAM.test",
            '"any one"@spam.test',  # a quoted local part is still that domain's
            "a..b@spam.test",
        ):
            s.expect(f"MAIL FROM:<{sender}>", "250 2.1.0")
            s.expect(f"RCPT TO:<{bob.address}>", "550 5.7.1 Sender blocked")
            s.expect("RSET", "250")
        s.expect("MAIL FROM:<a@notspam.test>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")


def test_pod_block_list_covers_every_inbox_of_the_pod(mx: Server) -> None:
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    member, outsider = mx.account(pod=pod), mx.account()
    mx.call(mx.store.add_sender_rule("block", SENDER_DOMAIN, pod=pod))
    with connect(mx) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{member.address}>", "550 5.7.1 Sender blocked")
        s.expect(f"RCPT TO:<{outsider.address}>", "250 2.1.5")


def test_blocked_domain_in_an_8bit_from_header_is_refused(mx: Server, bob: Account) -> None:
    mx.call(mx.store.add_sender_rule("block", "xn--bcher-kva.test", inbox=bob.address))
    data = make_message("shop@bücher.test", bob.address).replace(b"Hello", b"Hallo")
    assert b"b\xc3\xbccher" in data
    with connect(mx) as s:
        s.expect(f"MAIL FROM:<{SENDER}> BODY=8BITMIME", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(data) + b".\r\n")
        assert s.read_reply().line.startswith("550 5.7.1")
    assert nothing_stored(mx, bob)


def test_blocked_from_header_is_refused_at_end_of_data(mx: Server, bob: Account) -> None:
    mx.call(mx.store.add_sender_rule("block", "spam.test", inbox=bob.address))
    data = make_message('"Spammer" <"odd one"@spam.test>', bob.address)
    reply = deliver(mx, SENDER, [bob.address], data)
    assert reply.startswith("550 5.7.1"), reply
    assert nothing_stored(mx, bob)


def test_allow_listed_sender_reaches_inbox_despite_spf_fail(mx: Server, bob: Account) -> None:
    other = mx.account()
    mx.call(mx.store.add_sender_rule("allow", SENDER_DOMAIN, inbox=bob.address))
    mx.call(mx.store.add_sender_rule("block", SENDER, inbox=bob.address))  # allowing wins
    data = mail_from_sender(bob.address)
    reply = deliver(mx, SENDER, [bob.address, other.address], data, source=FORGER_IP)
    assert reply.startswith("250 2.0.0"), reply
    # The verdict is recorded as it is; the list decides the folder.
    assert "spf=fail" in our_results(only(mx, bob, "INBOX"))
    assert read_mailbox(mx, bob, "Spam") == []
    # Who has not allowed the sender gets an SPF fail in Spam.
    assert "spf=fail" in our_results(only(mx, other, "Spam"))
    assert read_mailbox(mx, other) == []


# ------------------------------------------------------------------------------ limits


def test_size_limit_is_552_5_3_4(limited: Server) -> None:
    bob = limited.account()
    big = mail_from_sender(bob.address) + b"x" * 76 * 60  # over 4096 bytes
    with connect(limited) as s:
        s.expect(f"MAIL FROM:<{SENDER}> SIZE={len(big)}", "552 5.3.4")
        # A client that does not declare SIZE is stopped at the end of DATA.
        s.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(big) + b".\r\n")
        assert s.read_reply().line.startswith("552 5.3.4")
    assert nothing_stored(limited, bob)


def _hops(count: int, message: bytes) -> bytes:
    """`message` as it would arrive after `count` relays, each adding its Received field."""
    date = "Mon, 1 Jan 2024 00:00:00 +0000"
    fields = [f"Received: from hop{i}.test by hop{i + 1}.test; {date}\r\n" for i in range(count)]
    return "".join(reversed(fields)).encode() + message


def test_more_than_50_received_headers_is_a_mail_loop(mx: Server, bob: Account) -> None:
    looping = _hops(51, make_message(SENDER, bob.address, "loop"))
    assert deliver(mx, SENDER, [bob.address], looping).startswith("554 5.4.6")
    assert nothing_stored(mx, bob)
    fine = _hops(50, make_message(SENDER, bob.address, "far"))
    assert deliver(mx, SENDER, [bob.address], fine).startswith("250 2.0.0")
    assert len(only(mx, bob, "INBOX").header("Received")) == 51  # ours on top


def test_silent_and_stalling_clients_get_421_on_the_mx(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"session_timeout": 60, "command_timeout": 1})
    bob = srv.account()
    # Both at once, so that the test waits for one timeout, not two.
    with connect(srv, helo=None) as silent, connect(srv) as stalling:
        stalling.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0")
        stalling.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        stalling.expect("DATA", "354")
        stalling.send(dot_stuff(mail_from_sender(bob.address)))  # and never the final dot
        for session in (silent, stalling):
            rest = session.read_until_closed(timeout=15)
            assert rest.startswith(b"421 4.4.2 Timeout waiting for a command"), rest
    assert read_mailbox(srv, bob) == []


def test_busy_mx_session_ends_at_session_timeout(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"session_timeout": 1, "command_timeout": 60})
    with connect(srv) as s:
        # A NOOP whenever the server has been quiet for 0.2 s, until it ends the session
        # (bounded by the loop and the socket timeouts).
        received = b""
        for _ in range(200):
            s.sock.settimeout(0.2)
            try:
                chunk = s.sock.recv(65536)
            except TimeoutError:
                s.send(b"NOOP\r\n")
                continue
            except ConnectionError:
                break
            if not chunk:
                break
            received += chunk
        assert b"421 4.4.2 Session time limit exceeded" in received, received


# ------------------------------------------------------------------------ Authentication-Results


def test_earlier_results_claiming_our_name_are_removed_others_kept(
    mx: Server, bob: Account
) -> None:
    forged = {
        "Authentication-Results": f"{HOSTNAME}; spf=pass; dkim=pass; dmarc=pass",
        "X-Between": "kept",
    }
    data = make_message(SENDER, bob.address, extra=forged)
    # Another form of our name (RFC 8601 §2.5: case-insensitive, a final dot is the same
    # name) and another server's header, folded.
    data = data.replace(
        b"X-Between: kept\r\n",
        b"X-Between: kept\r\n"
        + f"Authentication-Results: {HOSTNAME.upper()}.;\r\n\tdkim=pass\r\n".encode()
        + b"Authentication-Results: mx.elsewhere.test;\r\n\tspf=pass smtp.mailfrom=x.test\r\n",
    )
    assert deliver(mx, SENDER, [bob.address], data, source=FORGER_IP).startswith("250 2.0.0")
    stored = only(mx, bob, "Spam")
    results = our_results(stored)  # exactly one: ours, with the real verdict
    assert "spf=fail" in results, results
    assert "dkim=none" in results, results
    others = [v for v in stored.header("Authentication-Results") if _authserv(v) != HOSTNAME]
    assert [re.sub(r"\s+", " ", v) for v in others] == [
        "mx.elsewhere.test; spf=pass smtp.mailfrom=x.test"
    ]
    assert stored.header("X-Between") == ["kept"]


# ------------------------------------------------------------------------------ DNS timeouts


def test_spf_timeout_under_p_reject_is_451_4_7_0(mx: Server, bob: Account, zone: Zone) -> None:
    set_dmarc(zone, "reject")
    zone.silent.add(SENDER_DOMAIN)  # its SPF record cannot be had; its DMARC record can
    reply = deliver(mx, SENDER, [bob.address], mail_from_sender(bob.address))
    assert reply.startswith("451 4.7.0"), reply
    assert "DMARC" in reply, reply
    assert nothing_stored(mx, bob)
    # Once DNS answers again the same message is decided: SPF passes, so does DMARC.
    zone.silent.clear()
    assert deliver(mx, SENDER, [bob.address], mail_from_sender(bob.address)).startswith("250")
    assert "dmarc=pass" in our_results(only(mx, bob, "INBOX"))


def test_spf_timeout_under_p_quarantine_is_accepted_and_marked(
    mx: Server, bob: Account, zone: Zone
) -> None:
    set_dmarc(zone, "quarantine")
    zone.silent.add(SENDER_DOMAIN)
    reply = deliver(mx, SENDER, [bob.address], mail_from_sender(bob.address))
    assert reply.startswith("250 2.0.0"), reply
    results = our_results(only(mx, bob, "INBOX"))
    assert "spf=temperror" in results, results
    assert "dmarc=temperror" in results, results


def test_dmarc_record_timeout_without_an_aligned_pass_is_451(
    mx: Server, bob: Account, zone: Zone
) -> None:
    set_dmarc(zone, "reject")
    zone.silent.add(f"_dmarc.{SENDER_DOMAIN}")  # the policy itself cannot be read
    data = mail_from_sender(bob.address)
    reply = deliver(mx, SENDER, [bob.address], data, source=FORGER_IP)
    assert reply.startswith("451 4.7.0"), reply
    assert "DMARC" in reply, reply
    assert nothing_stored(mx, bob)


def test_dmarc_record_timeout_with_an_aligned_pass_is_accepted_and_marked(
    mx: Server, bob: Account, zone: Zone
) -> None:
    set_dmarc(zone, "reject")
    zone.silent.add(f"_dmarc.{SENDER_DOMAIN}")
    # SPF passes for the From domain itself: aligned whatever the record says.
    reply = deliver(mx, SENDER, [bob.address], mail_from_sender(bob.address))
    assert reply.startswith("250 2.0.0"), reply
    results = our_results(only(mx, bob, "INBOX"))
    assert "spf=pass" in results, results
    assert "dmarc=temperror" in results, results


def test_an_unaligned_signature_timing_out_does_not_soften_a_reject(
    mx: Server, bob: Account, zone: Zone
) -> None:
    set_dmarc(zone, "reject")
    key = generate_keys()[1]  # Ed25519: the key is never found, only its lookup matters
    zone.silent.add(f"{key.selector}._domainkey.other.test")
    data = mail_from_sender(bob.address)
    signed = sign(data, "other.test", [key]) + data
    reply = deliver(mx, SENDER, [bob.address], signed, source=FORGER_IP)
    # That signature could never align with sender.test: DMARC fails for certain.
    assert reply.startswith("550 5.7.1"), reply
    assert "DMARC" in reply, reply
    assert nothing_stored(mx, bob)


def test_forged_mail_under_p_reject_is_refused_but_others_at_the_domain_pass(
    mx: Server, bob: Account, zone: Zone
) -> None:
    set_dmarc(zone, "reject")
    data = mail_from_sender(bob.address)
    reply = deliver(mx, SENDER, [bob.address], data, source=FORGER_IP)
    assert reply == "550 5.7.1 Message rejected (rejected by the DMARC policy of sender.test)"
    assert nothing_stored(mx, bob)
    assert deliver(mx, SENDER, [bob.address], data).startswith("250 2.0.0")
    assert "dmarc=pass" in our_results(only(mx, bob, "INBOX"))


def test_a_dmarc_record_published_after_a_negative_answer_is_honoured(
    mx: Server, bob: Account, zone: Zone
) -> None:
    late = "late.test"  # a domain of its own: a stale answer stays in the server's cache
    zone.set(late, "TXT", [f"v=spf1 ip4:{SPF_OK_IP} -all"])
    data = make_message(f"ceo@{late}", bob.address)
    reply = deliver(mx, f"ceo@{late}", [bob.address], data, source=FORGER_IP)
    assert reply.startswith("250 2.0.0"), reply  # no policy yet: an SPF fail goes to Spam
    zone.set(f"_dmarc.{late}", "TXT", ["v=DMARC1; p=reject"])
    reply = deliver(mx, f"ceo@{late}", [bob.address], data, source=FORGER_IP)
    assert reply.startswith("550 5.7.1"), reply
