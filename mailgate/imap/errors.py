"""IMAP replies for failures: store errors become `NO [CODE] text` here, and only here."""

from __future__ import annotations

from mailgate.store import errors


class Reply(Exception):
    """End the current command with a tagged NO or BAD (RFC 5530 response code optional)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code

    def line(self, tag: str) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{tag} {self.status} {code}{self.text}\r\n".encode("utf-8", "replace")


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
