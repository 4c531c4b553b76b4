"""IMAP URLs (RFC 5092) as CATENATE (RFC 4469 §5) takes them: a message, or a part of one, in a
mailbox of the logged-in user. Pure: text in, an :class:`ImapUrl` or None (not a URL we can
follow: the server answers NO [BADURL]) out.

Both forms name a message by UID: the absolute ``imap://user@host/INBOX;UIDVALIDITY=9/;UID=20``
and the server-relative ``/INBOX/;UID=20/;SECTION=1.2/;PARTIAL=0.1024``. URLAUTH-authorized
URLs (RFC 4467) are not followed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

from mailgate.imap.syntax.commands import parse_section
from mailgate.imap.syntax.reader import MAX_NUMBER
from mailgate.imap.syntax.utf7 import decode_mailbox
from mailgate.imap.syntax.values import ParseError, Section

__all__ = ["ImapUrl", "parse_imap_url"]

_PATH = re.compile(
    # enc-mailbox: bchar has no ";" (RFC 5092 §9), and "//" starts a network path instead.
    r"/(?!/)(?P<mailbox>[^?#;]+?)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})"
    r"(?:/;SECTION=(?P<section>[^/;?#]+))?"
    r"(?:/;PARTIAL=(?P<offset>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?",
    re.I,
)
# RFC 5092 §9: iserver = [iuserinfo "@"] host [":" port], iuserinfo = enc-user [iauth].
_SERVER = re.compile(r"imap://(?:(?P<user>[^@/;]*)(?:;AUTH=[^@/]*)?@)?[^@/]+", re.I)


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """``user`` is the absolute URL's user (None for a server-relative URL); ``section`` is
    None for the whole message; ``partial`` is (offset, length or None)."""

    user: str | None
    mailbox: str
    uidvalidity: int | None
    uid: int
    section: Section | None
    partial: tuple[int, int | None] | None


def parse_imap_url(text: str) -> ImapUrl | None:
    user: str | None = None
    path = text
    server = _SERVER.match(text)
    if server is not None:
        if server.group("user") is None:
            return None
        user = unquote(server.group("user"))
        path = text[server.end() :]
    m = _PATH.fullmatch(path)
    if m is None:
        return None
    try:
        mailbox = decode_mailbox(unquote_to_bytes(m.group("mailbox")))
        section = None
        if m.group("section") is not None:
            section = parse_section(unquote_to_bytes(m.group("section")))
    except ParseError:
        return None
    if mailbox.isascii() and mailbox.upper() == "INBOX":
        mailbox = "INBOX"
    numbers = [m.group(n) for n in ("uidvalidity", "uid", "offset", "length")]
    if any(n is not None and int(n) > MAX_NUMBER for n in numbers):
        return None
    uidvalidity, uid, offset, length = (None if n is None else int(n) for n in numbers)
    assert uid is not None
    partial = None if offset is None else (offset, length)
    return ImapUrl(user, mailbox, uidvalidity, uid, section, partial)
