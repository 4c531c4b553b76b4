"""mailgate.mime.addresses: address lists from headers; inbox addresses are validated and
compared lower-cased."""

from __future__ import annotations

import pytest

from mailgate.mime.addresses import InvalidAddress, address_list, domain_of, normalize_address
from tests.mime.helpers import crlf

# ---------------------------------------------------------------------------------------------
# Address lists (RFC 5322 §3.4)


def test_address_list() -> None:
    header = crlf(
        b'From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>, "Doe, John" <john@example.com>\n'
        b"To: list: x@example.com;\n"
        b"From: second@example.com\n"
        b"Cc: nobody\n"
        b"\n"
    )
    assert address_list(header, "from") == [
        ("J\u00f6rg", "joerg@example.com"),
        ("Doe, John", "john@example.com"),
        ("", "second@example.com"),
    ]
    assert address_list(header, "To") == [("", "x@example.com")]
    assert address_list(header, "Cc") == [("", "nobody")]
    assert address_list(header, "Bcc") == []
    assert address_list(b"From: \xff\xfe<\xff@x>\r\n\r\n", "From") == [("\ufffd\ufffd", "\ufffd@x")]


# ---------------------------------------------------------------------------------------------
# Inbox addresses


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("alice@example.test", "alice@example.test"),
        ("Alice@Example.TEST", "alice@example.test"),
        ("  bob@example.test\t", "bob@example.test"),
        ("<carol@example.test>", "carol@example.test"),
        ("dave@example.test.", "dave@example.test"),
        ("first.last+tag@sub.example.test", "first.last+tag@sub.example.test"),
        ("o'neil@example.test", "o'neil@example.test"),
        ("x!#$%&*/=?^_`{|}~-@example.test", "x!#$%&*/=?^_`{|}~-@example.test"),
        ("agent@localhost", "agent@localhost"),
        ("a@x-y.example.test", "a@x-y.example.test"),
        ("a" * 64 + "@example.test", "a" * 64 + "@example.test"),
        ("a@" + "b" * 63 + ".test", "a@" + "b" * 63 + ".test"),
    ],
)
def test_valid_addresses(given: str, canonical: str) -> None:
    assert normalize_address(given) == canonical
    assert normalize_address(canonical) == canonical  # idempotent


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "@example.test",
        "alice@",
        "alice@@example.test",
        "a@b@example.test",
        "a b@example.test",
        ".alice@example.test",
        "alice.@example.test",
        "al..ice@example.test",
        '"quoted"@example.test',
        "ünïcode@example.test",
        "alice@-example.test",
        "alice@example-.test",
        "alice@exa_mple.test",
        "alice@example..test",
        "alice@[192.0.2.1]",
        "a" * 65 + "@example.test",
        "a@" + "b" * 64 + ".test",
        "a@" + ".".join(["abcdefghi"] * 26),  # longer than 253
        # A newline must never get into an address (and from there into a header).
        "abc\n@example.test",
        "a@exa\nmple.test",
        "a@example\n.test",
        "a\r@example.test",
        "a\x00@example.test",
        "<alice@example.test",
    ],
)
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        normalize_address(bad)


def test_invalid_address_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match="name@domain"):
        normalize_address("nobody")
    with pytest.raises(InvalidAddress, match="longer than 64"):
        normalize_address("a" * 65 + "@example.test")
    with pytest.raises(InvalidAddress, match="domain"):
        normalize_address("a@-bad")


def test_comparison_is_case_insensitive() -> None:
    assert normalize_address("MiXeD@Example.Test") == normalize_address("mixed@example.test")


def test_domain_of() -> None:
    assert domain_of("alice@Example.TEST") == "example.test"
    assert domain_of("weird@name@host.test") == "host.test"


def test_idn_domains_are_kept_as_a_labels() -> None:
    """IDNA 2008 with UTS #46 mapping: U-labels, A-labels and upper case are one domain."""
    assert normalize_address("Agent@例え.JP") == "agent@xn--r8jz45g.jp"
    assert normalize_address("agent@XN--R8JZ45G.jp") == "agent@xn--r8jz45g.jp"
    assert normalize_address("a@bücher.example.") == "a@xn--bcher-kva.example"
    for bad in ("a@xn--zz-.jp", "a@xn--a.example", "a@☃\u200d.example"):
        with pytest.raises(InvalidAddress, match="not a valid domain name"):
            normalize_address(bad, utf8=True)


def test_utf8_local_parts_only_where_asked_for() -> None:
    """An inbox address is ASCII before the @; an SMTPUTF8 envelope address need not be
    (RFC 6531 §3.3), and is kept in Unicode NFC, lower-cased."""
    with pytest.raises(InvalidAddress, match="an inbox address must be ASCII before the @"):
        normalize_address("δοκιμή@example.test")
    assert normalize_address("Δοκιμή@例え.jp", utf8=True) == "δοκιμή@xn--r8jz45g.jp"
    decomposed = "u\u0308@example.test"  # ü as u + combining diaeresis
    assert normalize_address(decomposed, utf8=True) == "\u00fc@example.test"
    for bad in ("δο κιμή@x.test", "δο..κιμή@x.test", "\udcff@x.test", "\u0085@x.test"):
        with pytest.raises(InvalidAddress):
            normalize_address(bad, utf8=True)
    # 64 octets, not characters: 22 three-octet characters are 66.
    with pytest.raises(InvalidAddress, match="longer than 64 octets"):
        normalize_address("例" * 22 + "@example.test", utf8=True)
