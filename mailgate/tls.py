"""Certificates and TLS contexts: Mozilla's "intermediate" server profile on every client port.

Both servers use the same certificate: aiosmtpd through the stdlib `ssl` module and Twisted
through pyOpenSSL. The pyOpenSSL context releases its read/write buffers between records
(MODE_RELEASE_BUFFERS), which is what keeps an idle IMAP connection near 27 KiB.

The client ports (IMAP 993 and 143 after STARTTLS, SMTP 465 and 587 after STARTTLS, and the API
when it serves HTTPS) follow Mozilla's intermediate profile (Server Side TLS guidelines 5.7,
https://ssl-config.mozilla.org/): TLS 1.2 and 1.3 only; for TLS 1.2 the profile's AEAD suites
(ECDHE, and DHE with the RFC 7919 2048-bit group; no CBC, no RSA key exchange); the groups
X25519, P-256 and P-384; the client's cipher order (the profile has no server preference); no
compression; no renegotiation asked for by the client; a self-signed certificate that lives at
most 366 days. The MX port takes mail from servers of every age, so it keeps OpenSSL's default
suites (still TLS 1.2 or newer, never anonymous, export or NULL ones).

TLSContexts reloads the certificate when its files change, for new connections on every port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import lib as _openssl_lib
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from mailgate.config import ConfigError, Settings

log = logging.getLogger(__name__)

# Seconds between looks at the certificate files for a change (a renewal by certbot, say).
RELOAD_INTERVAL = 5.0

# The generated certificate's whole life (not_before to not_after): the profile's maximum
# (maximum_certificate_lifespan 366). It is replaced at start-up when fewer than RENEW_DAYS remain.
SELF_SIGNED_DAYS = 366
RENEW_DAYS = 30

# Mozilla intermediate, TLS 1.2 (OpenSSL names, in the profile's order). TLS 1.3 uses OpenSSL's
# default suites, which are the profile's three (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305).
INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
INTERMEDIATE_GROUPS = "X25519:prime256v1:secp384r1"
# The MX port: whatever OpenSSL offers by default, minus anything without authentication or
# encryption, or weakened for export.
MX_CIPHERS = "DEFAULT:!aNULL:!eNULL:!EXPORT:!DES:!RC4:!MD5"

# RFC 7919's ffdhe2048 group, the profile's DH parameters for the DHE suites.
FFDHE2048_PEM = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


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
    not_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=SELF_SIGNED_DAYS))
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
    """Whether the generated certificate on disk may serve on: it names `hostname`, has more
    than RENEW_DAYS left, and lives no longer than the profile allows (older versions of
    mailgate made 825-day ones)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc - now < datetime.timedelta(days=RENEW_DAYS):
        return False
    if cert.not_valid_after_utc - cert.not_valid_before_utc > datetime.timedelta(
        days=SELF_SIGNED_DAYS
    ):
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return hostname in names


def _fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@contextlib.contextmanager
def _dh_params_file() -> Iterator[str]:
    """FFDHE2048_PEM in a file for as long as a context loads it (both APIs read only files)."""
    with tempfile.NamedTemporaryFile(prefix="mailgate-dh-", suffix=".pem") as fh:
        fh.write(FFDHE2048_PEM)
        fh.flush()
        yield fh.name


