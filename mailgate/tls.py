"""Certificates: load the configured pair, or generate a self-signed one on first start.

Both servers use the same certificate: aiosmtpd through the stdlib `ssl` module and Twisted
through pyOpenSSL. The pyOpenSSL context releases its read/write buffers between records
(MODE_RELEASE_BUFFERS), which is what keeps an idle IMAP connection near 27 KiB.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from mailgate.config import ConfigError, Settings

SELF_SIGNED_DAYS = 825


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex
    generated: bool  # True when this start created it


def ensure_certificate(settings: Settings) -> Certificate:
    """The configured certificate, or the self-signed one in <data_dir>/certs (made if needed)."""
    cert, key = settings.tls.cert, settings.tls.key
    if cert or key:
        if not cert:
            raise ConfigError("[tls] cert: must be set when [tls] key is set")
        if not key:
            raise ConfigError("[tls] key: must be set when [tls] cert is set")
        cert_path, key_path = Path(cert), Path(key)
        for name, path in (("cert", cert_path), ("key", key_path)):
            if not path.is_file():
                raise ConfigError(f"[tls] {name}: no such file: {path}")
        der = _load_cert_der(cert_path, "[tls] cert")
        return Certificate(cert_path, key_path, _fingerprint(der), generated=False)

    directory = settings.data_path / "certs"
    cert_path, key_path = directory / "selfsigned.crt", directory / "selfsigned.key"
    hostname = settings.server.hostname
    if cert_path.is_file() and key_path.is_file() and _covers(cert_path, hostname):
        return Certificate(
            cert_path, key_path, _fingerprint(_load_cert_der(cert_path, "certificate")), False
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"[server] data_dir: cannot create {directory}: {exc.strerror}") from None
    der = generate_self_signed(cert_path, key_path, hostname)
    return Certificate(cert_path, key_path, _fingerprint(der), generated=True)


def generate_self_signed(cert_path: Path, key_path: Path, hostname: str) -> bytes:
    """Write a new RSA-2048 self-signed certificate for `hostname`; returns its DER bytes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname != "localhost":
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            alt_names.append(x509.DNSName(hostname))
    alt_names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key is readable by the server's user only, from the moment it exists.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.DER)


def _load_cert_der(path: Path, what: str) -> bytes:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: {path} is not a readable PEM certificate ({exc})") from None


def _covers(cert_path: Path, hostname: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return hostname in names


def _fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def server_ssl_context(cert: Certificate) -> ssl.SSLContext:
    """A stdlib server context (for the asyncio/aiosmtpd listeners)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[tls] key: does not load with [tls] cert ({exc})") from None
    return ctx


@implementer(IOpenSSLContextFactory)
class OpenSSLContextFactory:
    """The object Twisted's listenSSL/startTLS ask for: one shared pyOpenSSL context."""

    def __init__(self, cert: Certificate) -> None:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        try:
            ctx.use_certificate_chain_file(str(cert.cert_path))
            ctx.use_privatekey_file(str(cert.key_path))
            ctx.check_privatekey()
        except SSL.Error as exc:
            raise ConfigError(f"[tls] key: does not load with [tls] cert ({exc})") from None
        self._context = ctx

    def getContext(self) -> SSL.Context:
        return self._context
