"""The test SMTP peer (tests/smtppeer.py), pinned with stdlib smtplib as its client.

End-to-end tests trust what the peer records and how it answers; these tests make sure that
trust is earned: scripted 4xx/5xx replies, STARTTLS, implicit TLS, AUTH and the record.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from tests.smtppeer import SMTPPeer, Transaction, refusing_port, silent_port

USER, PASSWORD = "relay-user", "relay-secret"
MESSAGE = b"From: a@example.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


@functools.cache
def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def peer() -> Iterator[SMTPPeer]:
    with SMTPPeer() as running:
        yield running


def connect(peer: SMTPPeer) -> smtplib.SMTP:
    client = smtplib.SMTP(peer.host, peer.port, timeout=10)
    client.ehlo("client.example.test")
    return client


def send(peer: SMTPPeer, recipients: list[str] | None = None) -> None:
    with connect(peer) as client:
        client.sendmail("a@example.test", recipients or ["b@example.org"], MESSAGE)


# ---------------------------------------------------------------------------------------------
# The record


def test_records_an_accepted_transaction_exactly(peer: SMTPPeer) -> None:
    data = (
        b"From: a@example.test\r\nSubject: caf\xc3\xa9\r\n\r\n"
        b".a line that starts with a dot\r\n8-bit \xff junk\r\n..two dots\r\n"
    )
    with connect(peer) as client:
        refused = client.sendmail(
            "a@example.test", ["b@example.org", "c@example.org"], data, ["BODY=8BITMIME"]
        )
    assert refused == {}
    [message] = peer.wait_for(1)
    assert message == Transaction(
        mail_from="a@example.test",
        rcpt_tos=("b@example.org", "c@example.org"),
        data=data,  # smtplib dot-stuffed it on the wire; the peer undid that
        reply="250 2.0.0 OK: queued as 1",
        tls=False,
        auth_user=None,
        helo="client.example.test",
        connection=1,
        mail_options=(f"SIZE={len(data)}", "BODY=8BITMIME"),
    )
    assert message.accepted
    assert message.message()["Subject"] == "café"
    assert peer.refused == []


def test_null_reverse_path_is_recorded_as_empty(peer: SMTPPeer) -> None:
    with connect(peer) as client:
        client.sendmail("", ["b@example.org"], MESSAGE)
    [message] = peer.wait_for(1)
    assert message.mail_from == ""


def test_connections_are_counted_and_named(peer: SMTPPeer) -> None:
    with connect(peer) as client:
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
        client.sendmail("a@example.test", ["c@example.org"], MESSAGE)
    send(peer)
    messages = peer.wait_for(3)
    assert [m.connection for m in messages] == [1, 1, 2]
    assert peer.connections == 2


def test_wait_for_blocks_until_a_message_arrives(peer: SMTPPeer) -> None:
    sender = threading.Thread(target=send, args=(peer,))
    sender.start()
    try:
        assert len(peer.wait_for(1, timeout=10)) == 1
    finally:
        sender.join()


@pytest.mark.timeout(30)
def test_wait_for_is_bounded(peer: SMTPPeer) -> None:
    send(peer)
    with pytest.raises(TimeoutError, match="1 of 2 messages accepted"):
        peer.wait_for(2, timeout=0.2)


# ---------------------------------------------------------------------------------------------
# Scripted replies


def test_data_reply_script_then_success(peer: SMTPPeer) -> None:
    peer.data_replies.append("451 4.3.0 Try again later")
    with connect(peer) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
        assert refused.value.smtp_code == 451
        assert refused.value.smtp_error == b"4.3.0 Try again later"
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
    [message] = peer.wait_for(1)
    assert message.reply.startswith("250 ")
    [first] = peer.refused
    assert first.reply == "451 4.3.0 Try again later"
    assert not first.accepted
    assert first.data == MESSAGE


def test_permanent_data_refusal_is_not_accepted(peer: SMTPPeer) -> None:
    peer.data_replies.append("554 5.7.1 Rejected as spam")
    with connect(peer) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
    assert refused.value.smtp_code == 554
    assert peer.messages == []
    assert [t.reply for t in peer.refused] == ["554 5.7.1 Rejected as spam"]


def test_multi_line_reply(peer: SMTPPeer) -> None:
    peer.data_replies.append("550-5.7.1 first line\r\n550 5.7.1 second line")
    with connect(peer) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 first line\n5.7.1 second line"


def test_rcpt_by_address_refuses_that_recipient_every_time(peer: SMTPPeer) -> None:
    peer.rcpt_by_address["Nobody@Example.org"] = "550 5.1.1 No such user"
    for _ in range(2):
        with connect(peer) as client:
            refused = client.sendmail(
                "a@example.test", ["nobody@example.org", "b@example.org"], MESSAGE
            )
        assert refused == {"nobody@example.org": (550, b"5.1.1 No such user")}
    messages = peer.wait_for(2)
    assert [m.rcpt_tos for m in messages] == [("b@example.org",), ("b@example.org",)]


def test_rcpt_replies_are_used_once_in_order(peer: SMTPPeer) -> None:
    peer.rcpt_replies.extend(["450 4.2.0 Greylisted", "452 4.5.3 Too many recipients"])
    with connect(peer) as client:
        client.mail("a@example.test")
        assert client.rcpt("b@example.org")[0] == 450
        assert client.rcpt("c@example.org")[0] == 452
        assert client.rcpt("d@example.org")[0] == 250
    assert not peer.rcpt_replies


def test_mail_reply_421_closes_the_connection(peer: SMTPPeer) -> None:
    peer.mail_replies.append("421 4.3.2 Shutting down")
    client = connect(peer)
    try:
        assert client.docmd("MAIL FROM:<a@example.test>") == (421, b"4.3.2 Shutting down")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    send(peer)  # the next connection is served normally
    assert len(peer.wait_for(1)) == 1


def test_greeting_refusal_then_normal_service(peer: SMTPPeer) -> None:
    peer.greeting_replies.append("554 5.3.2 No service for you")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(peer.host, peer.port, timeout=10)
    assert refused.value.smtp_code == 554
    send(peer)
    assert len(peer.wait_for(1)) == 1
    assert peer.connections == 2


def test_refusing_port_refuses() -> None:
    with refusing_port() as port, pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", port, timeout=5)


def test_silent_port_never_greets() -> None:
    with silent_port() as port, pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP("127.0.0.1", port, timeout=0.3)


# ---------------------------------------------------------------------------------------------
# TLS and AUTH


def test_mx_offers_no_auth(peer: SMTPPeer) -> None:
    with connect(peer) as client:
        assert not client.has_extn("auth")
        assert not client.has_extn("starttls")
        assert client.has_extn("enhancedstatuscodes")
        code, _ = client.docmd("AUTH", "PLAIN " + _plain(USER, PASSWORD))
        assert code == 504


def test_starttls() -> None:
    with SMTPPeer(tls="starttls") as peer, connect(peer) as client:
        assert client.has_extn("starttls")
        client.starttls(context=client_tls())
        client.ehlo("client.example.test")
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
        [message] = peer.wait_for(1)
        assert message.tls
        assert message.helo == "client.example.test"


def test_starttls_peer_also_takes_plain_text_mail() -> None:
    with SMTPPeer(tls="starttls") as peer:
        send(peer)
        [message] = peer.wait_for(1)
        assert not message.tls


def test_implicit_tls(tmp_path: Path) -> None:
    with SMTPPeer(tls="implicit", cert_dir=tmp_path) as peer:
        assert (tmp_path / "peer.crt").is_file()
        with smtplib.SMTP_SSL(peer.host, peer.port, context=client_tls(), timeout=10) as client:
            client.ehlo("client.example.test")
            assert not client.has_extn("starttls")
            client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
        [message] = peer.wait_for(1)
        assert message.tls
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            smtplib.SMTP(peer.host, peer.port, timeout=0.5)  # plain text gets no greeting


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_after_starttls(mechanism: str) -> None:
    with SMTPPeer(tls="starttls", auth=(USER, PASSWORD)) as peer, connect(peer) as client:
        # RFC 4954 §4 / aiosmtpd: AUTH is offered only once TLS is up.
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN " + _plain(USER, PASSWORD))[0] == 538
        client.starttls(context=client_tls())
        client.ehlo("client.example.test")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        client.user, client.password = USER, PASSWORD
        auth = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        assert client.auth(mechanism, auth)[0] == 235
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
        [message] = peer.wait_for(1)
        assert message.tls
        assert message.auth_user == USER


def test_auth_is_required_and_checked() -> None:
    with SMTPPeer(auth=(USER, PASSWORD)) as peer, connect(peer) as client:
        assert client.has_extn("auth")  # plain text relay (a lab smarthost): AUTH at once
        assert client.docmd("MAIL FROM:<a@example.test>") == (
            530,
            b"5.7.0 Authentication required",
        )
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login(USER, "wrong")
        assert failed.value.smtp_code == 535
        client.login(USER, PASSWORD)
        client.sendmail("a@example.test", ["b@example.org"], MESSAGE)
        [message] = peer.wait_for(1)
        assert message.auth_user == USER
        assert not message.tls


# ---------------------------------------------------------------------------------------------
# Start and stop


@pytest.mark.timeout(30)  # stop() waiting for its clients to leave would hang here
def test_stop_closes_open_connections_and_is_idempotent() -> None:
    peer = SMTPPeer(tls="starttls").start()
    plain = connect(peer)
    secure = connect(peer)
    secure.starttls(context=client_tls())
    peer.stop()
    for client in (plain, secure):
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            client.noop()
        client.close()
    peer.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((peer.host, peer.port), timeout=5)


def test_a_stopped_peer_comes_back_on_its_port() -> None:
    peer = SMTPPeer().start()
    with peer:
        send(peer)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(peer.address, timeout=5)
    with peer:  # the same port again, the record kept
        send(peer)
        assert [m.connection for m in peer.wait_for(2)] == [1, 2]


def test_two_peers_share_a_port_on_two_loopback_addresses() -> None:
    # As two MX hosts would: mailgate's [outbound] mx_port is one port for all of them.
    first = SMTPPeer(host="127.0.0.2").start()
    with first, SMTPPeer(host="127.0.0.3", port=first.port, hostname="mx2.peer.test") as second:
        send(first)
        send(second)
        assert len(first.wait_for(1)) == 1
        assert len(second.wait_for(1)) == 1
        with connect(second) as client:
            assert client.ehlo_resp is not None
            assert client.ehlo_resp.startswith(b"mx2.peer.test")


def test_a_taken_port_fails_to_start_cleanly() -> None:
    with SMTPPeer() as first:
        with pytest.raises(OSError, match="in use"):
            SMTPPeer(port=first.port).start()
        send(first)
        assert len(first.wait_for(1)) == 1


def test_aiosmtplib_finds_starttls_and_auth() -> None:
    # aiosmtplib is mailgate's client side: it must see the peer as it sees a real relay.
    with SMTPPeer(tls="starttls", auth=(USER, PASSWORD)) as peer:
        errors, reply = asyncio.run(
            aiosmtplib.send(
                MESSAGE,
                sender="a@example.test",
                recipients=["b@example.org"],
                hostname=peer.host,
                port=peer.port,
                username=USER,
                password=PASSWORD,
                validate_certs=False,
                timeout=10,
            )
        )
        assert errors == {}
        assert reply.startswith("2.0.0 OK")
        [message] = peer.wait_for(1)
        assert message.tls
        assert message.auth_user == USER


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()
