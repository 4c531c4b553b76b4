"""Store errors: one type per thing a caller can get wrong, mapped once at each protocol edge."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class NotFound(StoreError):
    pass


class PodNotFound(NotFound):
    pass


class InboxNotFound(NotFound):
    pass


class MailboxNotFound(NotFound):
    pass


class KeyNotFound(NotFound):
    pass


class DomainNotFound(NotFound):
    pass


class QueueItemNotFound(NotFound):
    pass


class WebhookNotFound(NotFound):
    pass


class PollingWebhookNotFound(NotFound):
    pass


class AlreadyExists(StoreError):
    pass


class PodExists(AlreadyExists):
    pass


class InboxExists(AlreadyExists):
    pass


class MailboxExists(AlreadyExists):
    pass


class DomainExists(AlreadyExists):
    pass


class AlreadySent(StoreError):
    """A send's idempotency key was used before (within a day): nothing was sent this time."""

    def __init__(self, message_id: str, fingerprint: str) -> None:
        super().__init__(f"already sent as {message_id}")
        self.message_id = message_id
        self.fingerprint = fingerprint


class CannotModify(StoreError):
    """The operation is not allowed on this object (a built-in mailbox, a pod with inboxes…)."""


class HasChildren(CannotModify):
    """A mailbox with child mailboxes cannot be deleted (they go first)."""


class InvalidName(StoreError):
    """A mailbox, pod or inbox name the store will not accept."""


class LimitExceeded(StoreError):
    """A hard limit (UID space, name length, number of keywords) would be exceeded."""


class OverQuota(StoreError):
    """An inbox's storage quota leaves no room for what was to be stored there: nothing was."""

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(f"over its storage quota: {', '.join(addresses)}")
        self.addresses = addresses


class Unavailable(StoreError):
    """The database cannot be reached or stayed busy: temporary, the client should retry."""


class Conflict(Unavailable):
    """Concurrent writers kept colliding after the store's own retries: temporary."""
