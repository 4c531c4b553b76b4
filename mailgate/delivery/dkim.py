"""DKIM (RFC 6376) keys, signing and verification, Ed25519 included (RFC 8463), with dkimpy.

Signing is pure CPU work on bytes. Verification checks every DKIM-Signature of a message: its
keys are fetched through the shared async resolver, and dkimpy's synchronous DKIM object does
the rest. dkimpy's own async module needs aiodns (which we do not use), so `verify` drives the
steps that module drives (header prep, key evaluation, signature process) around our lookup.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dkim
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.util import InvalidTagValueList, parse_tag_value

from mailgate.delivery.dns import Resolver, TemporaryDNSError
from mailgate.delivery.offload import Offload

__all__ = [
    "DKIMKey",
    "DKIMVerdict",
    "dns_record",
    "generate_keys",
    "sign",
    "verify",
    "zone_strings",
]

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"

# RFC 6376 §5.4.1 recommends these; signed only where present (an absent one would be signed
# as a null field, which is harmless, but Gmail and others report such signatures as odd).
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)

# RFC 6376 §6.1: a verifier may limit how many signatures it tries (each costs a DNS lookup).
MAX_SIGNATURES = 10

# Parsing the header section of a message this small takes about 0.2 ms, less than a hop to a
# worker thread; bigger messages are parsed off the event loop. The signature checks (body
# canonicalization and RSA/Ed25519, about 1 ms for two signatures on 5 KB, 6 ms on 64 KB)
# always run in a worker thread.
PARSE_INLINE_BYTES = 16 * 1024

_DKIM_SIGNATURE = re.compile(rb"^dkim-signature[ \t]*:", re.I | re.M)


# ---------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True, slots=True)
class DKIMKey:
    """What the store keeps per key."""

    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    # Storage form: PKCS#8 PEM for RSA; base64 of the 32-byte seed for Ed25519 (what dkimpy's
    # signer takes).
    private_key: str
    # Base64 of the DNS p= value (RSA: SubjectPublicKeyInfo DER; Ed25519: the raw 32-byte key,
    # RFC 8463 §4).
    public_key: str


def generate_keys(when: datetime.datetime | None = None) -> list[DKIMKey]:
    """An RSA-2048 and an Ed25519 key with fresh selectors, e.g. mg202611r-1a2b3c and
    mg202611e-1a2b3c: the date says when a key was made, the random part keeps a second
    rotation within the same month from reusing a selector still published (RFC 6376 §3.1)."""
    when = when or datetime.datetime.now(datetime.UTC)
    stem = f"mg{when:%Y%m}"
    suffix = secrets.token_hex(3)
    return [_rsa_key(f"{stem}r-{suffix}"), _ed25519_key(f"{stem}e-{suffix}")]


def _rsa_key(selector: str) -> DKIMKey:
    # RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits, SHOULD use 2048.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DKIMKey(selector, RSA_SHA256, private.decode("ascii"), _b64(public))


def _ed25519_key(selector: str) -> DKIMKey:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return DKIMKey(selector, ED25519_SHA256, _b64(seed), _b64(public))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def dns_record(key: DKIMKey) -> str:
    """The TXT record to publish at <selector>._domainkey.<domain> (RFC 6376 §3.6.1)."""
    kind = "ed25519" if key.algorithm == ED25519_SHA256 else "rsa"
    return f"v=DKIM1; k={kind}; p={key.public_key}"


def zone_strings(record: str) -> list[str]:
    """The record as the ≤255-byte character-strings of one TXT RR (RFC 1035 §3.3.14);
    receivers join them without separators (RFC 6376 §3.6.2.2)."""
    data = record.encode("ascii")
    return [data[i : i + 255].decode("ascii") for i in range(0, len(data), 255)] or [""]


# ---------------------------------------------------------------------------------------------
# Signing


def sign(message: bytes, domain: str, keys: Sequence[DKIMKey]) -> bytes:
    """DKIM-Signature header fields to prepend to `message`, one per key, each ending in CRLF.

    relaxed/relaxed, so that re-folding and whitespace changes on the way do not break it. From
    is listed once more than it occurs (RFC 6376 §8.15): a From added later breaks the
    signature. Pure CPU: the caller runs it in a thread for big messages. ValueError when the
    header cannot be parsed. `domain` is ASCII (IDNs in their A-label form).
    """
    try:
        signer = dkim.DKIM(message, linesep=b"\r\n")
    except dkim.DKIMException as exc:
        raise ValueError(f"cannot sign: {exc}") from None
    include = _headers_to_sign(signer.headers)
    fields = []
    for key in keys:
        private = key.private_key.encode("ascii")
        try:
            fields.append(
                signer.sign(
                    key.selector.encode("ascii"),
                    domain.encode("ascii"),
                    private,
                    signature_algorithm=key.algorithm.encode("ascii"),
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=include,
                )
            )
        except dkim.DKIMException as exc:
            raise ValueError(f"cannot sign with {key.selector}: {exc}") from None
    return b"".join(fields)


def _headers_to_sign(headers: list[list[bytes]]) -> list[bytes]:
    present = [name.lower() for name, _ in headers]
    include: list[bytes] = []
    for name in SIGNED_HEADERS:
        # Every instance is signed (dkimpy picks them bottom-up, RFC 6376 §5.4.2).
        include += [name.encode("ascii")] * present.count(name.encode("ascii"))
    return [*include, b"from"]


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True, slots=True)
class DKIMVerdict:
    """The result for one DKIM-Signature (RFC 8601 §2.7.1).

    `result` is "pass", "fail", "neutral" (a signature too malformed to check), "temperror",
    "permerror" (no usable key), or "policy": RFC 8601's word for a signature that verifies but
    that we must not accept, rsa-sha1 or an RSA key under 1024 bits (RFC 8301 §3.1, §3.2).
    """

    result: str
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    reason: str  # short human text, e.g. "bad signature", "key not found", "DNS timeout"


@dataclass(slots=True)
class _Signature:
    """One DKIM-Signature ready for its key: dkimpy's header-prep output plus where the key is."""

    tags: dict[bytes, bytes]
    include_headers: list[bytes]
    field: tuple[bytes, bytes]
    key_name: str


