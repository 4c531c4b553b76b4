"""The API view of a message: what the agentmail SDK's Message shows, from the stored bytes.

Two halves, by cost. ``summarize`` runs at ingest for every delivered message and gives what
lists show: the subject, the addresses as display strings, a preview and the attachment list;
``search_text``, at ingest too, gives the start of the text for the store's full-text index.
``body``, ``attachment`` and ``attachments`` run on request and give what a GET of one message
or one attachment serves: the decoded text and HTML, every header field, the reply without its
quoted history, and an attachment's bytes.

Which parts are the message's bodies and which are attachments:

    text/plain, text/html (no filename,    the first of each is the body; a later one is an
      not Content-Disposition attachment)  attachment if it has a Content-ID, else more text
    anything else                          an attachment: images, files, message/rfc822 ...

An attachment is named by its IMAP part number ("2", "1.2", RFC 3501 §6.4.5): stable for the
bytes, and the same part for imapview.extract_section. An encapsulated message is one
attachment; nothing inside it is this message's body or attachment.

Input is untrusted: nothing here raises on malformed bytes, and the costly steps (an HTML
preview, looking for the quoted history) read a bounded prefix.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import quotequail

from mailgate.mime.addresses import address_list
from mailgate.mime.decoding import decode_text, decode_transfer, decode_words
from mailgate.mime.headers import MAX_STRUCTURED, all_fields, strip_comments
from mailgate.mime.parts import Entity, Params, mime_value, parse, transfer_encoding

__all__ = [
    "PREVIEW_LENGTH",
    "AttachmentInfo",
    "Body",
    "Summary",
    "attachment",
    "attachments",
    "attachments_from_json",
    "attachments_to_json",
    "body",
    "format_address",
    "html_to_text",
    "search_text",
    "summarize",
    "texts",
]

PREVIEW_LENGTH = 200
# Decoded text read for a preview: a first small read fills almost every preview; only text
# that opens with markup or blank space needs the second.
_PREVIEW_READS = (16 * 1024, 256 * 1024)
# The quoted history is looked for only this far into a body: a reply's new content comes
# first, and quotequail costs about a millisecond per kilobyte of text.
MAX_QUOTE_SCAN_TEXT = 32 * 1024
MAX_QUOTE_SCAN_HTML = 128 * 1024
# What search indexes of a message's text: its first characters only, so that one huge message
# costs the index (and ingest) no more than a long letter does.
SEARCH_TEXT_LENGTH = 64 * 1024
# Encoded octets read for it: enough for that much text in base64 or quoted-printable; HTML
# more, for its markup.
_SEARCH_READ_TEXT = 4 * SEARCH_TEXT_LENGTH
_SEARCH_READ_HTML = 8 * SEARCH_TEXT_LENGTH


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One attachment, named as the SDK's Attachment names its fields."""

    attachment_id: str  # the IMAP part number: "2", "1.2"
    filename: str | None
    size: int  # decoded octets
    content_type: str  # "image/png"
    content_disposition: str | None  # "attachment", "inline", or None when the part says none
    content_id: str | None  # without angle brackets


@dataclass(frozen=True, slots=True)
class Summary:
    """What the store keeps per message for the API, computed once at ingest.

    Addresses read "Display Name <addr>" or "addr", groups flattened.
    """

    subject: str | None
    from_: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    reply_to: tuple[str, ...]
    preview: str  # the start of the text, whitespace collapsed, at most PREVIEW_LENGTH
    attachments: tuple[AttachmentInfo, ...]


@dataclass(frozen=True, slots=True)
class Body:
    """What a GET of one message serves beyond the Summary, computed on request."""

    text: str | None
    html: str | None
    extracted_text: str | None  # the text without the quoted history
    extracted_html: str | None
    # Every header field, unfolded and decoded, named as first written; the values of a field
    # that occurs more than once are joined with "\n", which no unfolded value holds.
    headers: dict[str, str]


# ---------------------------------------------------------------------------------------------
# Bodies and attachments: the part tree read as a reader sees it


class _Attached(NamedTuple):
    number: str
    entity: Entity
    disposition: str | None
    filename: str | None


@dataclass(slots=True)
class _Layout:
    text: Entity | None = None
    html: Entity | None = None
    attached: list[_Attached] = field(default_factory=list)


