"""CATENATE (RFC 4469): an APPENDed message made of literal text and parts of messages the user
already has, named by IMAP URLs (RFC 5092). Every URL is resolved, and the whole message
assembled, before anything is stored: a URL that does not resolve fails the command with
NO [BADURL url], a result over the size limit with NO [TOOBIG], and nothing is kept."""

from __future__ import annotations

from mailgate.imap.errors import no
from mailgate.imap.interfaces import Session
from mailgate.imap.syntax.imapurl import ImapUrl, parse_imap_url
from mailgate.imap.syntax.values import CatenatePart
from mailgate.mime.imapview import extract_section
from mailgate.store.errors import InvalidName, NotFound

_BADURL_TEXT = str.maketrans("", "", "\x00\r\n]")  # RFC 4469 §6: url-resp-text has no "]"


def _bad_url(url: str) -> Exception:
    return no(
        "The URL does not name a message part of yours", f"BADURL {url.translate(_BADURL_TEXT)}"
    )


async def _resolve(s: Session, url: ImapUrl) -> bytes | None:
    assert s.principal is not None
    # RFC 4469 §5: only the user's own mail; an absolute URL must name this user.
    if url.user is not None and url.user.lower() != s.principal.address.lower():
        return None
    try:
        box = await s.store.get_mailbox(s.principal.inbox.id, url.mailbox)
    except (NotFound, InvalidName):
        return None
    if url.uidvalidity is not None and url.uidvalidity != box.uidvalidity:
        return None
    rows = await s.store.fetch(box.id, [(url.uid, url.uid)], {"data", "parts"})
    if not rows or rows[0].data is None:
        return None
    data, section = rows[0].data, url.section
    if section is not None:
        part = extract_section(
            data, rows[0].parts or b"", section.part, section.specifier, section.fields
        )
        if part is None:
            return None
        data = part
    if url.partial is not None:
        offset, length = url.partial
        data = data[offset:] if length is None else data[offset : offset + length]
    return data


async def assemble(s: Session, parts: tuple[CatenatePart, ...], limit: int) -> bytes:
    """The message the parts make, in order."""
    pieces: list[bytes] = []
    size = 0
    for part in parts:
        if part.text is not None:
            piece = part.text
        else:
            assert part.url is not None
            url = parse_imap_url(part.url)
            resolved = None if url is None else await _resolve(s, url)
            if resolved is None:
                raise _bad_url(part.url)
            piece = resolved
        size += len(piece)
        if size > limit:
            raise no(f"The message is larger than the limit of {limit} bytes", "TOOBIG")
        pieces.append(piece)
    return b"".join(pieces)
