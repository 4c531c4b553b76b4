"""mailgate.delivery.verdicts: SPF, DMARC and Authentication-Results, against a real DNS server
on loopback (tests.dnsserver.ZoneServer); no mocked resolver."""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import authres
import pytest

from mailgate.delivery.dkim import DKIMKey, DKIMVerdict, dns_record, generate_keys, sign
from mailgate.delivery.dns import Resolver
from mailgate.delivery.verdicts import (
    DMARCVerdict,
    SPFVerdict,
    Verdict,
    authentication_results,
    check_dmarc,
    check_spf,
    evaluate,
    remove_own_authentication_results,
)
from tests.dnsserver import ZoneServer

T = TypeVar("T")

GOOD_IP = "192.0.2.10"  # in example.test's include:
MX_IP = "198.51.100.7"  # example.test's MX host
SOFT_IP = "192.0.2.99"
STRANGER = "203.0.113.66"


@pytest.fixture(scope="module")
def keys() -> list[DKIMKey]:
    return generate_keys(datetime.datetime(2026, 11, 2, tzinfo=datetime.UTC))


@pytest.fixture
def zone(keys: list[DKIMKey]) -> Iterator[ZoneServer]:
    with ZoneServer() as server:
        server.set("example.test", "TXT", ["v=spf1 include:_spf.example.test mx -all"])
        server.set("_spf.example.test", "TXT", ["v=spf1 ip4:192.0.2.0/28 -all"])
        server.set("example.test", "MX", ["10 mx.example.test"])
        server.set("mx.example.test", "A", [MX_IP])
        server.set("mx.example.test", "TXT", ["v=spf1 a -all"])  # its HELO identity
        server.set("soft.test", "TXT", [f"v=spf1 ip4:{GOOD_IP} ~all"])
        server.set("neutral.test", "TXT", ["v=spf1 ?all"])
        server.set("broken.test", "TXT", ["v=spf1 ip4:192.0.2.0/28 frobnicate -all"])
        server.set("nospf.test", "A", ["192.0.2.200"])
        for key in keys:
            server.set(f"{key.selector}._domainkey.example.test", "TXT", [dns_record(key)])
        yield server


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def resolver(zone: ZoneServer) -> Resolver:
    # Short where a test makes the zone silent, to see the timeout; generous otherwise, so that a
    # loaded machine's slow answer is not taken for one.
    return Resolver((zone.address,), timeout=10.0 if zone.answering else 1.0)


def spf(zone: ZoneServer, ip: str, mail_from: str, helo: str = "mx.other.test") -> SPFVerdict:
    return run(check_spf(resolver(zone), ip=ip, mail_from=mail_from, helo=helo))


# -- SPF (RFC 7208)


@pytest.mark.parametrize(
    ("ip", "mail_from", "result"),
    [
        (GOOD_IP, "alice@example.test", "pass"),  # through include:
        (MX_IP, "alice@example.test", "pass"),  # through mx
        (STRANGER, "alice@example.test", "fail"),
        (STRANGER, "bob@soft.test", "softfail"),
        (GOOD_IP, "bob@soft.test", "pass"),
        (STRANGER, "carol@neutral.test", "neutral"),
        (STRANGER, "dave@nospf.test", "none"),
        (STRANGER, "erin@nowhere.test", "none"),  # NXDOMAIN
        (STRANGER, "frank@broken.test", "permerror"),
    ],
)
def test_spf_on_mail_from(zone: ZoneServer, ip: str, mail_from: str, result: str) -> None:
    verdict = spf(zone, ip, mail_from)
    assert verdict.result == result, verdict
    assert verdict.scope == "mfrom"
    assert verdict.domain == mail_from.partition("@")[2]


@pytest.mark.parametrize(("ip", "result"), [(MX_IP, "pass"), (STRANGER, "fail")])
def test_spf_for_the_null_sender_checks_helo(zone: ZoneServer, ip: str, result: str) -> None:
    verdict = spf(zone, ip, "", helo="mx.example.test")
    assert (verdict.result, verdict.scope, verdict.domain) == (result, "helo", "mx.example.test")