def server_ssl_context(cert: Certificate, *, mx: bool = False) -> ssl.SSLContext:
    """A stdlib server context (for the asyncio/aiosmtpd listeners and the API).

    The client ports get Mozilla's intermediate profile; `mx=True` gives the MX port's broader
    set (see the module's docstring).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if mx:
        ctx.set_ciphers(MX_CIPHERS)
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE  # the stdlib sets it; the profile does not
        ctx.set_ciphers(INTERMEDIATE_CIPHERS)
        _set_stdlib_groups(ctx, INTERMEDIATE_GROUPS)
        with _dh_params_file() as path:
            ctx.load_dh_params(path)
    try:
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[tls] key: does not load with [tls] cert ({exc})") from None
    return ctx


_SSL_CTRL_SET_GROUPS_LIST = 92  # OpenSSL's SSL_CTX_set1_groups_list is this SSL_CTX_ctrl


def _set_stdlib_groups(ctx: ssl.SSLContext, groups: str) -> None:
    """Limit a stdlib context's key-exchange groups to `groups` (colon-separated).

    Python before 3.15 has only set_ecdh_curve(), which sets one group. So this calls OpenSSL's
    SSL_CTX_set1_groups_list on the context's SSL_CTX: the pointer right after the object header
    (the layout of _ssl's PySSLContext since 3.7), used only once SSL_CTX_get_options on it
    answers what the context's own `options` says. Where that does not hold, the context gets
    the one group P-256, which is still within the profile.
    """
    set_groups = getattr(ctx, "set_groups", None)
    if set_groups is not None:  # Python 3.15+
        set_groups(groups)
        return
    try:
        import _ssl

        libssl = ctypes.CDLL(_ssl.__file__)
        get_options = libssl.SSL_CTX_get_options
        get_options.argtypes = [ctypes.c_void_p]
        get_options.restype = ctypes.c_uint64
        ctrl = libssl.SSL_CTX_ctrl
        ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        ctrl.restype = ctypes.c_long
        pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if pointer and get_options(pointer) == ctx.options:
            names = ctypes.create_string_buffer(groups.encode())
            if ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.cast(names, ctypes.c_void_p)):
                return
    except (AttributeError, OSError):
        pass
    log.warning("TLS: cannot set the groups %s on the SMTP listeners; using P-256 only", groups)
    ctx.set_ecdh_curve("prime256v1")


@implementer(IOpenSSLContextFactory)
class OpenSSLContextFactory:
    """The object Twisted's listenSSL/startTLS ask for: one shared pyOpenSSL context."""

    def __init__(self, cert: Certificate) -> None:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        ctx.set_cipher_list(INTERMEDIATE_CIPHERS.encode())
        # pyOpenSSL has only set_tmp_ecdh (one curve); its binding of SSL_CTX_set1_curves_list
        # (the older name of set1_groups_list) sets the list.
        if not _openssl_lib.SSL_CTX_set1_curves_list(
            ctx._context,
            INTERMEDIATE_GROUPS.encode(),
        ):
            raise RuntimeError(f"OpenSSL refused the groups {INTERMEDIATE_GROUPS}")
        with _dh_params_file() as path:
            ctx.load_tmp_dh(path.encode())
        try:
            ctx.use_certificate_chain_file(str(cert.cert_path))
            ctx.use_privatekey_file(str(cert.key_path))
            ctx.check_privatekey()
        except SSL.Error as exc:
            raise ConfigError(f"[tls] key: does not load with [tls] cert ({exc})") from None
        self._context = ctx

    def getContext(self) -> SSL.Context:
        return self._context


# What tells a changed file: its identity (a renewal may put a new file, or a new symlink
# target, in place) and when and how it was last written.
Stamp = tuple[tuple[int, int, int, int], ...]


def _stamp(cert: Certificate) -> Stamp | None:
    try:
        found = [os.stat(path) for path in (cert.cert_path, cert.key_path)]
    except OSError:
        return None
    return tuple((s.st_dev, s.st_ino, s.st_mtime_ns, s.st_size) for s in found)


class _Contexts:
    """One certificate's contexts: the client ports', the MX port's and Twisted's."""

    def __init__(self, cert: Certificate) -> None:
        self.certificate = cert
        self.client = server_ssl_context(cert)
        self.mx = server_ssl_context(cert, mx=True)
        self.openssl = OpenSSLContextFactory(cert).getContext()


class TLSContexts:
    """The TLS contexts every listener uses, reloaded when the certificate files change.

    Listeners keep the contexts they were given first. Each new stdlib connection switches to
    the current certificate's context during its handshake (the servername callback, which
    OpenSSL calls for every ClientHello, with SNI or without), and Twisted asks `factory` for
    a context per connection; connections already open keep the one they started with. A new
    pair that does not load is logged and the old one kept; the generated certificate is also
    renewed here when fewer than RENEW_DAYS remain, not only at start-up.
    """

    def __init__(self, settings: Settings, cert: Certificate) -> None:
        self.settings = settings
        self._current = _Contexts(cert)
        self._stamp = _stamp(cert)
        self.client = self._current.client
        self.mx = self._current.mx
        self.client.sni_callback = self._switch(lambda c: c.client)
        self.mx.sni_callback = self._switch(lambda c: c.mx)
        self.factory = _CurrentContext(self)
        self.on_reload: Callable[[Certificate], None] | None = None
        # Whether this process renews the generated certificate: of several worker processes
        # one does (two writing the pair at once could leave one's key with the other's
        # certificate); the others load the new pair when its files change.
        self.renews = True

    @property
    def certificate(self) -> Certificate:
        return self._current.certificate

    @property
    def openssl(self) -> SSL.Context:
        return self._current.openssl

    def _switch(
        self, pick: Callable[[_Contexts], ssl.SSLContext]
    ) -> Callable[[ssl.SSLObject | ssl.SSLSocket, str | None, ssl.SSLContext], None]:
        def callback(
            conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
        ) -> None:
            current = pick(self._current)
            if current is not ctx:
                conn.context = current

        return callback

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        """Look at the files every `interval` seconds, off the event loop; swap on a change."""
        while True:
            await asyncio.sleep(interval)
            try:
                fresh = await asyncio.to_thread(self._load_if_changed)
            except Exception:  # a reload must never end the watch
                log.exception("TLS: checking the certificate files failed")
                continue
            if fresh is not None:
                self._current = fresh
                log.info(
                    "TLS: loaded the new certificate %s (sha256 %s) for new connections",
                    fresh.certificate.cert_path,
                    fresh.certificate.fingerprint,
                )
                if self.on_reload is not None:
                    self.on_reload(fresh.certificate)

    def _load_if_changed(self) -> _Contexts | None:
        cert = self._current.certificate
        if not self.settings.tls.cert and self.renews:
            try:
                cert = ensure_certificate(self.settings)  # renews it when it runs out
            except ConfigError as exc:
                log.error("TLS: cannot renew the generated certificate: %s", exc)
        stamp = _stamp(cert)
        if stamp is None or stamp == self._stamp:
            return None
        # Tried once per change: a pair caught half-written is tried again once it is whole.
        self._stamp = stamp
        try:
            der = _load_cert_der(cert.cert_path, "[tls] cert")
            return _Contexts(replace(cert, fingerprint=_fingerprint(der), generated=False))
        except (ConfigError, RuntimeError, OSError, ssl.SSLError, SSL.Error) as exc:
            log.error(
                "TLS: the changed certificate %s does not load, still serving the old one: %s",
                cert.cert_path,
                exc,
            )
            return None


@implementer(IOpenSSLContextFactory)
class _CurrentContext:
    """For Twisted's listenSSL and startTLS, which ask for a context per connection."""

    def __init__(self, contexts: TLSContexts) -> None:
        self._contexts = contexts

    def getContext(self) -> SSL.Context:
        return self._contexts.openssl
