"""IMAP replies for failures: store errors become `NO [CODE] text` here, and only here."""

from __future__ import annotations

from mailgate.imap.syntax.utf7 import encode_mailbox
from mailgate.store import errors


class Reply(Exception):
    """End the current command with a tagged NO or BAD (RFC 5530 response code optional)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code

    def line(self, tag: str, *, utf8: bool = False) -> bytes:
        """The tagged reply. Its text is UTF-8 only to a session that enabled it (RFC 9051
        Appendix E item 24); to others a mailbox name in it is modified UTF-7, as they know it."""
        code = f"[{self.code}] " if self.code else ""
        text = self.text
        if not utf8 and not text.isascii():
            text = encode_mailbox(text).decode("ascii")
        return f"{tag} {self.status} {code}{text}\r\n".encode("utf-8", "replace")


def no(text: str, code: str | None = None) -> Reply:
    return Reply("NO", text, code)


def bad(text: str, code: str | None = None) -> Reply:
    return Reply("BAD", text, code)


def from_store(exc: errors.StoreError, *, destination: bool = False) -> Reply:
    """The reply for a store error. `destination`: the mailbox a message was to go into, where a
    missing mailbox is TRYCREATE (RFC 3501 §6.3.11) rather than NONEXISTENT."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, errors.MailboxNotFound):
        return no(text, "TRYCREATE" if destination else "NONEXISTENT")
    if isinstance(exc, errors.NotFound):
        return no(text, "NONEXISTENT")
    if isinstance(exc, errors.AlreadyExists):
        return no(text, "ALREADYEXISTS")
    if isinstance(exc, errors.CannotModify | errors.InvalidName):
        return no(text, "CANNOT")
    if isinstance(exc, errors.OverQuota):
        return no("Mailbox is over its storage quota", "OVERQUOTA")
    if isinstance(exc, errors.LimitExceeded):
        return no(text, "LIMIT")
    if isinstance(exc, errors.Unavailable):
        return no("The message store is temporarily unavailable, try again", "UNAVAILABLE")
    return no(text, "SERVERBUG")