def test_spf_for_a_helo_that_is_no_domain_is_none(zone: ZoneServer) -> None:
    verdict = spf(zone, STRANGER, "", helo="[203.0.113.66]")
    assert (verdict.result, verdict.scope) == ("none", "helo")


def test_spf_dns_timeout_is_a_temperror(zone: ZoneServer) -> None:
    zone.answering = False
    assert spf(zone, GOOD_IP, "alice@example.test").result == "temperror"
    assert spf(zone, MX_IP, "", helo="mx.example.test").result == "temperror"


def test_spf_checks_use_each_servers_own_resolver_at_once(zone: ZoneServer) -> None:
    """Two servers in one process, two zones saying opposite things about one domain."""
    with ZoneServer() as elsewhere:
        elsewhere.set("example.test", "TXT", [f"v=spf1 ip4:{STRANGER} -all"])

        async def both() -> list[str]:
            checks = [
                check_spf(resolver(z), ip=STRANGER, mail_from="a@example.test", helo="h.test")
                for _ in range(5)
                for z in (zone, elsewhere)
            ]
            return [v.result for v in await asyncio.gather(*checks)]

        assert run(both()) == ["fail", "pass"] * 5


# -- DMARC (RFC 7489)


def spf_verdict(result: str, domain: str, scope: str = "mfrom") -> SPFVerdict:
    return SPFVerdict(result, domain, scope, "")


def dkim_verdict(result: str, domain: str) -> DKIMVerdict:
    return DKIMVerdict(result, domain, "sel", "rsa-sha256", "")


def dmarc(
    zone: ZoneServer,
    from_domain: str,
    spf: SPFVerdict,
    dkim: list[DKIMVerdict],
    rng: random.Random | None = None,
) -> DMARCVerdict:
    return run(check_dmarc(resolver(zone), from_domain=from_domain, spf=spf, dkim=dkim, rng=rng))


NO_SPF = spf_verdict("none", "bounces.elsewhere.test")


