"""TLS on the four client ports follows Mozilla's "intermediate" profile (issue 19).

993 and 465 speak TLS from the first byte, 143 and 587 after STARTTLS; each is asked with stdlib
clients that offer only what the profile forbids (CBC suites, RSA key exchange, TLS 1.1, the
curves secp521r1 and X448) and must fail the handshake, and with ordinary clients that must
succeed. The MX port keeps a broader set for old servers, never anonymous suites.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import warnings
from collections.abc import Callable

import pytest
from cryptography import x509

from mailgate.tls import SELF_SIGNED_DAYS
from tests.harness import Server, client_tls

CLIENT_PORTS = ["imaps", "submissions", "imap", "submission"]

CBC_SUITES = ":".join(
    (
        "ECDHE-RSA-AES128-SHA256",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA",
        "DHE-RSA-AES128-SHA256",
        "AES128-SHA256",
        "AES128-SHA",
        "AES256-SHA",
    )
)


def _tls12(ciphers: str | None = None) -> ssl.SSLContext:
    ctx = client_tls()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def _read_reply(sock: socket.socket, done: Callable[[bytes], bool]) -> bytes:
    data = b""
    while not done(data):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def _smtp_final(data: bytes) -> bool:
    lines = data.split(b"\r\n")
    return len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" "


def _plain_until_tls(sock: socket.socket, port: str) -> None:
    """The plain-text part of a STARTTLS port, up to the server's go-ahead."""
    if port == "imap":
        _read_reply(sock, lambda d: d.endswith(b"\r\n"))
        sock.sendall(b"t1 STARTTLS\r\n")
        reply = _read_reply(sock, lambda d: b"t1 " in d and d.endswith(b"\r\n"))
        assert b"t1 OK" in reply, reply
    else:  # submission, mx
        _read_reply(sock, _smtp_final)
        sock.sendall(b"EHLO client.example.test\r\n")
        assert b"STARTTLS" in _read_reply(sock, _smtp_final)
        sock.sendall(b"STARTTLS\r\n")
        assert _read_reply(sock, _smtp_final).startswith(b"220")


def handshake(server: Server, port: str, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS connection to `port` (a listener's name) made with `ctx`; ssl.SSLError if refused."""
    sock = socket.create_connection((server.host, server.port(port)), timeout=30)
    try:
        if port in ("imap", "submission", "mx"):
            _plain_until_tls(sock, port)
        return ctx.wrap_socket(sock)
    except BaseException:
        sock.close()
        raise


def refused(server: Server, port: str, ctx: ssl.SSLContext) -> bool:
    try:
        handshake(server, port, ctx).close()
    except (ssl.SSLError, ConnectionResetError):
        return True
    return False


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_an_ordinary_client_gets_tls13(server: Server, port: str) -> None:
    with handshake(server, port, client_tls()) as tls:
        assert tls.version() == "TLSv1.3"
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[0] in {
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        }


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_a_tls12_client_gets_an_aead_suite_with_forward_secrecy(server: Server, port: str) -> None:
    with handshake(server, port, _tls12()) as tls:
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[0].startswith("ECDHE-RSA-")
        assert cipher[0].endswith(("-GCM-SHA256", "-GCM-SHA384", "-CHACHA20-POLY1305"))


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_the_profiles_dhe_suites_are_offered(server: Server, port: str) -> None:
    with handshake(server, port, _tls12("DHE-RSA-AES128-GCM-SHA256")) as tls:
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[0] == "DHE-RSA-AES128-GCM-SHA256"


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_a_cbc_only_client_is_refused(server: Server, port: str) -> None:
    assert refused(server, port, _tls12(CBC_SUITES))


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_rsa_key_exchange_is_refused(server: Server, port: str) -> None:
    assert refused(server, port, _tls12("AES128-GCM-SHA256:AES256-GCM-SHA384"))


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_tls11_is_refused(server: Server, port: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ssl.TLSVersion.TLSv1_1 itself
        ctx = client_tls()
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets OpenSSL 3 offer TLS 1.1 at all
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    assert refused(server, port, ctx)


@pytest.mark.parametrize("port", CLIENT_PORTS)
@pytest.mark.parametrize("curve", ["secp521r1", "X448"])
@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"]
)
def test_curves_outside_the_profile_are_refused(
    server: Server, port: str, curve: str, version: ssl.TLSVersion
) -> None:
    ctx = client_tls()
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers("ECDHE+AESGCM")
    ctx.set_ecdh_curve(curve)  # on OpenSSL 3 the client offers this group and no other
    assert refused(server, port, ctx)


@pytest.mark.parametrize("port", CLIENT_PORTS)
@pytest.mark.parametrize("curve", ["X25519", "prime256v1", "secp384r1"])
def test_the_profiles_curves_are_accepted(server: Server, port: str, curve: str) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_tls()
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_ciphers("ECDHE+AESGCM")
        ctx.set_ecdh_curve(curve)
        with handshake(server, port, ctx) as tls:
            assert tls.version() == version.name.replace("_", ".")


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_the_clients_cipher_order_wins(server: Server, port: str) -> None:
    """The profile has no server preference: the server takes the client's first choice."""
    for first, second in (
        ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256"),
    ):
        with handshake(server, port, _tls12(f"{first}:{second}")) as tls:
            cipher = tls.cipher()
            assert cipher is not None
            assert cipher[0] == first


@pytest.mark.parametrize("port", CLIENT_PORTS)
def test_the_served_certificate_lives_at_most_366_days(server: Server, port: str) -> None:
    with handshake(server, port, client_tls()) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    lifespan = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifespan <= datetime.timedelta(days=SELF_SIGNED_DAYS) <= datetime.timedelta(days=366)


def test_the_mx_keeps_older_suites_but_never_anonymous_ones(server: Server) -> None:
    with handshake(server, "mx", _tls12(CBC_SUITES)) as tls:
        cipher = tls.cipher()
        assert cipher is not None
        assert "CBC" in cipher[0] or cipher[0].endswith(("-SHA", "-SHA256", "-SHA384"))
    anonymous = client_tls()
    anonymous.maximum_version = ssl.TLSVersion.TLSv1_2
    anonymous.set_ciphers("aNULL:eNULL:@SECLEVEL=0")
    assert refused(server, "mx", anonymous)
