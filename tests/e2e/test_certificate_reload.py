"""Certificates replaced on disk under a running server (a renewal by certbot, say) are served
to new connections on every TLS port without a restart, while connections already open keep
working; a broken new pair is logged and the old certificate kept."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import shutil
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mailgate import tls
from tests.harness import Server, client_tls
from tests.transcript import Transcript

# The server looks every tls.RELOAD_INTERVAL seconds; a change is seen within two of them.
WAIT = 4 * tls.RELOAD_INTERVAL
HOST = "127.0.0.1"


def fingerprint(der: bytes | None) -> str:
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def implicit(port: int) -> str:
    raw = socket.create_connection((HOST, port), timeout=10)
    with client_tls().wrap_socket(raw) as sock:
        return fingerprint(sock.getpeercert(binary_form=True))


def imap_starttls(port: int) -> str:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        sock.sendall(b"a STARTTLS\r\n")
        assert reader.readline().startswith(b"a OK")
        with client_tls().wrap_socket(sock) as secured:
            return fingerprint(secured.getpeercert(binary_form=True))


def smtp_starttls(port: int) -> str:
    with smtplib.SMTP(HOST, port, timeout=10) as smtp:
        smtp.starttls(context=client_tls())
        assert isinstance(smtp.sock, ssl.SSLSocket)
        return fingerprint(smtp.sock.getpeercert(binary_form=True))


def every_port(server: Server) -> dict[str, str]:
    """The fingerprint each TLS port serves a new connection now."""
    return {
        "imaps": implicit(server.imaps),
        "imap": imap_starttls(server.imap),
        "submissions": implicit(server.smtps),
        "submission": smtp_starttls(server.submission),
        "mx": smtp_starttls(server.port("mx")),
        "api": implicit(server.port("api")),
    }


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.2)


def new_pair(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    tls.generate_self_signed(cert, key, "mail.example.test")
    return cert, key


def put_in_place(cert: Path, key: Path, live_cert: Path, live_key: Path) -> None:
    """As a renewal does: each new file renamed over the old one."""
    for source, target in ((key, live_key), (cert, live_cert)):
        staged = target.with_suffix(".new")
        shutil.copyfile(source, staged)
        os.replace(staged, target)


def test_configured_certificate_files_are_reloaded_on_every_port(
    make_server: Callable[..., Server], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old_cert, old_key = new_pair(tmp_path, "old")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    put_in_place(old_cert, old_key, live_cert, live_key)
    server = make_server(tls={"cert": str(live_cert), "key": str(live_key)}, api={"tls": True})
    old = file_fingerprint(old_cert)
    assert set(every_port(server).values()) == {old}
    account = server.account()
    with Transcript.login(server, account) as before:
        new_cert, new_key = new_pair(tmp_path, "new")
        new = file_fingerprint(new_cert)
        put_in_place(new_cert, new_key, live_cert, live_key)
        until(lambda: implicit(server.imaps) == new, "the new certificate on IMAPS")
        assert every_port(server) == dict.fromkeys(every_port(server), new)
        assert server.app.certificate is not None
        assert server.app.certificate.fingerprint.replace(":", "").lower() == new
        # The connection made before the change goes on with its own.
        before.ok("NOOP")
        before.ok("SELECT INBOX")

        # A broken pair: a key that is not the certificate's. Logged, and the last good kept.
        caplog.set_level(logging.ERROR, logger="mailgate.tls")
        broken_cert, _ = new_pair(tmp_path, "broken")
        put_in_place(broken_cert, new_key, live_cert, live_key)
        until(
            lambda: any("does not load" in r.getMessage() for r in caplog.records),
            "the broken pair logged",
        )
        assert set(every_port(server).values()) == {new}
        before.ok("NOOP")


def test_the_generated_certificate_is_reloaded_and_renewed_in_time(
    make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    assert server.app.certificate is not None
    cert_path, key_path = server.app.certificate.cert_path, server.app.certificate.key_path
    first = implicit(server.imaps)
    # Replaced by hand (another instance made it, say): served from the next connections.
    tls.generate_self_signed(cert_path, key_path, "mail.example.test")
    replaced = file_fingerprint(cert_path)
    until(lambda: implicit(server.imaps) == replaced, "the replaced certificate")
    assert replaced != first
    # One that runs out within RENEW_DAYS is renewed while the server runs.
    with monkeypatch.context() as patch:
        patch.setattr(tls, "SELF_SIGNED_DAYS", tls.RENEW_DAYS - 1)
        tls.generate_self_signed(cert_path, key_path, "mail.example.test")
    expiring = file_fingerprint(cert_path)

    def renewed() -> bool:
        served = implicit(server.imaps)
        if served in (replaced, expiring):
            return False
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        return served == file_fingerprint(cert_path) and left.days > tls.RENEW_DAYS

    until(renewed, "the expiring certificate renewed")