def _leaves(top: Entity) -> Iterator[tuple[str, Entity]]:
    """Every entity that is not a multipart, with its IMAP part number, in order.

    A message that is not multipart is its own part 1; an encapsulated message is a leaf.
    """
    if not top.children:
        yield "1", top
        return
    stack = [(str(i), child) for i, child in enumerate(top.children, 1)][::-1]
    while stack:
        number, entity = stack.pop()
        if entity.children:
            stack.extend([(f"{number}.{i}", c) for i, c in enumerate(entity.children, 1)][::-1])
        else:
            yield number, entity


def _params(params: Params) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in reversed(params)}  # the first one wins


def _disposition(entity: Entity) -> tuple[str | None, dict[bytes, bytes]]:
    value = entity.fields.get(b"content-disposition")
    if value is None:
        return None, {}
    main, params = mime_value(value)
    if not main:
        return None, _params(params)
    # RFC 2183 §2.8: an unrecognized disposition type is treated as "attachment".
    return ("inline" if main.lower() == b"inline" else "attachment"), _params(params)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _filename(entity: Entity, disposition: dict[bytes, bytes]) -> str | None:
    value = disposition.get(b"filename") or _params(entity.params).get(b"name")
    if not value:
        return None
    # RFC 2183 §2.3: directory path information in a filename is not to be trusted. Control
    # characters would break the header a download is served with.
    name = _CONTROL.sub("", decode_words(value)).replace("\\", "/").rpartition("/")[2].strip()
    return name if name.strip(".") else None


def _layout(top: Entity) -> _Layout:
    layout = _Layout()
    for number, entity in _leaves(top):
        disposition, params = _disposition(entity)
        filename = _filename(entity, params)
        if (
            entity.mtype == "text"
            and entity.subtype in ("plain", "html")
            and disposition != "attachment"
            and filename is None
        ):
            if entity.subtype == "plain" and layout.text is None:
                layout.text = entity
                continue
            if entity.subtype == "html" and layout.html is None:
                layout.html = entity
                continue
            if b"content-id" not in entity.fields:
                continue  # more text of the message, not a file
        layout.attached.append(_Attached(number, entity, disposition, filename))
    return layout


def _content_id(entity: Entity) -> str | None:
    value = entity.fields.get(b"content-id")
    if value is None:
        return None
    value = strip_comments(value[:MAX_STRUCTURED]).strip().removeprefix(b"<").removesuffix(b">")
    return _CONTROL.sub("", value.strip().decode("utf-8", "replace")) or None


_B64_LAYOUT = b"\r\n\t ="
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _decoded_size(raw: bytes, entity: Entity) -> int:
    data = raw[entity.body : entity.end]
    encoding = transfer_encoding(entity.fields)
    if encoding == b"base64":
        rest = data.translate(None, _B64_ALPHABET)  # line breaks, padding, and any junk
        pad = data.find(b"=")
        if not rest.translate(None, _B64_LAYOUT) and (
            pad < 0 or not data[pad:].translate(None, _B64_LAYOUT)
        ):
            # Well-formed: every 4 characters are 3 octets, and a tail of 2 or 3 is 1 or 2 (a
            # tail of 1 carries no whole octet), exactly as decode_transfer decodes it.
            return (len(data) - len(rest)) * 3 // 4
        return len(decode_transfer(data, encoding))
    if encoding == b"quoted-printable":
        return len(decode_transfer(data, encoding))
    return len(data)


def _info(attached: _Attached, size: int) -> AttachmentInfo:
    entity = attached.entity
    return AttachmentInfo(
        attachment_id=attached.number,
        filename=attached.filename,
        size=size,
        content_type=f"{entity.mtype}/{entity.subtype}",
        content_disposition=attached.disposition,
        content_id=_content_id(entity),
    )


def _decoded(raw: bytes, entity: Entity) -> bytes:
    return decode_transfer(raw[entity.body : entity.end], transfer_encoding(entity.fields))


def attachments(raw: bytes) -> list[tuple[AttachmentInfo, bytes]]:
    """Every attachment of a (CRLF-normalized) message with its decoded bytes, in order."""
    result = []
    for attached in _layout(parse(raw)).attached:
        data = _decoded(raw, attached.entity)
        result.append((_info(attached, len(data)), data))
    return result


