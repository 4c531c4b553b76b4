"""Composing a message from fields (sender, recipients, subject, text, HTML, attachments) into
RFC 5322 bytes, for callers that have fields rather than bytes: the API's send and drafts.

The MIME is written by the standard library (``email.message`` with ``email.policy.SMTP``, so
CRLF line ends, encoded-words for non-ASCII names and subjects, RFC 2231 for non-ASCII file
names); this module chooses the structure and refuses what must not reach a header:

    text + html                    multipart/alternative
    html + inline content-id parts multipart/related around the html
    attachments                    multipart/mixed around all of the above

Every value bound for the header is checked first: a line break in any of them raises
ValueError naming the field, so no value can add a header of its own. Bcc is never written; it
is only among the envelope recipients the caller routes.
"""

from __future__ import annotations

import datetime
import email.policy
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart

from mailgate.mime.headers import normalize_crlf

__all__ = ["Attachment", "Composed", "NamedAddress", "compose"]

# refold_source="none": the msg-id fields are set raw, folded here, and must go out as they are.
_POLICY = email.policy.SMTP.clone(refold_source="none")

# Everything str.splitlines() breaks at, and NUL: the email package itself refuses line breaks
# in header values, but without saying which field held one.
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")
# RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# The fields compose writes itself; extra headers may not add a second one or override them.
_OWN_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
    }
)
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_MEDIA_TYPE = re.compile(f"({_TOKEN})/({_TOKEN})")
# A msg-id's (or Content-ID's) inside: printable ASCII, no angle brackets. Its length keeps a
# field holding one under RFC 5322's 998-octet line limit.
_MSG_ID_INSIDE = re.compile(r"[!-;=?-~]+")
_MAX_MSG_ID = 900


@dataclass(frozen=True, slots=True)
class NamedAddress:
    """An addr-spec (``alice@example.com``) with an optional display name."""

    address: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # "type/subtype", without parameters
    data: bytes
    content_id: str | None = None  # with or without its angle brackets
    inline: bool = False  # with a content_id and an html body: part of multipart/related


@dataclass(frozen=True, slots=True)
class Composed:
    raw: bytes  # the message, CRLF line ends
    message_id: str  # as written in its Message-ID field, "<...>"
    recipients: tuple[str, ...]  # To, Cc and Bcc addr-specs in order, each once (any case)


def compose(
    *,
    sender: NamedAddress | str,
    hostname: str,
    to: Sequence[NamedAddress | str] = (),
    cc: Sequence[NamedAddress | str] = (),
    bcc: Sequence[NamedAddress | str] = (),
    reply_to: Sequence[NamedAddress | str] = (),
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    headers: Mapping[str, str] | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    message_id: str | None = None,
    date: datetime.datetime | None = None,
) -> Composed:
    """The message these fields describe. A missing Message-ID is made on ``hostname``, a
    missing date is now. Raises ValueError naming the field for anything that cannot be sent."""
    if message_id is None:
        message_id = _msg_id("hostname", f"<{uuid.uuid4().hex}@{hostname}>")
    else:
        message_id = _msg_id("message_id", message_id)
    if date is None:
        date = datetime.datetime.now(datetime.UTC)
    elif date.utcoffset() is None:
        raise ValueError("date: has no time zone")
    lists = {
        field: _addresses(field, items)
        for field, items in (("to", to), ("cc", cc), ("bcc", bcc), ("reply_to", reply_to))
    }
    extra = _extra_headers(headers or {})

    message = EmailMessage(policy=_POLICY)
    message["From"] = _address("sender", sender)
    for field, name in (("to", "To"), ("cc", "Cc"), ("reply_to", "Reply-To")):
        if lists[field]:
            message[name] = lists[field]
    if subject is not None:
        message["Subject"] = _line("subject", subject)
    message["Date"] = date
    message.set_raw("Message-ID", message_id)
    if in_reply_to is not None:
        message.set_raw("In-Reply-To", _msg_id("in_reply_to", in_reply_to))
    if references:
        ids = [_msg_id(f"references[{i}]", r) for i, r in enumerate(references)]
        # One msg-id per line: the email package would fold a long one into encoded-words,
        # which no reader takes for a msg-id.
        message.set_raw("References", "\r\n ".join(ids))
    for name, value in extra:
        message[name] = value
    message["MIME-Version"] = "1.0"
    _adopt(message, _content(text, html, attachments))

    recipients: dict[str, str] = {}
    for address in (*lists["to"], *lists["cc"], *lists["bcc"]):
        recipients.setdefault(address.addr_spec.lower(), address.addr_spec)
    return Composed(message.as_bytes(), message_id, tuple(recipients.values()))


