"""The Received header names the door a message came in by: RFC 3848's ESMTP family for SMTP,
HTTP or HTTPS (IANA's Mail Transmission Types) for the API, which has no HELO name."""

from __future__ import annotations

import datetime

import pytest

from mailgate.delivery.trace import Origin, Protocol, received_header

NOW = datetime.datetime(2026, 11, 2, 10, 0, tzinfo=datetime.UTC)
TLS = "TLSv1.3 TLS_AES_256_GCM_SHA384"


@pytest.mark.parametrize(
    ("tls", "authenticated", "protocol"),
    [
        (None, False, Protocol.ESMTP),
        (TLS, False, Protocol.ESMTPS),
        (None, True, Protocol.ESMTPA),
        (TLS, True, Protocol.ESMTPSA),
    ],
)
def test_smtp_origin_protocol(tls: str | None, authenticated: bool, protocol: Protocol) -> None:
    origin = Origin.smtp(ip="192.0.2.1", helo="client.test", tls=tls, authenticated=authenticated)
    assert origin.protocol is protocol


def test_http_origin_protocol() -> None:
    assert Origin.http(ip="192.0.2.1", tls=None).protocol is Protocol.HTTP
    assert Origin.http(ip="192.0.2.1", tls=TLS).protocol is Protocol.HTTPS


def test_received_for_smtp_names_the_helo_and_address() -> None:
    origin = Origin.smtp(ip="192.0.2.1", helo="client.test", tls=TLS, authenticated=True)
    header = received_header(origin, "mail.example.test", "abc123", ["bob@example.test"], NOW)
    assert header == (
        b"Received: from client.test ([192.0.2.1])\r\n"
        b"\tby mail.example.test (mailgate)\r\n"
        b"\twith ESMTPSA id abc123\r\n"
        b"\t(using TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n"
        b"\tfor <bob@example.test>; Mon, 02 Nov 2026 10:00:00 +0000\r\n"
    )


def test_received_for_http_has_no_helo() -> None:
    origin = Origin.http(ip="2001:db8::1", tls=TLS)
    header = received_header(origin, "mail.example.test", "abc123", ["a@x.test", "b@x.test"], NOW)
    assert header.startswith(b"Received: from [2001:db8::1]\r\n\tby mail.example.test")
    assert b"\twith HTTPS id abc123\r\n\t(using TLSv1.3" in header
    assert header.endswith(b";\r\n\tMon, 02 Nov 2026 10:00:00 +0000\r\n")


def test_client_text_cannot_break_the_header() -> None:
    origin = Origin.smtp(
        ip="192.0.2.1", helo="evil\r\nX-Injected: 1", tls=None, authenticated=False
    )
    header = received_header(origin, "mail.example.test", "id", [], NOW)
    assert b"\r\nX-Injected" not in header
    assert header.startswith(b"Received: from evil??X-Injected: 1 ([192.0.2.1])")