def test_dmarc_passes_with_aligned_dkim(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    verdict = dmarc(zone, "example.test", NO_SPF, [dkim_verdict("pass", "example.test")])
    assert verdict == DMARCVerdict("pass", "example.test", "reject", True, False)


def test_dmarc_passes_with_aligned_spf(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    verdict = dmarc(zone, "example.test", spf_verdict("pass", "example.test"), [])
    assert verdict == DMARCVerdict("pass", "example.test", "reject", False, True)


def test_dmarc_ignores_passes_that_do_not_align(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    verdict = dmarc(
        zone,
        "example.test",
        spf_verdict("pass", "elsewhere.test"),
        [dkim_verdict("pass", "elsewhere.test"), dkim_verdict("fail", "example.test")],
    )
    assert verdict == DMARCVerdict("fail", "example.test", "reject", False, False)


@pytest.mark.parametrize(("mode", "result"), [("r", "pass"), ("s", "fail")])
def test_dmarc_relaxed_and_strict_alignment(zone: ZoneServer, mode: str, result: str) -> None:
    zone.set("_dmarc.news.example.test", "TXT", [f"v=DMARC1; p=reject; adkim={mode}; aspf={mode}"])
    # Signed by, and bounced to, the parent and a sibling: same organizational domain.
    via_dkim = dmarc(zone, "news.example.test", NO_SPF, [dkim_verdict("pass", "example.test")])
    via_spf = dmarc(zone, "news.example.test", spf_verdict("pass", "bounce.example.test"), [])
    assert (via_dkim.result, via_spf.result) == (result, result)
    exact = dmarc(zone, "news.example.test", NO_SPF, [dkim_verdict("pass", "News.Example.Test")])
    assert exact.result == "pass"


def test_relaxed_alignment_needs_the_same_organizational_domain(zone: ZoneServer) -> None:
    # The `dmarc` package alone would align d=co.uk with example.co.uk (a parent domain).
    zone.set("_dmarc.example.co.uk", "TXT", ["v=DMARC1; p=reject"])
    verdict = dmarc(zone, "shop.example.co.uk", NO_SPF, [dkim_verdict("pass", "co.uk")])
    assert (verdict.result, verdict.dkim_aligned) == ("fail", False)
    sibling = dmarc(
        zone, "shop.example.co.uk", NO_SPF, [dkim_verdict("pass", "mail.example.co.uk")]
    )
    assert sibling.result == "pass"


@pytest.mark.parametrize("policy", ["reject", "quarantine", "none"])
def test_dmarc_fail_carries_the_policy(zone: ZoneServer, policy: str) -> None:
    zone.set("_dmarc.example.test", "TXT", [f"v=DMARC1; p={policy}; rua=mailto:d@example.test"])
    verdict = dmarc(zone, "example.test", spf_verdict("fail", "example.test"), [])
    assert (verdict.result, verdict.policy) == ("fail", policy)


def test_dmarc_sp_applies_to_subdomains_through_the_organizational_record(
    zone: ZoneServer,
) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject; sp=quarantine"])
    failing = spf_verdict("fail", "elsewhere.test")
    assert dmarc(zone, "example.test", failing, []).policy == "reject"
    sub = dmarc(zone, "deep.news.example.test", failing, [])
    assert (sub.result, sub.domain, sub.policy) == ("fail", "deep.news.example.test", "quarantine")
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])  # no sp=: p= applies
    assert dmarc(zone, "news.example.test", failing, []).policy == "reject"


def test_a_subdomains_own_record_wins(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject; sp=reject"])
    zone.set("_dmarc.news.example.test", "TXT", ["v=DMARC1; p=none"])
    verdict = dmarc(zone, "news.example.test", spf_verdict("fail", "x.test"), [])
    assert (verdict.result, verdict.policy) == ("fail", "none")


def test_no_dmarc_record_is_none(zone: ZoneServer) -> None:
    zone.set("nodmarc.test", "TXT", ["v=spf1 -all", "google-site-verification=abc"])
    verdict = dmarc(zone, "mail.nodmarc.test", spf_verdict("fail", "x.test"), [])
    assert verdict == DMARCVerdict("none", "mail.nodmarc.test", None, False, False)


@pytest.mark.parametrize(
    "records",
    [
        ["v=DMARC1; p=reject", "v=DMARC1; p=none"],  # two records (§6.6.3)
        ["v=DMARC1; adkim=s"],  # no p=
        ["v=DMARC1; p=discard"],  # no valid p=
    ],
)
def test_a_broken_dmarc_record_is_a_permerror(zone: ZoneServer, records: list[str]) -> None:
    zone.set("_dmarc.example.test", "TXT", records)
    verdict = dmarc(zone, "example.test", spf_verdict("pass", "example.test"), [])
    assert (verdict.result, verdict.policy) == ("permerror", None)


def test_other_txt_records_beside_dmarc_are_ignored(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["some note", "v=DMARC1; p=quarantine; pct=abc"])
    verdict = dmarc(zone, "example.test", spf_verdict("fail", "example.test"), [])
    assert (verdict.result, verdict.policy) == ("fail", "quarantine")  # a bad pct= means 100


def test_dmarc_record_timeout_is_a_temperror(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    zone.answering = False
    verdict = dmarc(zone, "example.test", NO_SPF, [dkim_verdict("pass", "example.test")])
    assert (verdict.result, verdict.policy) == ("temperror", None)


def test_an_aligned_temperror_makes_a_fail_a_temperror(zone: ZoneServer) -> None:
    # The caller answers 451 where the policy would have rejected: policy stays known.
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    verdict = dmarc(zone, "example.test", NO_SPF, [dkim_verdict("temperror", "example.test")])
    assert (verdict.result, verdict.policy) == ("temperror", "reject")
    unrelated = dmarc(zone, "example.test", NO_SPF, [dkim_verdict("temperror", "other.test")])
    assert unrelated.result == "fail"


def test_dmarc_pct_samples_failing_mail(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject; pct=30"])
    rng = random.Random(7)
    policies = [
        dmarc(zone, "example.test", spf_verdict("fail", "x.test"), [], rng).policy
        for _ in range(40)
    ]
    expected_rng = random.Random(7)
    assert policies == [
        "reject" if expected_rng.randrange(100) < 30 else "quarantine" for _ in range(40)
    ]
    assert 0 < policies.count("reject") < 40

    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=quarantine; pct=0"])
    sampled_out = dmarc(zone, "example.test", spf_verdict("fail", "x.test"), [], rng)
    assert (sampled_out.result, sampled_out.policy) == ("fail", "none")


# -- evaluate: all three for one message


def message(from_: str = "Alice <alice@example.test>") -> bytes:
    return (
        f"From: {from_}\r\nTo: bob@other.test\r\nSubject: Hello\r\n"
        "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n"
        "Hello there.\r\n"
    ).encode()


def test_evaluate_a_signed_message_from_an_authorized_host(
    zone: ZoneServer, keys: list[DKIMKey]
) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    signed = sign(message(), "example.test", keys) + message()
    verdict = run(
        evaluate(
            resolver(zone),
            ip=MX_IP,
            helo="mx.example.test",
            mail_from="alice@example.test",
            message=signed,
        )
    )
    assert verdict.spf.result == "pass"
    assert [v.result for v in verdict.dkim] == ["pass", "pass"]
    assert verdict.dmarc == DMARCVerdict("pass", "example.test", "reject", True, True)
    assert verdict.from_domain == "example.test"
    assert not verdict.temporary


def test_evaluate_forged_mail(zone: ZoneServer) -> None:
    zone.set("_dmarc.example.test", "TXT", ["v=DMARC1; p=reject"])
    verdict = run(
        evaluate(resolver(zone), ip=STRANGER, helo="evil.test", mail_from="", message=message())
    )
    assert (verdict.spf.result, verdict.spf.scope) == ("none", "helo")
    assert verdict.dkim == []
    assert (verdict.dmarc.result, verdict.dmarc.policy) == ("fail", "reject")


@pytest.mark.parametrize("from_", ["", "undisclosed-recipients:;", "a@example.test, b@other.test"])
def test_evaluate_without_one_author_domain_is_a_dmarc_permerror(
    zone: ZoneServer, from_: str
) -> None:
    raw = (
        message(from_) if from_ else message().replace(b"From: Alice <alice@example.test>\r\n", b"")
    )
    verdict = run(
        evaluate(resolver(zone), ip=GOOD_IP, helo="h.test", mail_from="a@example.test", message=raw)
    )
    assert verdict.from_domain is None
    assert (verdict.dmarc.result, verdict.dmarc.policy) == ("permerror", None)


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_evaluate_reads_the_author_from_the_header_only(zone: ZoneServer, newline: str) -> None:
    raw = message().replace(b"Hello there.", b"From: someone@forwarded.test")
    raw = raw.replace(b"\r\n", newline.encode())
    verdict = run(
        evaluate(resolver(zone), ip=GOOD_IP, helo="h.test", mail_from="a@example.test", message=raw)
    )
    assert verdict.from_domain == "example.test"
    headless = newline.encode() + b"From: someone@forwarded.test" + newline.encode()
    verdict = run(
        evaluate(
            resolver(zone), ip=GOOD_IP, helo="h.test", mail_from="a@example.test", message=headless
        )
    )
    assert verdict.from_domain is None


def test_evaluate_same_domain_authors_are_one_author_domain(zone: ZoneServer) -> None:
    raw = message("a@example.test, B <b@Example.Test>")
    verdict = run(
        evaluate(resolver(zone), ip=GOOD_IP, helo="h.test", mail_from="a@example.test", message=raw)
    )
    assert verdict.from_domain == "example.test"


def test_evaluate_when_dns_is_down_is_temporary(zone: ZoneServer, keys: list[DKIMKey]) -> None:
    signed = sign(message(), "example.test", keys) + message()
    zone.answering = False
    verdict = run(
        evaluate(
            resolver(zone), ip=GOOD_IP, helo="h.test", mail_from="a@example.test", message=signed
        )
    )
    assert verdict.temporary
    assert verdict.spf.result == verdict.dmarc.result == "temperror"
    assert [v.result for v in verdict.dkim] == ["temperror", "temperror"]


# -- Authentication-Results (RFC 8601)


def sample_verdict() -> Verdict:
    return Verdict(
        spf=spf_verdict("pass", "example.test"),
        dkim=[
            DKIMVerdict("pass", "example.test", "mg202611r-abc", "rsa-sha256", "good signature"),
            DKIMVerdict("fail", "example.test", "mg202611e-abc", "ed25519-sha256", "bad signature"),
        ],
        dmarc=DMARCVerdict("pass", "example.test", "reject", True, True),
        from_domain="example.test",
    )


def parse(field: bytes) -> Any:
    unfolded = field.decode().replace("\r\n", "")
    return authres.all_features().parse(unfolded)


def test_authentication_results_reads_back() -> None:
    field = authentication_results("MX.Mailgate.Test", sample_verdict())
    assert field.startswith(b"Authentication-Results: mx.mailgate.test;\r\n\t")
    assert field.endswith(b"\r\n")
    assert not field.endswith(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    header = parse(field)
    assert header.authserv_id == "mx.mailgate.test"
    spf_result, rsa_result, ed_result, dmarc_result = header.results
    assert (spf_result.method, spf_result.result, spf_result.smtp_mailfrom) == (
        "spf",
        "pass",
        "example.test",
    )
    assert (rsa_result.result, rsa_result.header_d, rsa_result.header_s, rsa_result.header_a) == (
        "pass",
        "example.test",
        "mg202611r-abc",
        "rsa-sha256",
    )
    assert (ed_result.result, ed_result.reason, ed_result.header_a) == (
        "fail",
        "bad signature",
        "ed25519-sha256",
    )
    assert (dmarc_result.method, dmarc_result.result, dmarc_result.header_from) == (
        "dmarc",
        "pass",
        "example.test",
    )


def test_authentication_results_for_unsigned_mail_and_helo() -> None:
    verdict = Verdict(
        spf=spf_verdict("none", "mx.other.test", scope="helo"),
        dkim=[],
        dmarc=DMARCVerdict("none", "other.test", None, False, False),
        from_domain="other.test",
    )
    field = authentication_results("mx.mailgate.test", verdict)
    assert b"dkim=none" in field
    spf_result, dkim_result, dmarc_result = parse(field).results
    assert (spf_result.result, spf_result.smtp_helo) == ("none", "mx.other.test")
    assert (dkim_result.method, dkim_result.result) == ("dkim", "none")
    assert dmarc_result.result == "none"


def test_authentication_results_cannot_be_forged_through_values() -> None:
    hostile = Verdict(
        spf=spf_verdict("fail", "x@y;dmarc=pass"),
        dkim=[DKIMVerdict("fail", "a.test", "s@x; dmarc=pass", "rsa-sha256", 'bad "sig"; x')],
        dmarc=DMARCVerdict("fail", "example.test", "reject", False, False),
        from_domain="example.test",
    )
    results = parse(authentication_results("mx.mailgate.test", hostile)).results
    assert [(r.method, r.result) for r in results] == [
        ("spf", "fail"),
        ("dkim", "fail"),
        ("dmarc", "fail"),
    ]


def test_our_forged_authentication_results_are_removed_and_others_kept() -> None:
    header = (
        b"Received: from a by b; Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        b"Authentication-Results: MX.mailgate.test; dkim=pass header.d=bank.test\r\n"
        b"Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=example.test\r\n"
        b"authentication-results:\r\n"
        b"  (forged) mx.mailgate.test.;\r\n"
        b"\tdmarc=pass header.from=bank.test\r\n"
        b'Authentication-Results: "mx.mailgate.test"; spf=pass\r\n'
        b"Authentication-Results: mx.mailgate.test.evil.test; spf=pass\r\n"
        b"X-Note: Authentication-Results: mx.mailgate.test; kept\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
    )
    assert remove_own_authentication_results(header, "mx.mailgate.test") == (
        b"Received: from a by b; Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        b"Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=example.test\r\n"
        b"Authentication-Results: mx.mailgate.test.evil.test; spf=pass\r\n"
        b"X-Note: Authentication-Results: mx.mailgate.test; kept\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
    )


def test_our_own_header_is_removed_by_the_same_rule() -> None:
    field = authentication_results("mx.mailgate.test", sample_verdict())
    assert remove_own_authentication_results(field + b"Subject: x\r\n", "mx.mailgate.test") == (
        b"Subject: x\r\n"
    )