# ---------------------------------------------------------------------------------------------
# Header values


def _line(field: str, value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError(f"{field}: a header value may not hold a line break or NUL")
    return value


def _address(field: str, item: NamedAddress | str) -> Address:
    item = NamedAddress(item) if isinstance(item, str) else item
    spec = _line(field, item.address).strip()
    name = _line(field, item.name or "")
    if not spec.isascii():
        raise ValueError(
            f"{field}: {spec!r} is not ASCII: the API sends to ASCII addresses only (an IDN"
            " domain is written as its xn-- A-labels); SMTP with SMTPUTF8 takes UTF-8 ones"
        )
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError):
        address = None
    # The parser skips comments and the like: what it reads must be what was given.
    if address is None or address.addr_spec != spec or not address.domain:
        raise ValueError(f"{field}: {spec!r} is not an address of the form name@domain")
    return address


def _addresses(field: str, items: Sequence[NamedAddress | str]) -> list[Address]:
    return [_address(f"{field}[{i}]", item) for i, item in enumerate(items)]


def _msg_id(field: str, value: str) -> str:
    """``<inside>`` for a msg-id given with or without its angle brackets."""
    inside = value.strip()
    if inside.startswith("<") and inside.endswith(">"):
        inside = inside[1:-1]
    if len(inside) > _MAX_MSG_ID or not _MSG_ID_INSIDE.fullmatch(inside):
        raise ValueError(f"{field}: {value!r} is not a msg-id like <id@host>")
    return f"<{inside}>"


def _extra_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    extra = []
    for name, value in headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"headers: {name!r} is not a header field name")
        if name.lower() in _OWN_FIELDS or name.lower().startswith("content-"):
            raise ValueError(f"headers: {name} is set by its own argument or by the content")
        extra.append((name, _line(f"headers[{name!r}]", value)))
    return extra


# ---------------------------------------------------------------------------------------------
# The content


def _content(text: str | None, html: str | None, attachments: Sequence[Attachment]) -> MIMEPart:
    related: list[MIMEPart] = []  # inline parts the html refers to by Content-ID
    attached: list[MIMEPart] = []
    for i, attachment in enumerate(attachments):
        part = _attachment(f"attachments[{i}]", attachment)
        in_html = attachment.inline and attachment.content_id and html is not None
        (related if in_html else attached).append(part)
    body: MIMEPart | None = None
    if html is not None:
        body = _text(html, "html")
        if related:
            body = _multipart("related", [body, *related])
    if text is not None or body is None:
        plain = _text(text or "", "plain")
        body = plain if body is None else _multipart("alternative", [plain, body])
    if attached:
        body = _multipart("mixed", [body, *attached])
    return body


def _text(content: str, subtype: str) -> MIMEPart:
    part = MIMEPart(policy=_POLICY)
    # The stdlib picks 8bit for short non-ASCII text, and a single-part message then cannot be
    # written as bytes; quoted-printable is 7-bit and readable.
    part.set_content(
        content, subtype=subtype, cte=None if content.isascii() else "quoted-printable"
    )
    return part


def _multipart(subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    container = MIMEPart(policy=_POLICY)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def _attachment(field: str, attachment: Attachment) -> MIMEPart:
    m = _MEDIA_TYPE.fullmatch(attachment.content_type.strip())
    if m is None:
        raise ValueError(f"{field}: content type {attachment.content_type!r} is not type/subtype")
    maintype, subtype = m.group(1).lower(), m.group(2).lower()
    data = attachment.data
    cte = "base64"
    if maintype == "multipart":
        raise ValueError(f"{field}: a multipart cannot be attached as bytes")
    if maintype == "message":
        # RFC 2046 §5.2.1: an encapsulated message is never base64 or quoted-printable, and the
        # email package writes only ASCII ones as they are.
        if not data.isascii():
            raise ValueError(f"{field}: a message/* attachment must be 7-bit")
        data, cte = normalize_crlf(data), "7bit"
    part = MIMEPart(policy=_POLICY)
    part.set_content(
        data,
        maintype,
        subtype,
        cte=cte,
        disposition="inline" if attachment.inline else "attachment",
        filename=_line(f"{field}.filename", attachment.filename) or None,
    )
    if attachment.content_id is not None:
        part.set_raw("Content-ID", _msg_id(f"{field}.content_id", attachment.content_id))
    return part


def _adopt(message: EmailMessage, content: MIMEPart) -> None:
    """Give the message the content's Content-* fields (after its own) and its payload.

    The parts are MIMEParts, not EmailMessages, so that only the message says MIME-Version.
    """
    for name, value in content.items():
        message[name] = value
    message.set_payload(content.get_payload())
