"""Replying to and forwarding a stored message: the fields the answer carries, from the
original's bytes, ready for compose.compose().

Recipients, as mail clients choose them (RFC 5322 §3.6.3):

    reply       the original's Reply-To, or its From when it has none
    reply all   those and the original's To, as To; the original's Cc, as Cc

The replying inbox never writes to itself, and each address appears once (compared without
case). Replying to one's own message answers its recipients instead, as Gmail and Thunderbird
do. Threading follows RFC 5322 §3.6.4: In-Reply-To is the original's Message-ID, References
the original's References (or its In-Reply-To) followed by that Message-ID.

A forward quotes the original below a "Forwarded message" block as Gmail writes it (From,
Date, Subject, To, Cc of the original), in text and, when either side has HTML, in HTML, and
re-attaches the original's attachments (inline images keep their Content-ID for the HTML).

Values from the original that compose() would refuse (line breaks in a subject or name, a
msg-id or Content-ID with characters a msg-id cannot hold) are mended or left out here, so that
a message that arrived can always be answered.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass

from mailgate.mime.addresses import address_list
from mailgate.mime.apiview import (
    AttachmentInfo,
    attachments,
    format_address,
    html_to_text,
    texts,
)
from mailgate.mime.compose import Attachment, NamedAddress
from mailgate.mime.decoding import decode_words
from mailgate.mime.headers import MAX_STRUCTURED, first_fields, msg_ids, split_header

__all__ = [
    "MAX_REFERENCES",
    "Forward",
    "Reply",
    "forward",
    "forward_subject",
    "reattach",
    "reply",
    "reply_subject",
]

# References a reply carries: the thread's first message and the nearest ancestors, which is
# what threading needs (RFC 5256 §2.2) and keeps the field short.
MAX_REFERENCES = 20

_FIELDS = frozenset({b"subject", b"date", b"message-id", b"references", b"in-reply-to"})


@dataclass(frozen=True, slots=True)
class Reply:
    to: tuple[NamedAddress, ...]
    cc: tuple[NamedAddress, ...]
    subject: str
    in_reply_to: str | None  # "<id@host>"
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Forward:
    subject: str
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]


# ---------------------------------------------------------------------------------------------
# Header values compose() accepts

_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# What compose() accepts inside a msg-id's angle brackets, up to its length limit.
_SENDABLE_ID = re.compile(r"[!-;=?-~]{1,900}")


def _one_line(value: str) -> str:
    return " ".join(_CONTROLS.sub(" ", value).split())


def _sendable_id(value: str) -> bool:
    return _SENDABLE_ID.fullmatch(value.removeprefix("<").removesuffix(">")) is not None


def _mailboxes(header: bytes, name: str) -> list[NamedAddress]:
    return [
        NamedAddress(address, _one_line(display) or None)
        for display, address in address_list(header, name)
        if "@" in address.strip("@")  # a word alone ("undisclosed-recipients") is no address
    ]


def _unique(addresses: list[NamedAddress], seen: set[str]) -> tuple[NamedAddress, ...]:
    kept = []
    for address in addresses:
        key = address.address.lower()
        if key not in seen:
            seen.add(key)
            kept.append(address)
    return tuple(kept)


# ---------------------------------------------------------------------------------------------
# Reply

_RE = re.compile(r"\s*re\s*(?:\[\d+\]|\(\d+\))?\s*:", re.I)  # "Re:", "RE :", "Re[2]:"
_FWD = re.compile(r"\s*fwd?\s*:", re.I)  # "Fwd:", "FW:"


def reply_subject(subject: str | None) -> str:
    subject = _one_line(subject or "")
    return subject if _RE.match(subject) else f"Re: {subject}".rstrip()


def forward_subject(subject: str | None) -> str:
    subject = _one_line(subject or "")
    return subject if _FWD.match(subject) else f"Fwd: {subject}".rstrip()


def _references(fields: dict[bytes, bytes], message_id: str | None) -> tuple[str, ...]:
    # The tail of a long References field holds the nearest ancestors: bound it from the end.
    chain = msg_ids(fields.get(b"references", b"")[-MAX_STRUCTURED:])
    if not chain:  # RFC 5322 §3.6.4: then the parent's In-Reply-To, if it names one message
        parent = msg_ids(fields.get(b"in-reply-to", b"")[:MAX_STRUCTURED])
        chain = parent if len(parent) == 1 else []
    chain = [i for i in chain if _sendable_id(i) and i != message_id]
    if message_id is not None:
        chain.append(message_id)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[1 - MAX_REFERENCES :]]
    return tuple(chain)


def reply(raw: bytes, inbox: str, *, reply_all: bool = False) -> Reply:
    """What a reply from `inbox` (an addr-spec) to the (CRLF-normalized) message carries."""
    header = split_header(raw)[0]
    fields = first_fields(header, _FIELDS)
    own = inbox.strip().lower()
    senders = _mailboxes(header, "Reply-To") or _mailboxes(header, "From")
    to_list, cc_list = _mailboxes(header, "To"), _mailboxes(header, "Cc")
    # Replying to one's own message answers its recipients.
    mine = bool(senders) and all(a.address.lower() == own for a in senders)
    if reply_all:
        to, cc = ([] if mine else senders) + to_list, cc_list
    else:
        to, cc = (to_list if mine else senders), []
    seen = {own}
    ids = [i for i in msg_ids(fields.get(b"message-id", b"")[:MAX_STRUCTURED]) if _sendable_id(i)]
    message_id = ids[0] if ids else None
    subject = fields.get(b"subject")
    return Reply(
        to=_unique(to, seen),
        cc=_unique(cc, seen),
        subject=reply_subject(None if subject is None else decode_words(subject)),
        in_reply_to=message_id,
        references=_references(fields, message_id),
    )


# ---------------------------------------------------------------------------------------------
# Forward

_SEPARATOR = "---------- Forwarded message ---------"
_BODY_START = re.compile(r"<body\b[^>]*>?", re.I)  # ">?": linear on a tag left open
_BODY_END = re.compile(r"</body\s*>", re.I)


def _inner_html(html: str) -> str:
    """The content of an HTML document's body, to sit inside another document."""
    start = _BODY_START.search(html)
    if start is None:
        return html
    end = _BODY_END.search(html, start.end())
    return html[start.end() : len(html) if end is None else end.start()]


