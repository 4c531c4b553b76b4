"""Trace and identity headers added to submitted mail (RFC 5321 §4.4, RFC 5322 §3.6)."""

from __future__ import annotations

import datetime
import email.utils
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Client:
    """What we know of the SMTP client, for the Received header."""

    helo: str
    ip: str
    tls: str | None  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"
    authenticated: bool


def new_message_id(hostname: str) -> str:
    return f"<{uuid.uuid4().hex}@{hostname}>"


def received_header(
    client: Client,
    hostname: str,
    trace_id: str,
    recipients: list[str],
    now: datetime.datetime | None = None,
) -> bytes:
    """A folded Received: line naming the client, us, the protocol (RFC 3848) and the time."""
    now = now or datetime.datetime.now(datetime.UTC)
    # RFC 3848: ESMTP, +S with TLS, +A when the client authenticated.
    protocol = "ESMTP" + ("S" if client.tls else "") + ("A" if client.authenticated else "")
    helo = _clean(client.helo) or "unknown"
    lines = [f"Received: from {helo} ([{client.ip}])", f"by {hostname} (mailgate)"]
    lines.append(f"with {protocol} id {trace_id}")
    if client.tls:
        lines.append(f"(using {_clean(client.tls)})")
    stamp = email.utils.format_datetime(now)
    if len(recipients) == 1:
        lines.append(f"for <{_clean(recipients[0])}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(stamp)
    return ("\r\n\t".join(lines) + "\r\n").encode("ascii", "replace")


def date_header(now: datetime.datetime | None = None) -> bytes:
    now = now or datetime.datetime.now(datetime.UTC)
    return f"Date: {email.utils.format_datetime(now)}\r\n".encode()


def _clean(text: str) -> str:
    """Client-supplied text is kept printable ASCII and short, so it cannot break the header."""
    return "".join(c if 0x21 <= ord(c) < 0x7F or c == " " else "?" for c in text)[:200]
