"""SMTPUTF8 (RFC 6531) on submission and the MX: internationalized addresses and UTF-8 header
fields (RFC 6532), as stdlib smtplib and a raw session send them.

Inbox addresses are ASCII before the @; their domain may be an IDN, kept as its A-labels, so
that `例え.jp` and `xn--r8jz45g.jp` name one inbox. Mail from and to UTF-8 addresses is
exchanged, its header stored exactly as it came.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import smtplib
import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.harness import DOMAIN, Account, Server, running_server
from tests.smtp.helpers import SMTPSession, Stored, dot_stuff, plain, read_mailbox, tls

IDN = "例え.jp"
IDN_ASCII = "xn--r8jz45g.jp"
UTF8_SENDER = f"ü@{IDN}"  # an internationalized sender on the internet
HOSTNAME = "mail.example.test"


def utf8_message(sender: str, to: str, subject: str) -> bytes:
    """A message/global: raw UTF-8 in From, To, Subject and a display name (RFC 6532)."""
    return make_message(
        f"Jörg Müller <{sender}>",
        f"Δοκιμή <{to}>",
        subject,
        body="Grüße.\r\n",
        extra={"Cc": f"δοκιμή@{IDN}", "Content-Type": "text/plain; charset=utf-8"},
    )


def only(server: Server, account: Account, mailbox: str = "INBOX") -> Stored:
    stored = read_mailbox(server, account, mailbox)
    assert len(stored) == 1, f"{mailbox}: {len(stored)} messages"
    return stored[0]


def header_unchanged(stored: bytes, sent: bytes) -> None:
    """Every header line that was sent is stored byte for byte (ours are added above it)."""
    head = stored.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for line in sent.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        assert line in head, line


def received_with(stored: bytes) -> str:
    """The protocol the first (our) Received field names."""
    match = re.search(r"\swith (\S+) id ", stored.split(b"\r\n\r\n", 1)[0].decode())
    assert match is not None, stored
    return match.group(1)


# -------------------------------------------------------------------- submission


def test_ehlo_offers_smtputf8_and_8bitmime_on_every_port(server: Server) -> None:
    with SMTPSession.connect(server) as s:  # 465
        assert {"SMTPUTF8", "8BITMIME"} <= set(s.ehlo())
    with SMTPSession.connect(server, starttls_port=True) as s:  # 587, before and after TLS
        assert {"SMTPUTF8", "8BITMIME"} <= set(s.ehlo())
        s.starttls()
        assert {"SMTPUTF8", "8BITMIME"} <= set(s.ehlo())
    sock = socket.create_connection((server.host, server.port("mx")), timeout=30)
    with SMTPSession(sock) as s:
        assert {"SMTPUTF8", "8BITMIME"} <= set(s.ehlo())


def test_smtplib_sends_a_utf8_message_and_it_is_stored_unchanged(
    server: Server, account: Account, other: Account
) -> None:
    message = utf8_message(account.address, other.address, "Grüße aus 例え")
    with server.smtp_client(account) as smtp:
        refused = smtp.sendmail(
            account.address, [other.address], message, mail_options=["SMTPUTF8"]
        )
    assert refused == {}
    stored = only(server, other).raw
    header_unchanged(stored, message)
    assert stored.endswith(b"\r\n\r\nGr\xc3\xbc\xc3\x9fe.\r\n")
    assert received_with(stored) == "UTF8SMTPSA"  # RFC 6531 §3.7.3
    sent = only(server, account, "Sent").raw
    header_unchanged(sent, message)


def test_utf8_address_without_smtputf8_gets_553_5_6_7(server: Server, account: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        reply = s.expect(f"RCPT TO:<δοκιμή@{DOMAIN}>".encode(), "553 5.6.7")
        assert "SMTPUTF8" in reply.line
        s.expect(f"RCPT TO:<bob@{IDN}>".encode(), "553 5.6.7")  # a U-label is UTF-8 too
        s.expect("RSET", "250 2.0.0")
        local, _, _ = account.address.partition("@")
        s.expect(f"MAIL FROM:<{local}@bücher.{DOMAIN}>".encode(), "553 5.6.7")
        # With the parameter the address is read, and judged as the sender it is not.
        s.expect(f"MAIL FROM:<{local}@bücher.{DOMAIN}> SMTPUTF8".encode(), "550 5.7.1")
        s.expect("MAIL FROM:<x> SMTPUTF8=YES", "501 5.5.4")  # a parameter without a value


def test_utf8_recipient_here_that_no_inbox_has_is_unknown(server: Server, account: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}> SMTPUTF8", "250 2.1.0")
        s.expect(f"RCPT TO:<δοκιμή@{DOMAIN}>".encode(), "550 5.1.1")
        # Not UTF-8 at all: refused as a command, and the transaction goes on.
        s.expect(b"RCPT TO:<\xff\xfe@" + DOMAIN.encode() + b">", "500 5.5.2")
        s.expect(f"RCPT TO:<δοκιμή..x@{DOMAIN}>".encode(), "501 5.1.3")
        s.expect("NOOP", "250 2.0.0")


def test_idn_inbox_logs_in_and_receives_by_u_label_and_a_label(server: Server) -> None:
    """An inbox at an IDN is one inbox by either form of its domain: AUTH PLAIN (UTF-8, RFC
    4616) with the U-label form, MAIL FROM in it, RCPT TO in both forms: one copy."""
    sender = server.account(f"s{uuid.uuid4().hex[:8]}@{IDN}")
    rcpt = server.account(f"R{uuid.uuid4().hex[:8]}@{IDN}")
    assert sender.address.endswith(f"@{IDN_ASCII}")
    assert rcpt.address == rcpt.address.lower()
    u_sender = sender.address.replace(IDN_ASCII, IDN)
    u_rcpt = rcpt.address.replace(IDN_ASCII, IDN).upper().replace(IDN.upper(), IDN)
    message = utf8_message(u_sender, u_rcpt, "IDN")
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.expect(f"AUTH PLAIN {plain(u_sender, sender.key)}", "235 2.7.0")
        s.expect(f"MAIL FROM:<{u_sender}> SMTPUTF8".encode(), "250 2.1.0")
        s.expect(f"RCPT TO:<{u_rcpt}>".encode(), "250 2.1.5")
        s.expect(f"RCPT TO:<{rcpt.address.upper()}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(message) + b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    header_unchanged(only(server, rcpt).raw, message)  # IMAP LOGIN with the A-label form
    # IMAP AUTHENTICATE PLAIN (UTF-8) with the U-label form.
    imap = imaplib.IMAP4_SSL(server.host, server.imaps, ssl_context=tls())
    try:
        status, _ = imap.authenticate("PLAIN", lambda _: f"\0{u_rcpt}\0{rcpt.key}".encode())
        assert status == "OK"
    finally:
        imap.logout()


def test_idn_inbox_login_over_smtplib_with_the_a_label(server: Server) -> None:
    inbox = server.account(f"a{uuid.uuid4().hex[:8]}@{IDN}")
    with smtplib.SMTP_SSL(server.host, server.smtps, context=tls(), timeout=30) as smtp:
        code, _ = smtp.login(inbox.address.upper(), inbox.key)
        assert code == 235


# -------------------------------------------------------------------- MX


@pytest.fixture(scope="module")
def mx_zone() -> Iterator[ZoneServer]:
    with ZoneServer() as zone:
        # The internationalized sender's domain, under its A-labels: SPF allows loopback.
        zone.set(IDN_ASCII, "TXT", ["v=spf1 ip4:127.0.0.1 -all"])
        zone.set(f"_dmarc.{IDN_ASCII}", "TXT", ["v=DMARC1; p=reject"])
        yield zone


@pytest.fixture(scope="module")
def mx(
    backend: str, tmp_path_factory: pytest.TempPathFactory, mx_zone: ZoneServer
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(f"mx-utf8-{backend}")
    with running_server(directory, backend, dns={"nameservers": (mx_zone.address,)}) as srv:
        yield srv


def mx_session(server: Server) -> SMTPSession:
    sock = socket.create_connection((server.host, server.port("mx")), timeout=30)
    session = SMTPSession(sock)
    session.ehlo("relay.example.jp")
    return session


def test_mx_takes_mail_from_an_internationalized_sender(mx: Server) -> None:
    bob = mx.account()
    message = utf8_message(UTF8_SENDER, bob.address, "Grüße aus 例え")
    with mx_session(mx) as s:
        s.expect(f"MAIL FROM:<{UTF8_SENDER}> SMTPUTF8".encode(), "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(message) + b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    stored = only(mx, bob).raw
    header_unchanged(stored, message)
    assert received_with(stored) == "UTF8SMTP"
    head = stored.split(b"\r\n\r\n", 1)[0].decode()
    # SPF and DMARC were looked up by the A-labels of the U-label domains (p=reject: a fail
    # would have refused the message).
    assert f"spf=pass smtp.mailfrom={IDN_ASCII}" in " ".join(head.split())
    assert "dmarc=pass" in head
    assert read_mailbox(mx, bob, "Spam") == []


def test_mx_with_smtplib_send_message(mx: Server) -> None:
    """smtplib's send_message says SMTPUTF8 by itself for an internationalized address."""
    bob = mx.account()
    message = utf8_message(UTF8_SENDER, bob.address, "send_message")
    parsed = email.message_from_bytes(message, policy=email.policy.SMTPUTF8)
    with smtplib.SMTP(mx.host, mx.port("mx"), timeout=30) as smtp:
        smtp.send_message(parsed, from_addr=UTF8_SENDER, to_addrs=[bob.address])
    assert b"Subject: send_message" in only(mx, bob).raw