async def verify(
    message: bytes, resolver: Resolver, offload: Offload | None = None
) -> list[DKIMVerdict]:
    """A verdict for every DKIM-Signature of `message` (the first MAX_SIGNATURES), in order.

    Keys come through `resolver.txt()`; a temporary DNS failure is "temperror", no key record
    "permerror" (RFC 6376 §6.1.2). No signatures: [].
    """
    if _DKIM_SIGNATURE.search(message, 0, _header_length(message)) is None:
        return []
    try:
        checker, prepared = await _parse(message)
    except dkim.DKIMException as exc:  # dkimpy cannot parse the header section at all
        return [DKIMVerdict("permerror", "", "", "", f"malformed header: {_short(exc)}")]
    names = list(dict.fromkeys(p.key_name for p in prepared if isinstance(p, _Signature)))
    found = await asyncio.gather(*(_key_records(resolver, name) for name in names))
    records = dict(zip(names, found, strict=True))
    if offload is not None and offload.wants(len(message)):
        # The worker process parses again: dkimpy's objects do not pickle, bytes do.
        return await offload.run(_verify_with, message, records)
    return await asyncio.to_thread(_check_all, checker, prepared, records)


def _verify_with(
    message: bytes, records: dict[str, list[bytes] | TemporaryDNSError]
) -> list[DKIMVerdict]:
    """Verification given the key records already fetched (runs in the worker process)."""
    checker, prepared = _prepare(message)
    return _check_all(checker, prepared, records)


def _header_length(message: bytes) -> int:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    return len(message) if end < 0 else end


async def _parse(message: bytes) -> tuple[dkim.DKIM, list[_Signature | DKIMVerdict]]:
    if len(message) <= PARSE_INLINE_BYTES:
        return _prepare(message)
    return await asyncio.to_thread(_prepare, message)


def _prepare(message: bytes) -> tuple[dkim.DKIM, list[_Signature | DKIMVerdict]]:
    checker = dkim.DKIM(message)
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    return checker, [_prepare_one(checker, i) for i in range(min(count, MAX_SIGNATURES))]


def _prepare_one(checker: dkim.DKIM, index: int) -> _Signature | DKIMVerdict:
    checker.signature_fields = {}
    try:
        tags, include_headers, fields = checker.verify_headerprep(index)
    except dkim.DKIMException as exc:
        # RFC 8601 §2.7.1: "neutral" is a signature with syntax errors; dkimpy also rejects
        # here an expired x= or a t= in the future (RFC 6376 §3.5).
        return _verdict(checker.signature_fields, "neutral", _short(exc))
    if tags[b"a"] == b"rsa-sha1":
        # dkimpy still accepts rsa-sha1; RFC 8301 §3.1: verifiers MUST NOT consider it valid.
        return _verdict(tags, "policy", "rsa-sha1 is not accepted")
    name = f"{_text(tags[b's'])}._domainkey.{_text(tags[b'd'])}"
    return _Signature(tags, include_headers, fields[index], name)


