"""Trace and identity headers added to mail we accept (RFC 5321 §4.4, RFC 5322 §3.6), and the
origin they describe: whichever door a message came in by, SMTP or the HTTP API."""

from __future__ import annotations

import datetime
import email.utils
import uuid
from dataclasses import dataclass
from enum import StrEnum


class Protocol(StrEnum):
    """The `with` clause of a Received header: IANA's "Mail Transmission Types"."""

    ESMTP = "ESMTP"
    ESMTPS = "ESMTPS"  # RFC 3848: with TLS
    ESMTPA = "ESMTPA"  # RFC 3848: the client authenticated
    ESMTPSA = "ESMTPSA"  # RFC 3848: both
    # RFC 6531 §3.7.3: the same, for a transaction with SMTPUTF8
    UTF8SMTP = "UTF8SMTP"
    UTF8SMTPS = "UTF8SMTPS"
    UTF8SMTPA = "UTF8SMTPA"
    UTF8SMTPSA = "UTF8SMTPSA"
    HTTP = "HTTP"
    HTTPS = "HTTPS"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from, as its Received header tells it."""

    protocol: Protocol
    ip: str
    helo: str | None = None  # the EHLO/HELO name; None where the protocol has none (HTTP)
    tls: str | None = None  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"

    @classmethod
    def smtp(
        cls, *, ip: str, helo: str, tls: str | None, authenticated: bool, smtputf8: bool = False
    ) -> Origin:
        base = "UTF8SMTP" if smtputf8 else "ESMTP"
        protocol = Protocol(base + ("S" if tls else "") + ("A" if authenticated else ""))
        return cls(protocol, ip, helo, tls)

    @classmethod
    def http(cls, *, ip: str, tls: str | None) -> Origin:
        return cls(Protocol.HTTPS if tls else Protocol.HTTP, ip, None, tls)


def new_message_id(hostname: str) -> str:
    return f"<{uuid.uuid4().hex}@{hostname}>"


def received_header(
    origin: Origin,
    hostname: str,
    trace_id: str,
    recipients: list[str],
    now: datetime.datetime | None = None,
) -> bytes:
    """A folded Received: line naming the client, us, the protocol and the time."""
    now = now or datetime.datetime.now(datetime.UTC)
    if origin.helo is None:
        # No HELO name to report (HTTP): the client is named by its address alone.
        source = f"[{origin.ip}]"
    else:
        source = f"{_clean(origin.helo) or 'unknown'} ([{origin.ip}])"
    lines = [f"Received: from {source}", f"by {hostname} (mailgate)"]
    lines.append(f"with {origin.protocol} id {trace_id}")
    if origin.tls:
        lines.append(f"(using {_clean(origin.tls)})")
    stamp = email.utils.format_datetime(now)
    if len(recipients) == 1:
        # An SMTPUTF8 message's header may name a UTF-8 recipient as it is (RFC 6532).
        utf8 = origin.protocol.startswith("UTF8")
        lines.append(f"for <{_clean(recipients[0], utf8=utf8)}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(stamp)
    return ("\r\n\t".join(lines) + "\r\n").encode("utf-8", "replace")


def date_header(now: datetime.datetime | None = None) -> bytes:
    now = now or datetime.datetime.now(datetime.UTC)
    return f"Date: {email.utils.format_datetime(now)}\r\n".encode()


def _clean(text: str, *, utf8: bool = False) -> str:
    """Client-supplied text is kept printable (ASCII unless `utf8`) and short, so it cannot
    break the header."""
    return "".join(
        c if 0x21 <= ord(c) < 0x7F or c == " " or (utf8 and c.isprintable() and c > "\x7f") else "?"
        for c in text
    )[:200]