def _text_html(text: str) -> str:
    return htmllib.escape(text).replace("\n", "<br>\n")


def _block(header: bytes, fields: dict[bytes, bytes]) -> list[tuple[str, str]]:
    """The original's header lines for the forwarded-message block, as Gmail lists them."""

    def addresses(name: str) -> list[str]:
        return [format_address(*a) for a in address_list(header, name) if a[1]]

    lines = []
    if sender := addresses("From"):
        lines.append(("From", sender[0]))
    for name, key in (("Date", b"date"), ("Subject", b"subject")):
        if key in fields:
            lines.append((name, _one_line(decode_words(fields[key]))))
    for name in ("To", "Cc"):
        if recipients := addresses(name):
            lines.append((name, ", ".join(recipients)))
    return lines


def reattach(info: AttachmentInfo, data: bytes) -> Attachment:
    """An attachment of a stored message, as compose() attaches it again (a forward, a draft
    saved again)."""
    content_type = info.content_type
    if content_type.startswith("message/") and not data.isascii():
        # compose() attaches messages only 7-bit (RFC 2046 §5.2.1): send this one as bytes.
        content_type = "application/octet-stream"
    content_id = info.content_id if info.content_id and _sendable_id(info.content_id) else None
    return Attachment(
        filename=info.filename or "",
        content_type=content_type,
        data=data,
        content_id=content_id,
        inline=content_id is not None and info.content_disposition != "attachment",
    )


def forward(raw: bytes, *, text: str | None = None, html: str | None = None) -> Forward:
    """A forward of the (CRLF-normalized) message, with the forwarder's own `text` and `html`
    above the quoted original."""
    header = split_header(raw)[0]
    fields = first_fields(header, _FIELDS)
    lines = _block(header, fields)
    original_text, original_html = texts(raw)
    if original_text is None:
        original_text = "" if original_html is None else html_to_text(original_html)
    block = "\n".join([_SEPARATOR, *(f"{name}: {value}" for name, value in lines)])
    forward_text = f"{block}\n\n{original_text}"
    own_text = text if text is not None or html is None else html_to_text(html)
    if own_text:
        forward_text = f"{own_text}\n\n{forward_text}"
    forward_html = None
    if html is not None or original_html is not None:
        quoted = (
            _inner_html(original_html) if original_html is not None else _text_html(original_text)
        )
        html_lines = "".join(f"{name}: {htmllib.escape(value)}<br>" for name, value in lines)
        forward_html = f"<div>{_SEPARATOR}<br>{html_lines}<br>{quoted}</div>"
        own = html if html is not None else _text_html(text or "")
        if own:
            forward_html = f"{own}<br><br>{forward_html}"
    subject = fields.get(b"subject")
    return Forward(
        subject=forward_subject(None if subject is None else decode_words(subject)),
        text=forward_text,
        html=forward_html,
        attachments=tuple(reattach(info, data) for info, data in attachments(raw)),
    )
