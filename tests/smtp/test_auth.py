"""SMTP AUTH: implicit TLS on the submissions port, PLAIN and LOGIN with address + API key,
535 5.7.8 for bad credentials, and no MAIL, RCPT or DATA before AUTH."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

from tests.conftest import make_message
from tests.harness import Account, Server, client_tls, unique_address
from tests.smtp.helpers import SMTPSession, b64, plain, smtp_login, wait_closed


def test_implicit_tls_port_greets_inside_tls(server: Server) -> None:
    with SMTPSession.connect(server) as s:
        assert s.greeting.line == "220 mail.example.test ESMTP mailgate"
        extensions = s.ehlo()
        assert "AUTH LOGIN PLAIN" in extensions
        # TLS is already in place: nothing to upgrade.
        assert "STARTTLS" not in extensions
        assert "ENHANCEDSTATUSCODES" in extensions


def test_implicit_tls_port_says_nothing_in_plain_text(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.smtps), timeout=10) as raw:
        raw.sendall(b"EHLO plain.example.test\r\n")
        received = b""
        raw.settimeout(10)
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except (ConnectionError, TimeoutError):
            pass
    # The server waited for a TLS ClientHello and hung up on text: no SMTP was spoken.
    assert b"220" not in received
    assert b"250" not in received


def test_auth_plain_with_initial_response(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.expect(f"AUTH PLAIN {plain(account.address, account.key)}", "235 2.7.0")


def test_auth_plain_with_challenge(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        assert s.cmd("AUTH PLAIN").line == "334 "
        s.expect(plain(account.address, account.key), "235 2.7.0")


def test_auth_login_with_challenges(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        assert s.cmd("AUTH LOGIN").code == 334
        assert s.cmd(b64(account.address)).code == 334
        s.expect(b64(account.key), "235 2.7.0")


def test_auth_login_with_initial_username(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        assert s.cmd(f"AUTH LOGIN {b64(account.address)}").code == 334
        s.expect(b64(account.key), "235 2.7.0")


@pytest.mark.parametrize("method", ["PLAIN", "LOGIN"])
def test_smtplib_login_with_each_mechanism(
    server: Server, account: Account, other: Account, method: str
) -> None:
    with smtp_login(server) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = account.address, account.key
        code, _ = smtp.auth(method, getattr(smtp, f"auth_{method.lower()}"))
        assert code == 235
        assert (
            smtp.sendmail(
                account.address, [other.address], make_message(account.address, other.address)
            )
            == {}
        )


def test_address_is_case_insensitive(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.expect(f"AUTH PLAIN {plain(account.address.upper(), account.key)}", "235 2.7.0")
        s.expect(f"MAIL FROM:<{account.address.upper()}>", "250 2.1.0")


@pytest.mark.parametrize(
    "credentials",
    ["wrong key", "other inbox's key", "unknown address", "malformed key", "empty password"],
)
def test_failed_auth_is_535(
    server: Server, account: Account, other: Account, credentials: str
) -> None:
    user, password = {
        "wrong key": (account.address, account.key[:-4] + "AAAA"),
        "other inbox's key": (account.address, other.key),
        "unknown address": (unique_address("ghost"), account.key),
        "malformed key": (account.address, "not-a-key"),
        "empty password": (account.address, ""),
    }[credentials]
    with SMTPSession.connect(server) as s:
        s.ehlo()
        reply = s.expect(f"AUTH PLAIN {plain(user, password)}", "535 5.7.8")
        assert reply.has_enhanced_code()
        # The session goes on: the right credentials still work after a failure.
        s.login(account)


def test_failed_auth_through_smtplib(server: Server, account: Account) -> None:
    with smtp_login(server) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            smtp.login(account.address, "mgk_nope_nope")
        assert failure.value.smtp_code == 535
        assert failure.value.smtp_error.startswith(b"5.7.8")


def test_auth_login_with_wrong_key_is_535(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.cmd("AUTH LOGIN")
        s.cmd(b64(account.address))
        s.expect(b64("mgk_0000_wrong"), "535 5.7.8")


def test_plain_authzid_must_be_the_user(server: Server, account: Account, other: Account) -> None:
    # RFC 4616: authorizing as someone else is not something an API key grants.
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.expect(
            f"AUTH PLAIN {plain(account.address, account.key, authzid=other.address)}", "535 5.7.8"
        )
        s.expect(
            f"AUTH PLAIN {plain(account.address, account.key, authzid=account.address)}",
            "235 2.7.0",
        )


def test_auth_cancelled_with_star(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        assert s.cmd("AUTH LOGIN").code == 334
        s.expect("*", "501 5.7.0")
        s.login(account)


def test_second_auth_is_refused(server: Server, account: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"AUTH PLAIN {plain(account.address, account.key)}", "503 5.5.1")


def test_unknown_mechanism(server: Server) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.expect("AUTH CRAM-MD5", "504 5.5.4")
        s.expect("AUTH", "501 5.5.4")


def test_auth_needs_ehlo_first(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.expect(f"AUTH PLAIN {plain(account.address, account.key)}", "503 5.5.1")


@pytest.mark.parametrize(
    "command", ["MAIL FROM:<{me}>", "RCPT TO:<{me}>", "DATA", "VRFY <{me}>", "HELP"]
)
def test_commands_before_auth_get_530(server: Server, account: Account, command: str) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        reply = s.expect(command.format(me=account.address), "530 5.7.0")
        assert reply.has_enhanced_code()


def test_smtplib_send_without_login_is_refused(
    server: Server, account: Account, other: Account
) -> None:
    with smtp_login(server) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail(
                account.address, [other.address], make_message(account.address, other.address)
            )
        assert refused.value.smtp_code == 530
        assert refused.value.smtp_error.startswith(b"5.7.0")


def test_quit_says_bye_and_closes(server: Server, account: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect("QUIT", "221 2.0.0")
        assert s.closed()


def test_tls_client_with_verification_trusts_the_generated_certificate(server: Server) -> None:
    """A client that verifies against the server's own certificate (what users are told to do
    with the self-signed one) completes the handshake for the configured host name."""
    assert server.app.certificate is not None
    context = client_tls()
    context.load_verify_locations(cafile=str(server.app.certificate.cert_path))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    with (
        socket.create_connection(("127.0.0.1", server.smtps), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="mail.example.test") as verified,
    ):
        verified.settimeout(10)
        assert verified.recv(100).startswith(b"220 ")
        verified.sendall(b"QUIT\r\n")
        assert wait_closed(verified)