def test_mx_refuses_utf8_addresses_without_smtputf8(mx: Server) -> None:
    bob = mx.account()
    with mx_session(mx) as s:
        s.expect(f"MAIL FROM:<{UTF8_SENDER}>".encode(), "553 5.6.7")
        s.expect("MAIL FROM:<news@sender.test>", "250 2.1.0")
        s.expect(f"RCPT TO:<δοκιμή@{bob.address.partition('@')[2]}>".encode(), "553 5.6.7")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")
        s.expect("RSET", "250 2.0.0")
        # Not UTF-8 at all: refused as a command; not an address: refused as a sender.
        s.expect(b"MAIL FROM:<\xc3@sender.test> SMTPUTF8", "500 5.5.2")
        s.expect("MAIL FROM:<ü..x@sender.test> SMTPUTF8".encode(), "501 5.1.7")
        # With SMTPUTF8, a UTF-8 local part here that no inbox has is unknown.
        s.expect(f"MAIL FROM:<{UTF8_SENDER}> SMTPUTF8".encode(), "250 2.1.0")
        s.expect(f"RCPT TO:<δοκιμή@{bob.address.partition('@')[2]}>".encode(), "550 5.1.1")


def test_block_lists_name_internationalized_senders_in_either_form(mx: Server) -> None:
    """An entry with a U-label domain or a UTF-8 local part blocks the sender it names, in
    whichever form the sender writes it."""
    by_domain, by_address = mx.account(), mx.account()
    mx.call(mx.store.add_sender_rule("block", IDN, inbox=by_domain.address))
    mx.call(mx.store.add_sender_rule("block", "U\u0308@例え.JP", inbox=by_address.address))
    for sender in (UTF8_SENDER, f"ü@{IDN_ASCII}"):
        with mx_session(mx) as s:
            s.expect(f"MAIL FROM:<{sender}> SMTPUTF8".encode(), "250 2.1.0")
            s.expect(f"RCPT TO:<{by_domain.address}>", "550 5.7.1 Sender blocked")
            s.expect(f"RCPT TO:<{by_address.address}>", "550 5.7.1 Sender blocked")
    with mx_session(mx) as s:  # another sender of that domain
        s.expect(f"MAIL FROM:<other@{IDN}> SMTPUTF8".encode(), "250 2.1.0")
        s.expect(f"RCPT TO:<{by_domain.address}>", "550 5.7.1 Sender blocked")
        s.expect(f"RCPT TO:<{by_address.address}>", "250 2.1.5")