async def _key_records(resolver: Resolver, name: str) -> list[bytes] | TemporaryDNSError:
    try:
        return await resolver.txt(name)
    except TemporaryDNSError as exc:
        return exc


def _check_all(
    checker: dkim.DKIM,
    prepared: list[_Signature | DKIMVerdict],
    records: dict[str, list[bytes] | TemporaryDNSError],
) -> list[DKIMVerdict]:
    return [
        p if isinstance(p, DKIMVerdict) else _check(checker, p, records[p.key_name])
        for p in prepared
    ]


def _check(
    checker: dkim.DKIM, sig: _Signature, records: list[bytes] | TemporaryDNSError
) -> DKIMVerdict:
    if isinstance(records, TemporaryDNSError):
        reason = "DNS timeout" if "Timeout" in str(records) else "DNS error"
        return _verdict(sig.tags, "temperror", reason)
    key = _usable_key(sig, records)
    if isinstance(key, str):
        return _verdict(sig.tags, "permerror", key)
    checker.pk, checker.keysize, checker.ktag, checker.seqtlsrpt = key
    try:
        good = checker.verify_sig_process(sig.tags, sig.include_headers, sig.field, None)
    except dkim.ValidationError as exc:
        if "body hash" in str(exc):  # dkimpy has no exception type of its own for this
            return _verdict(sig.tags, "fail", "body hash mismatch")
        return _verdict(sig.tags, "permerror", _short(exc))  # e.g. a key for s=tlsrpt only
    except dkim.MessageFormatError as exc:  # e.g. an unknown c= value
        return _verdict(sig.tags, "neutral", _short(exc))
    except dkim.KeyFormatError as exc:
        if "too small" in str(exc):  # RFC 8301 §3.2
            return _verdict(sig.tags, "policy", "key too small")
        return _verdict(sig.tags, "permerror", _short(exc))
    except dkim.DKIMException as exc:
        return _verdict(sig.tags, "permerror", _short(exc))
    except (ValueError, nacl.exceptions.CryptoError):  # PyNaCl: an Ed25519 b= of a wrong length
        good = False
    if good:
        return _verdict(sig.tags, "pass", "good signature")
    return _verdict(sig.tags, "fail", "bad signature")


_Key = tuple[Any, int, bytes, bool]


def _usable_key(sig: _Signature, records: list[bytes]) -> _Key | str:
    """The first key record that fits the signature, or why none does (RFC 6376 §6.1.2)."""
    if not records:
        return "key not found"
    problem = "no usable key"
    for record in records:
        found = _evaluate(sig, record)
        if not isinstance(found, str):
            return found
        problem = found
    return problem


def _evaluate(sig: _Signature, record: bytes) -> _Key | str:
    try:
        tags = parse_tag_value(record)
    except InvalidTagValueList:
        return "bad key record"
    if tags.get(b"p", b"x").strip() == b"":
        return "key revoked"  # RFC 6376 §3.6.1: an empty p= means revoked
    try:
        pk, keysize, ktag, tlsrpt = dkim.evaluate_pk(sig.key_name, record)
    except (dkim.DKIMException, ValueError, TypeError, nacl.exceptions.CryptoError) as exc:
        return f"bad key record: {_short(exc)}"
    if pk is None:  # dkimpy silently drops a key whose s= excludes email
        return "key not for email"
    # dkimpy checks neither of these (RFC 6376 §3.6.1, k= and h=, and §6.1.2 step 6).
    algorithm = sig.tags[b"a"]
    if not algorithm.startswith(ktag + b"-"):
        return "key type does not match a="
    hashes = tags.get(b"h")
    if hashes is not None and algorithm.split(b"-")[-1] not in re.split(rb"\s*:\s*", hashes):
        return "hash not allowed by key"
    return pk, keysize, ktag, tlsrpt


def _verdict(tags: dict[bytes, bytes], result: str, reason: str) -> DKIMVerdict:
    return DKIMVerdict(
        result=result,
        domain=_text(tags.get(b"d", b"")),
        selector=_text(tags.get(b"s", b"")),
        algorithm=_text(tags.get(b"a", b"")),
        reason=reason,
    )


def _text(value: bytes) -> str:
    # Tag values may be folded (RFC 6376 §3.2): drop the whitespace.
    return re.sub(rb"\s+", b"", value).decode("utf-8", "replace")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 80 else text[:77] + "..."
