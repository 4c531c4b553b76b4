"""Delivery status notifications: the bounce a sender gets when mail cannot be delivered.

A bounce is a multipart/report (RFC 6522, which obsoletes RFC 3462) of three parts: a short
text for people, a message/delivery-status for programs (RFC 3464) and the original message's
header section as text/rfc822-headers. Status codes are RFC 3463 enhanced codes. For a message
sent with SMTPUTF8 the last two are RFC 6533's message/global-delivery-status (UTF-8 addresses
as they are) and message/global-headers, as Postfix sends them; the report-type stays
delivery-status.

Pure: values in, message bytes out. Everything that came from elsewhere (remote replies, envelope
addresses, the original message) is untrusted: it is cleaned here so that it can neither add
header fields nor break the MIME structure, and every line stays within RFC 5322's 998 octets.
"""

from __future__ import annotations

import binascii
import datetime
import email.utils
import re
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from mailgate.delivery.trace import new_message_id
from mailgate.mime.headers import header_values, normalize_crlf, split_header

__all__ = ["SUBJECT", "Failure", "bounce"]

SUBJECT = "Undelivered Mail Returned to Sender"
# A field value longer than this many octets is cut, so no line can exceed RFC 5322's 998
# (§2.1.1) even where a value has no whitespace to fold at.
MAX_VALUE = 900
FOLD_AT = 78  # RFC 5322 §2.1.1: lines SHOULD be no longer than 78 characters
MAX_LINE = 998
# How much of the original header section is returned: Postfix's default header_size_limit.
MAX_ORIGINAL_HEADER = 102_400
TEXT_WIDTH = 76
# The diagnostic-type for our own words, where no SMTP reply was received (RFC 3464 §2.3.6
# reserves "smtp" for SMTP replies; Postfix says "X-Postfix" the same way).
OWN_DIAGNOSTIC_TYPE = "X-mailgate"


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient that will not get the message."""

    recipient: str  # the original recipient address
    status: str  # RFC 3463 enhanced code, e.g. "5.1.1", "4.4.1" (gave up after retries)
    # The remote's reply, "550 5.1.1 No such user", or our own words ("connection refused by
    # mx.example.org after 5 days").
    diagnostic: str
    remote_mta: str | None  # the host that answered, if any


def bounce(
    *,
    hostname: str,
    sender: str,
    original: bytes,
    failures: Sequence[Failure],
    arrival: datetime.datetime,
    last_attempt: datetime.datetime,
    now: datetime.datetime | None = None,
    smtputf8: bool = False,
) -> bytes:
    """The DSN (CRLF line ends) telling `sender` that `failures` will not get `original`.

    `smtputf8`: the original was internationalized (RFC 6533), so is the report.
    `arrival` is when we accepted the message, `last_attempt` when we last tried to deliver it,
    `now` the Date of the report (the current time by default). Naive datetimes are taken as
    UTC.
    """
    if not sender:
        # RFC 5321 §4.5.5: a notification is never sent for a null reverse-path.
        raise ValueError("a message with a null reverse-path is never bounced")
    if not failures:
        raise ValueError("a bounce needs at least one failed recipient")
    hostname = _clean(hostname, keep_spaces=False) or "localhost"
    header = _original_header(original)
    parts = [
        _explanation_part(hostname, header, failures),
        _delivery_status_part(hostname, failures, arrival, last_attempt, smtputf8),
        _headers_part(header, smtputf8),
    ]
    boundary = _boundary(parts)
    outer = _outer_header(hostname, sender, header, boundary, now)
    body = [b"This is a MIME-encapsulated message.\r\n"]  # the preamble, for non-MIME readers
    for part in parts:
        body.append(b"\r\n--" + boundary + b"\r\n" + part)
    body.append(b"\r\n--" + boundary + b"--\r\n")
    return outer + b"\r\n" + b"".join(body)


# ---------------------------------------------------------------------------------------------
# Cleaning and folding untrusted text

_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")
_ADDRESS_JUNK = re.compile(r"[\s<>\x00-\x1f\x7f]+")


def _clean(text: str, *, ascii_only: bool = True, keep_spaces: bool = True) -> str:
    """One line of printable text: CR, LF and other controls become spaces (so a remote's
    multi-line reply reads as one line and can never start a header field of its own)."""
    text = _CONTROLS.sub(" ", text)
    text = _SPACES.sub(" " if keep_spaces else "", text).strip()
    if ascii_only:
        text = text.encode("ascii", "replace").decode("ascii")
    else:  # lone surrogates (bytes read with surrogateescape) cannot be written as UTF-8
        text = text.encode("utf-8", "replace").decode("utf-8")
    data = text.encode("utf-8")
    if len(data) > MAX_VALUE:  # counted in octets: the line limit is in octets
        text = data[: MAX_VALUE - 3].decode("utf-8", "ignore") + "..."
    return text


def _clean_address(address: str, *, ascii_only: bool) -> str:
    # An address holds no spaces or angle brackets outside quotes; dropping them keeps a
    # hostile one from reading as a display name or a second address.
    return _clean(_ADDRESS_JUNK.sub("", address), ascii_only=ascii_only)


def _field(name: str, value: str) -> str:
    """A header field folded at spaces near 78 columns (RFC 5322 §2.2.3), ending in CRLF.

    `value` must already be clean: one line, single spaces, at most MAX_VALUE characters.
    """
    words = value.split(" ")
    lines: list[str] = []
    line = f"{name}: {words[0]}"
    for word in words[1:]:
        if len(line) + 1 + len(word) > FOLD_AT:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _date(moment: datetime.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return email.utils.format_datetime(moment)


# ---------------------------------------------------------------------------------------------
# The original message's header


_FIELD_LINE = re.compile(rb"[^\x00-\x20\x7f:]+[ \t]*:|[ \t]")


def _original_header(original: bytes) -> bytes:
    """The original's header fields (no blank line), never any of its body.

    A message without a blank line is all header by RFC 5322, but a hostile or broken one may
    be a body without any header; so the section also ends at the first line that is neither
    a field nor a continuation, where a reader would take the body to begin. NUL, never valid
    in a message (RFC 5322 §2.1, RFC 2045 §2.8), is dropped.
    """
    header, _ = split_header(normalize_crlf(original[: MAX_ORIGINAL_HEADER * 2]))
    kept: list[bytes] = []
    size = 0
    for line in header.split(b"\r\n"):
        if not _FIELD_LINE.match(line) or size + len(line) + 2 > MAX_ORIGINAL_HEADER:
            break
        if not kept and line[:1] in (b" ", b"\t"):  # a continuation of nothing
            break
        kept.append(line.replace(b"\x00", b""))
        size += len(line) + 2
    return b"".join(line + b"\r\n" for line in kept)


def _original_subject(header: bytes) -> str | None:
    subjects = header_values(header, "Subject")
    return _clean(subjects[0], ascii_only=False)[:200] if subjects else None


_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}>\Z")  # printable ASCII, no <, > or spaces


def _original_message_id(header: bytes) -> str | None:
    ids = header_values(header, "Message-ID")
    if ids and _MESSAGE_ID.match(ids[0].strip()):
        return ids[0].strip()
    return None


# ---------------------------------------------------------------------------------------------
# The three parts and the outer header


def _explanation_part(hostname: str, header: bytes, failures: Sequence[Failure]) -> bytes:
    lines = [f"This is the mail delivery system at {hostname}.", ""]
    subject = _original_subject(header)
    message = f'Your message "{subject}"' if subject else "Your message"
    whom = "the following recipients" if len(failures) > 1 else "this recipient"
    lines += _wrap(f"{message} could not be delivered to {whom}:", "")
    for failure in failures:
        lines += ["", f"<{_clean_address(failure.recipient, ascii_only=False)}>"]
        lines += _wrap(_reason(failure), "    ")
    lines += ["", "The header of your message is attached."]
    text = "\r\n".join(lines) + "\r\n"
    data = text.encode("utf-8")
    encoding = "7bit" if data.isascii() else "8bit"
    return (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Description: Notification\r\n"
        b"Content-Transfer-Encoding: %s\r\n\r\n%s" % (encoding.encode(), data)
    )


def _reason(failure: Failure) -> str:
    diagnostic = _clean(failure.diagnostic, ascii_only=False) or "delivery failed"
    if failure.remote_mta and _is_smtp_reply(diagnostic):
        return f"{_clean(failure.remote_mta, keep_spaces=False)} said: {diagnostic}"
    return diagnostic


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        text,
        TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
    ) or [indent]


def _delivery_status_part(
    hostname: str,
    failures: Sequence[Failure],
    arrival: datetime.datetime,
    last_attempt: datetime.datetime,
    smtputf8: bool,
) -> bytes:
    # RFC 3464 §2.1: per-message fields, then one block per recipient, blank lines between.
    blocks = [_field("Reporting-MTA", f"dns; {hostname}") + _field("Arrival-Date", _date(arrival))]
    blocks += [_recipient_block(f, last_attempt, smtputf8) for f in failures]
    data = "\r\n".join(blocks).encode("utf-8")
    # The fields are US-ASCII (RFC 3464), but for the utf-8 address type (RFC 6533), which
    # message/global-delivery-status carries as UTF-8.
    kind = b"global-delivery-status" if smtputf8 else b"delivery-status"
    encoding = b"7bit" if data.isascii() else b"8bit"
    return (
        b"Content-Type: message/%s\r\n"
        b"Content-Description: Delivery report\r\n"
        b"Content-Transfer-Encoding: %s\r\n\r\n%s" % (kind, encoding, data)
    )


def _recipient_block(failure: Failure, last_attempt: datetime.datetime, smtputf8: bool) -> str:
    # RFC 3464 §2.3, in its order: Final-Recipient, Action, Status, Remote-MTA,
    # Diagnostic-Code, Last-Attempt-Date.
    fields = [
        _field("Final-Recipient", _address_type_and_value(failure.recipient, smtputf8)),
        _field("Action", "failed"),
        _field("Status", _status(failure)),
    ]
    remote = _clean(failure.remote_mta or "", keep_spaces=False)
    if remote:
        fields.append(_field("Remote-MTA", f"dns; {remote}"))
    diagnostic = _clean(failure.diagnostic)
    if diagnostic:
        kind = "smtp" if _is_smtp_reply(diagnostic) else OWN_DIAGNOSTIC_TYPE
        fields.append(_field("Diagnostic-Code", f"{kind}; {diagnostic}"))
    fields.append(_field("Last-Attempt-Date", _date(last_attempt)))
    return "".join(fields)


def _address_type_and_value(address: str, smtputf8: bool) -> str:
    address = _clean_address(address, ascii_only=False)
    if address.isascii():
        return f"rfc822; {address}"
    if smtputf8:  # RFC 6533 §3: in message/global-delivery-status, as it is
        return f"utf-8; {address}"
    # RFC 6533 §3: a non-ASCII address goes in a 7-bit report as "utf-8" with
    # utf-8-addr-xtext, where anything but QCHAR (printable ASCII minus + = \) is \x{HEX}.
    escaped = "".join(
        c if "!" <= c <= "~" and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in address
    )
    return f"utf-8; {escaped}"[:MAX_VALUE]


_STATUS = re.compile(r"[45]\.\d{1,3}\.\d{1,3}\Z")
_SMTP_REPLY = re.compile(r"([245])\d\d(?:[ -]|\Z)")
_ENHANCED_IN_REPLY = re.compile(r"[245]\d\d[ -]([45]\.\d{1,3}\.\d{1,3})(?: |\Z)")


def _is_smtp_reply(text: str) -> bool:
    return _SMTP_REPLY.match(text) is not None


def _status(failure: Failure) -> str:
    """The RFC 3463 code; a failure is class 4 (given up) or 5 (refused).

    A malformed one is replaced by the code in the remote's reply, or by the generic code of
    the reply's class (RFC 3463 §3.1: X.0.0 when nothing more is known).
    """
    status = failure.status.strip()
    if _STATUS.match(status):
        return status
    diagnostic = _clean(failure.diagnostic)
    m = _ENHANCED_IN_REPLY.match(diagnostic)
    if m:
        return m.group(1)
    return "4.0.0" if diagnostic.startswith("4") and _is_smtp_reply(diagnostic) else "5.0.0"


def _headers_part(header: bytes, smtputf8: bool) -> bytes:
    if any(len(line) > MAX_LINE for line in header.split(b"\r\n")):
        # 7bit and 8bit allow no line over 998 octets (RFC 2045 §2.7, §2.8); quoted-printable
        # carries any line, and its soft breaks come out again on decoding.
        encoding, data = b"quoted-printable", binascii.b2a_qp(header, istext=True)
    else:
        encoding, data = (b"7bit" if header.isascii() else b"8bit"), header
    # RFC 6533: an internationalized header section is message/global-headers.
    kind = b"message/global-headers" if smtputf8 else b"text/rfc822-headers"
    return (
        b"Content-Type: %s\r\n"
        b"Content-Description: Undelivered message headers\r\n"
        b"Content-Transfer-Encoding: %s\r\n\r\n%s" % (kind, encoding, data)
    )


def _boundary(parts: list[bytes]) -> bytes:
    # "=_" never occurs in quoted-printable output, and the random rest in no sane text; the
    # check makes it certain (RFC 2046 §5.1.1: the boundary must not appear in any part).
    while True:
        boundary = b"=_mailgate_" + uuid.uuid4().hex.encode()
        if not any(boundary in part for part in parts):
            return boundary


def _outer_header(
    hostname: str,
    sender: str,
    header: bytes,
    boundary: bytes,
    now: datetime.datetime | None,
) -> bytes:
    moment = now or datetime.datetime.now(datetime.UTC)
    fields = [
        _field("From", f"Mail Delivery System <MAILER-DAEMON@{hostname}>"),
        # RFC 6532 allows a UTF-8 address here; the message is stored, not relayed.
        _field("To", _clean_address(sender, ascii_only=False) or "postmaster"),
        _field("Subject", SUBJECT),
        _field("Date", _date(moment)),
        _field("Message-ID", new_message_id(hostname)),
    ]
    message_id = _original_message_id(header)
    if message_id:  # lets mail clients thread the bounce with the message it is about
        fields += [_field("In-Reply-To", message_id), _field("References", message_id)]
    fields += [
        # RFC 3834 §5: a DSN is an automatic reply, so nobody auto-responds to it.
        _field("Auto-Submitted", "auto-replied"),
        _field("MIME-Version", "1.0"),
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f' boundary="{boundary.decode()}"\r\n',
    ]
    return "".join(fields).encode("utf-8")