def attachment(raw: bytes, attachment_id: str) -> tuple[AttachmentInfo, bytes] | None:
    """One attachment and its decoded bytes, or None when the message has no such attachment."""
    for attached in _layout(parse(raw)).attached:
        if attached.number == attachment_id:
            data = _decoded(raw, attached.entity)
            return _info(attached, len(data)), data
    return None


def attachments_to_json(items: tuple[AttachmentInfo, ...]) -> str:
    """Attachment metadata as compact JSON, for a text column; the keys are the SDK's."""
    return json.dumps([asdict(item) for item in items], separators=(",", ":"))


def attachments_from_json(text: str) -> tuple[AttachmentInfo, ...]:
    return tuple(AttachmentInfo(**item) for item in json.loads(text))


# ---------------------------------------------------------------------------------------------
# Text


def _clean(text: str) -> str:
    # A decoded value may hold NUL, which no text column may.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _part_text(raw: bytes, entity: Entity, limit: int | None = None) -> tuple[str, bool]:
    """The decoded text of a text part, or of its first `limit` encoded octets:
    (text, whether it is all of it)."""
    end = entity.end if limit is None else min(entity.end, entity.body + limit)
    data = decode_transfer(raw[entity.body : end], transfer_encoding(entity.fields))
    charset = _params(entity.params).get(b"charset")
    text = decode_text(data, charset.decode("ascii", "replace") if charset else None)
    if end < entity.end:
        text = text[:-8]  # the cut may have split an encoded character: drop its remains
    return text.replace("\r\n", "\n"), end == entity.end


def _texts(raw: bytes, layout: _Layout) -> tuple[str | None, str | None]:
    text = None if layout.text is None else _part_text(raw, layout.text)[0]
    html = None if layout.html is None else _part_text(raw, layout.html)[0]
    return text, html


def texts(raw: bytes) -> tuple[str | None, str | None]:
    """The message's text and HTML bodies, decoded, with "\\n" line ends."""
    return _texts(raw, _layout(parse(raw)))


# Characters that take no room: marketing mail pads its preview text with them.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u200b\u200c\u200d\u2060\ufeff"))


def _preview(raw: bytes, layout: _Layout) -> str:
    preview = ""
    for limit in _PREVIEW_READS:
        if layout.text is not None:
            text, whole = _part_text(raw, layout.text, limit)
        elif layout.html is not None:
            html, whole = _part_text(raw, layout.html, limit)
            text = html_to_text(html)
        else:
            return ""
        preview = " ".join(text.translate(_INVISIBLE).split())
        if whole or len(preview) >= PREVIEW_LENGTH:
            break
    return preview[:PREVIEW_LENGTH].rstrip()


