"""mailgate.delivery.dkim: keys, signing, and verification against a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import base64
import datetime
import re
from collections.abc import Iterator

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dnslib import DNSRecord

from mailgate.delivery.dkim import DKIMKey, dns_record, generate_keys, sign, verify, zone_strings
from mailgate.delivery.dns import Resolver
from tests.dnsserver import ZoneServer

DOMAIN = "example.test"

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@other.test>\r\n"
    b"Subject: Quarterly numbers\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <q3@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Received: from somewhere by mx.example.test; Mon, 02 Nov 2026 10:00:01 +0000\r\n"
    b"\r\n" + b"The numbers are in.  Here they are, line by line.\r\n" * 100
)


@pytest.fixture(scope="module")
def keys() -> list[DKIMKey]:
    return generate_keys(datetime.datetime(2026, 11, 2, tzinfo=datetime.UTC))


@pytest.fixture
def zone(keys: list[DKIMKey]) -> Iterator[ZoneServer]:
    with ZoneServer() as server:
        publish(server, DOMAIN, keys)
        yield server


def publish(zone: ZoneServer, domain: str, keys: list[DKIMKey]) -> None:
    for key in keys:
        # As `mailgate domain dns` prints them: one TXT RR, 255-byte character-strings.
        zone.set(f"{key.selector}._domainkey.{domain}", "TXT", [zone_strings(dns_record(key))])


def check(zone: ZoneServer, message: bytes) -> list[tuple[str, str]]:
    async def run() -> list[tuple[str, str]]:
        verdicts = await verify(message, Resolver((zone.address,), timeout=1.0))
        return [(v.result, v.reason) for v in verdicts]

    return asyncio.run(run())


# -- keys and records


def test_keys_are_rsa_2048_and_ed25519_with_dated_distinct_selectors(keys: list[DKIMKey]) -> None:
    rsa_key, ed_key = keys
    assert (rsa_key.algorithm, ed_key.algorithm) == ("rsa-sha256", "ed25519-sha256")
    assert rsa_key.selector.startswith("mg202611r")
    assert ed_key.selector.startswith("mg202611e")
    again = generate_keys(datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC))
    assert {k.selector for k in again}.isdisjoint(k.selector for k in keys)
    assert all(re.fullmatch(r"[a-z0-9-]{1,63}", k.selector) for k in [*keys, *again])


def test_key_storage_forms_are_what_was_promised(keys: list[DKIMKey]) -> None:
    rsa_key, ed_key = keys
    private = serialization.load_pem_private_key(rsa_key.private_key.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert rsa_key.private_key.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(rsa_key.public_key) == spki

    seed = base64.b64decode(ed_key.private_key)
    assert len(seed) == 32
    raw = (
        ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert base64.b64decode(ed_key.public_key) == raw  # RFC 8463 §4: the bare 32-byte key


def test_dns_records_and_their_zone_strings(keys: list[DKIMKey]) -> None:
    rsa_key, ed_key = keys
    assert dns_record(rsa_key) == f"v=DKIM1; k=rsa; p={rsa_key.public_key}"
    assert dns_record(ed_key) == f"v=DKIM1; k=ed25519; p={ed_key.public_key}"
    record = dns_record(rsa_key)
    strings = zone_strings(record)
    assert len(strings) == 2
    assert all(len(s.encode()) <= 255 for s in strings)
    assert "".join(strings) == record
    assert zone_strings(dns_record(ed_key)) == [dns_record(ed_key)]
    assert zone_strings("x" * 510) == ["x" * 255, "x" * 255]


# -- signing


def test_sign_gives_one_relaxed_field_per_key_with_from_oversigned(keys: list[DKIMKey]) -> None:
    fields = sign(MESSAGE, DOMAIN, keys)
    assert fields.endswith(b"\r\n")
    parsed = dkimpy.rfc822_parse(fields + MESSAGE)[0]
    signatures = [value for name, value in parsed if name == b"DKIM-Signature"]
    assert len(signatures) == 2
    for value, key in zip(signatures, keys, strict=True):
        tags = dkimpy.util.parse_tag_value(re.sub(rb"\r\n", b"", value))
        assert tags[b"c"] == b"relaxed/relaxed"
        assert tags[b"a"] == key.algorithm.encode()
        assert tags[b"s"] == key.selector.encode()
        assert tags[b"d"] == DOMAIN.encode()
        signed = [h.strip().lower() for h in tags[b"h"].split(b":")]
        assert signed.count(b"from") == 2  # one From in the message, listed twice
        assert set(signed) == {
            b"from",
            b"to",
            b"subject",
            b"date",
            b"message-id",
            b"mime-version",
            b"content-type",
        }  # only what is present; never Received


def test_sign_then_verify_passes_for_both_algorithms(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE

    async def run() -> None:
        verdicts = await verify(signed, Resolver((zone.address,), timeout=1.0))
        assert [(v.result, v.domain, v.selector, v.algorithm) for v in verdicts] == [
            ("pass", DOMAIN, k.selector, k.algorithm) for k in keys
        ]

    asyncio.run(run())


def test_a_big_message_is_verified_too(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    big = MESSAGE + (b"y" * 76 + b"\r\n") * 3000  # 240 KB: parsed in a worker thread
    assert check(zone, sign(big, DOMAIN, keys) + big) == [("pass", "good signature")] * 2


def test_signatures_survive_refolding_and_whitespace_changes(
    zone: ZoneServer, keys: list[DKIMKey]
) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    relayed = signed.replace(b"Subject: Quarterly numbers", b"Subject:  Quarterly\r\n\tnumbers")
    relayed = relayed.replace(b"line by line.\r\n", b"line  by line. \r\n")
    assert check(zone, relayed) == [("pass", "good signature")] * 2


# -- failures


def test_a_tampered_body_fails(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    tampered = signed.replace(b"The numbers are in.", b"The numbers are up.", 1)
    assert check(zone, tampered) == [("fail", "body hash mismatch")] * 2


def test_a_tampered_signed_header_fails(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    tampered = signed.replace(b"Quarterly numbers", b"Urgent: wire transfer")
    assert check(zone, tampered) == [("fail", "bad signature")] * 2


def test_an_unsigned_header_may_change(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    assert (
        check(zone, signed.replace(b"from somewhere", b"from elsewhere"))
        == [("pass", "good signature")] * 2
    )


def test_an_added_from_breaks_the_signature(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    assert check(zone, signed) == [("pass", "good signature")] * 2
    for forged in (
        b"From: Mallory <ceo@example.test>\r\n" + signed,  # on top
        signed.replace(b"\r\n\r\n", b"\r\nFrom: Mallory <ceo@example.test>\r\n\r\n", 1),  # below
    ):
        assert [result for result, _ in check(zone, forged)] == ["fail", "fail"]


def test_a_missing_key_is_a_permerror(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    zone.delete(f"{keys[1].selector}._domainkey.{DOMAIN}")
    assert check(zone, signed) == [("pass", "good signature"), ("permerror", "key not found")]


def test_a_revoked_key_is_a_permerror(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    zone.set(f"{keys[0].selector}._domainkey.{DOMAIN}", "TXT", ["v=DKIM1; k=rsa; p="])
    assert check(zone, signed)[0] == ("permerror", "key revoked")


def test_a_key_of_the_wrong_type_is_a_permerror(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    # dkimpy would check an rsa-sha256 signature against an Ed25519 key; RFC 6376 §6.1.2 no.
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    zone.set(f"{keys[0].selector}._domainkey.{DOMAIN}", "TXT", [dns_record(keys[1])])
    assert check(zone, signed)[0] == ("permerror", "key type does not match a=")


def test_a_key_answer_too_big_for_udp_comes_over_tcp(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    name = f"{keys[0].selector}._domainkey.{DOMAIN}"
    zone.set(name, "TXT", ["note: " + "x" * 300, zone_strings(dns_record(keys[0]))])
    assert check(zone, sign(MESSAGE, DOMAIN, keys[:1]) + MESSAGE) == [("pass", "good signature")]
    assert zone.queries.count((name, "TXT")) == 2  # truncated on UDP, then TCP


def test_a_dns_timeout_is_a_temperror(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    zone.answering = False
    assert check(zone, signed) == [("temperror", "DNS timeout")] * 2


def test_rsa_sha1_is_not_accepted(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    field = dkimpy.sign(
        MESSAGE,
        keys[0].selector.encode(),
        DOMAIN.encode(),
        keys[0].private_key.encode(),
        signature_algorithm=b"rsa-sha1",
    )
    assert check(zone, field + MESSAGE) == [("policy", "rsa-sha1 is not accepted")]


def test_a_malformed_signature_is_neutral(zone: ZoneServer) -> None:
    garbage = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test\r\n" + MESSAGE
    [(result, reason)] = check(zone, garbage)
    assert result == "neutral"
    assert "missing" in reason


def test_unsigned_mail_has_no_verdicts(zone: ZoneServer) -> None:
    assert check(zone, MESSAGE) == []


def test_every_signature_is_verified(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    # A list re-signs with its own domain on top of the author's two signatures.
    list_keys = generate_keys()
    publish(zone, "lists.other.test", list_keys)
    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    relayed = sign(signed, "lists.other.test", list_keys[:1]) + signed

    async def run() -> None:
        verdicts = await verify(relayed, Resolver((zone.address,), timeout=1.0))
        assert [(v.domain, v.result) for v in verdicts] == [
            ("lists.other.test", "pass"),
            (DOMAIN, "pass"),
            (DOMAIN, "pass"),
        ]

    asyncio.run(run())


# -- interoperability


def test_dkimpys_own_verifier_accepts_our_signatures(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    """Outside mailgate's code path: dkimpy's stock verifier, keys fetched from the zone by a
    plain DNS client over TCP."""

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        answer = DNSRecord.question(name.decode(), "TXT").send(zone.host, zone.port, tcp=True)
        records = DNSRecord.parse(answer).rr
        return b"".join(records[0].rdata.data) if records else None

    signed = sign(MESSAGE, DOMAIN, keys) + MESSAGE
    assert dkimpy.verify(signed, dnsfunc=dnsfunc)  # the first signature: RSA
    assert dkimpy.DKIM(signed).verify(idx=1, dnsfunc=dnsfunc)  # the second: Ed25519
    assert not dkimpy.verify(signed.replace(b"line by line", b"line by lie"), dnsfunc=dnsfunc)