# HTML to text, for previews and for quoting an HTML-only message as text. A scan of the
# markup, linear in the input: a full HTML parser would cost more than a preview is worth.
_HTML_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)"  # a comment
    r"|<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*>?"  # a start or end tag: (/, name)
    r"|<[!?/][^>]*>?",  # a doctype, processing instruction or bogus comment
    re.S,
)
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")
# Elements whose content no reader sees, and where it ends (a head also ends where a body
# starts, as browsers read it).
_HIDDEN_END = {
    "head": re.compile(r"</head\s*>|(?=<body\b)", re.I),
    **{name: re.compile(rf"</{name}\s*>", re.I) for name in ("style", "script", "title")},
}
# Blocks that start a line, and those set off by a blank line.
_LINE = re.compile(
    "address|article|aside|div|dd|dl|dt|figcaption|footer|form|header|li|main|nav|tr"
)
_PARAGRAPH = re.compile("blockquote|fieldset|figure|h[1-6]|hr|ol|p|pre|section|table|ul")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """The text a reader sees in an HTML body: blocks on lines of their own, entities decoded."""
    out: list[str] = []
    breaks = 0  # line breaks owed before the next text: adjacent blocks do not add up, <br> do
    pos = 0
    while True:
        m = _HTML_MARKUP.search(html, pos)
        piece = htmllib.unescape(
            _HTML_SPACE.sub(" ", html[pos : len(html) if m is None else m.start()])
        )
        if piece.strip():
            out.append("\n" * breaks if out else "")
            breaks = 0
        out.append(piece)
        if m is None:
            break
        pos = m.end()
        name = (m.group(2) or "").lower()
        if name in _HIDDEN_END and not m.group(1):
            end = _HIDDEN_END[name].search(html, pos)
            pos = len(html) if end is None else end.end()
        elif name == "br":
            breaks += 1
        elif _LINE.fullmatch(name):
            breaks = max(breaks, 1)
        elif _PARAGRAPH.fullmatch(name):
            breaks = max(breaks, 2)
        elif name in ("td", "th"):
            out.append(" ")  # the cells of a row stay on its line
    lines = "\n".join(" ".join(line.split()) for line in "".join(out).split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()


_SPECIALS = re.compile(r'[][\\()<>@,:;".]')  # RFC 5322 §3.2.3


def format_address(name: str, address: str) -> str:
    """ "Display Name <addr>", the name quoted where it holds specials, or "addr" alone."""
    name = " ".join(_CONTROL.sub(" ", name).split())
    if not name:
        return address
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _addresses(header: bytes, name: str) -> tuple[str, ...]:
    return tuple(
        _clean(format_address(display, address))
        for display, address in address_list(header, name)
        if address
    )


def summarize(raw: bytes) -> Summary:
    """What the API lists about a (CRLF-normalized) message, for the store to keep."""
    top = parse(raw)
    header = raw[: top.body]
    layout = _layout(top)
    subject = top.fields.get(b"subject")
    from_ = _addresses(header, "From")
    return Summary(
        subject=None if subject is None else _clean(decode_words(subject)),
        from_=from_[0] if from_ else None,
        to=_addresses(header, "To"),
        cc=_addresses(header, "Cc"),
        bcc=_addresses(header, "Bcc"),
        reply_to=_addresses(header, "Reply-To"),
        preview=_clean(_preview(raw, layout)),
        attachments=tuple(_info(a, _decoded_size(raw, a.entity)) for a in layout.attached),
    )


def search_text(raw: bytes) -> str:
    """The start of what a reader sees of a (CRLF-normalized) message, for full-text search:
    its text body, else its HTML body as text; at most SEARCH_TEXT_LENGTH characters."""
    layout = _layout(parse(raw))
    if layout.text is not None:
        text = _part_text(raw, layout.text, _SEARCH_READ_TEXT)[0]
    elif layout.html is not None:
        text = html_to_text(_part_text(raw, layout.html, _SEARCH_READ_HTML)[0])
    else:
        return ""
    return _clean(text[:SEARCH_TEXT_LENGTH])


# ---------------------------------------------------------------------------------------------
# The body of one message


def _headers(header: bytes) -> dict[str, str]:
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}  # lower-case name -> the name as first written
    for name, value in all_fields(header):
        written = name.decode("utf-8", "replace")
        key = names.setdefault(written.lower(), written)
        values.setdefault(key, []).append(_clean(decode_words(value)))
    return {key: "\n".join(items) for key, items in values.items()}


def _above_quote(split: Callable[..., Any], scan: str, limit: int) -> str | None:
    """The part of `scan` above its quoted history and the line introducing it, or None."""
    try:
        parts = split(scan, limit=limit, quote_intro_line=True)
    except Exception:  # a library failure on hostile input must not fail the request
        return None
    return parts[0][1] if len(parts) == 2 else None


def _extract_text(text: str) -> str:
    scan = text[:MAX_QUOTE_SCAN_TEXT]
    if len(scan) < len(text):
        scan = scan[: scan.rfind("\n") + 1]  # whole lines only
    # A limit past the last line: quotequail would otherwise take what follows it as quoted.
    top = _above_quote(quotequail.quote, scan, scan.count("\n") + 2)
    if top is None or not top.strip():  # nothing quoted, or the reply is interleaved
        return text
    return top.rstrip()


def _extract_html(html: str) -> str:
    scan = html[:MAX_QUOTE_SCAN_HTML]
    if len(scan) < len(html):
        scan = scan[: max(scan.rfind("<"), 0)]  # no cut tag; a cut document parses anyway
    top = _above_quote(quotequail.quote_html, scan, len(scan) + 2)
    if top is None or not html_to_text(top):
        return html
    return top


def body(raw: bytes) -> Body:
    """Text, HTML, their new content without quoted history, and the header fields."""
    top = parse(raw)
    text, html = _texts(raw, _layout(top))
    return Body(
        text=text,
        html=html,
        extracted_text=None if text is None else _extract_text(text),
        extracted_html=None if html is None else _extract_html(html),
        headers=_headers(raw[: top.body]),
    )
