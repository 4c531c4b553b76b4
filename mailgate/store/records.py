"""What the store returns: frozen values, never ORM rows."""

from __future__ import annotations

import datetime
import enum
from array import array
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = (
    "\\Seen",
    "\\Answered",
    "\\Flagged",
    "\\Deleted",
    "\\Draft",
)
FLAG_BITS: dict[str, int] = {SEEN: 1, ANSWERED: 2, FLAGGED: 4, DELETED: 8, DRAFT: 16}
SYSTEM_FLAGS: tuple[str, ...] = tuple(FLAG_BITS)

INBOX = "INBOX"
SENT = "Sent"
SPAM = "Spam"
DRAFTS = "Drafts"
TRASH = "Trash"
# The mailboxes every inbox has, with their RFC 6154 special-use attribute.
BUILTIN_MAILBOXES: dict[str, str | None] = {
    INBOX: None,
    SENT: "\\Sent",
    TRASH: "\\Trash",
    SPAM: "\\Junk",
    DRAFTS: "\\Drafts",
}
HIERARCHY_DELIMITER = "/"
# The keyword on a sent message that some recipient's server refused for good (the bounce is
# in the sender's INBOX); the HTTP API shows it as the "bounced" label.
BOUNCED = "$Bounced"


class Unset:
    """A parameter not given (where None means "clear it")."""

    __slots__ = ()


UNSET = Unset()


def split_flags(flags: tuple[str, ...] | frozenset[str] | list[str]) -> tuple[int, str]:
    """(bitmask, keyword text) for a set of flags; keywords keep their case, sorted."""
    bits = 0
    keywords: set[str] = set()
    for flag in flags:
        bit = FLAG_BITS.get(flag)
        if bit is None:
            keywords.add(flag)
        else:
            bits |= bit
    return bits, " ".join(sorted(keywords))


@lru_cache(maxsize=4096)
@lru_cache(maxsize=4096)
def join_flags(bits: int, keywords: str) -> tuple[str, ...]:
    """The flags of a message as the IMAP layer shows them: system flags first, then keywords.
    Cached: a mailbox's messages share a few combinations, and FETCH and SEARCH ask per row."""
    system = tuple(name for name, bit in FLAG_BITS.items() if bits & bit)
    return system + tuple(keywords.split()) if keywords else system


@dataclass(frozen=True, slots=True)
class Pod:
    id: int
    name: str
    created_at: int
    client_id: str | None = None  # the API's, for idempotent creation
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Inbox:
    id: int
    pod_id: int
    pod: str
    address: str
    created_at: int
    display_name: str | None = None
    client_id: str | None = None  # the API's, for idempotent creation
    metadata: str | None = None  # a JSON object, set over the API
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    pod_id: int | None  # None: an organization key, for every pod
    pod: str | None
    inbox_id: int | None  # None: every inbox of the pod (or of every pod)
    inbox: str | None
    label: str
    created_at: int
    revoked_at: int | None
    secret_hash: str = field(repr=False)
    updated_at: int = 0

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope(self) -> str:
        """ "organization", "pod" or "inbox": what the key opens."""
        if self.inbox_id is not None:
            return "inbox"
        return "organization" if self.pod_id is None else "pod"


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    inbox_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    keywords: tuple[str, ...]
    recent_uid: int = 1  # the lowest UID no session has claimed as \Recent yet

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_MAILBOXES


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    messages: int
    unseen: int
    deleted: int
    size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    recent: int = 0  # messages no session has claimed as \Recent yet
    deleted_size: int = 0  # bytes EXPUNGE would free (RFC 9208 DELETED-STORAGE)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A mailbox as SELECT first shows it: the UID of each sequence number, and its counters."""

    mailbox: Mailbox
    uids: array[int]
    unseen: int
    first_unseen: int | None  # sequence number of the first message without \Seen


@dataclass(frozen=True, slots=True)
class EntryState:
    uid: int
    flags: tuple[str, ...]
    modseq: int


# -------------------------------------------------------------------- entry filters
# What Entries.matching_entries finds in the database (IMAP SEARCH keys about flags, sizes, UIDs
# and MODSEQs, and text in the index built at ingest), so that a search is one query, not a scan
# of every row in Python.


@dataclass(frozen=True, slots=True)
class EveryEntry:
    pass


@dataclass(frozen=True, slots=True)
class HasFlag:
    """A system flag (as FLAG_BITS spells it) or a keyword (any case) is set."""

    flag: str


@dataclass(frozen=True, slots=True)
class SizeAbove:
    size: int


@dataclass(frozen=True, slots=True)
class SizeBelow:
    size: int


@dataclass(frozen=True, slots=True)
class UidIn:
    """In these inclusive UID ranges (at most MAX_FILTER_RANGES of them)."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ModSeqFrom:
    modseq: int


@dataclass(frozen=True, slots=True)
class FieldHas:
    """A SUBJECT, FROM, TO, CC or BCC field (mime/imapsearch.INDEXED_FIELDS) holds `needle`
    (as mime/imapsearch.searchable gives it) in a value; an empty needle: the field is there."""

    field: str
    needle: str


@dataclass(frozen=True, slots=True)
class HeadersHave:
    """The text index of the header fields holds `needle` somewhere (a superset of HEADER's
    matches for any field): in a field's name or value, maybe across the two."""

    needle: str


@dataclass(frozen=True, slots=True)
class HeaderHas:
    """The header section, as TEXT reads it, holds `needle` (as searchable gives it)."""

    needle: str


@dataclass(frozen=True, slots=True)
class BodyHas:
    """The indexed start of the body's text holds `needle` (as searchable gives it)."""

    needle: str


@dataclass(frozen=True, slots=True)
class BodyWhole:
    """The body's text is indexed whole, not only its start (mime/imapsearch.BODY_INDEXED)."""


@dataclass(frozen=True, slots=True)
class AllOf:
    filters: tuple[EntryFilter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    filters: tuple[EntryFilter, ...]


@dataclass(frozen=True, slots=True)
class NoneOf:
    filter: EntryFilter


EntryFilter = (
    EveryEntry
    | HasFlag
    | SizeAbove
    | SizeBelow
    | UidIn
    | ModSeqFrom
    | FieldHas
    | HeadersHave
    | HeaderHas
    | BodyHas
    | BodyWhole
    | AllOf
    | AnyOf
    | NoneOf
)
MAX_FILTER_RANGES = 64  # UID ranges in one UidIn: a longer list is one term per range in SQL


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a mailbox after a MODSEQ: the catch-up a session applies."""

    highestmodseq: int
    uidnext: int
    keywords: tuple[str, ...]
    changed: list[EntryState]  # new messages and flag changes, in UID order
    expunged: list[int]  # UIDs, ascending
    exists: bool = True  # False once the mailbox was deleted
    # Every UID still present, given instead when expunges after the asked MODSEQ have been
    # forgotten: what a session knows and this lacks is gone.
    present: frozenset[int] | None = None
    recent_uid: int = 1  # the mailbox's recent_uid at this moment (see Mailbox)


# Not frozen: FETCH builds one per message, and a frozen dataclass's __init__ sets each of these
# fields through object.__setattr__, about three times the cost.
@dataclass(slots=True)
class FetchRow:
    """One message entry with the columns a FETCH asked for (others are None)."""

    uid: int
    flags: tuple[str, ...]
    modseq: int
    internaldate: datetime.datetime
    size: int
    envelope: bytes | None = None
    body: bytes | None = None
    bodystructure: bytes | None = None
    header: bytes | None = None
    parts: bytes | None = None
    data: bytes | None = None
    sent_date: datetime.datetime | None = None
    msgid: str | None = None  # the Message-ID, "<id@host>"
    in_reply_to: str | None = None
    references: tuple[str, ...] | None = None
    thread: str | None = None  # the public id of its thread (RFC 8474 THREADID)
    blob_id: int | None = None  # the stored message (RFC 8474 EMAILID)
    saved_date: datetime.datetime | None = None  # put into this mailbox (RFC 8514 SAVEDATE)
    preview: str | None = None  # the HTTP API's preview of its text (RFC 8970 PREVIEW)


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a message landed: one per target mailbox."""

    mailbox_id: int
    uidvalidity: int
    uid: int


# The events the store reports (the agentmail SDK's names).
RECEIVED = "message.received"
RECEIVED_UNAUTHENTICATED = "message.received.unauthenticated"
SENT_EVENT = "message.sent"
DELIVERED = "message.delivered"
BOUNCED_EVENT = "message.bounced"
DOMAIN_VERIFIED = "domain.verified"


@dataclass(frozen=True, slots=True)
class Notice:
    """An event the API is to report about a message as it is filed (store/outbox.py): its
    type (the SDK's: "message.received", "message.sent" ...) and the recipients it names."""

    event_type: str
    recipients: tuple[str, ...] = ()


class QuotaRule(enum.Enum):
    """How a message filed in a mailbox meets its inbox's storage quota (store/quota.py)."""

    # It must fit under the limit: what a client stores itself (IMAP APPEND and COPY, the
    # API's drafts), so the client is told at once and can make room.
    FIT = "fit"
    # The inbox must not be full yet: mail delivered to it (SMTP, a send through the API). The
    # message that fills it is taken whole, as Dovecot's quota_grace does, so that one reply
    # to DATA holds for every recipient.
    NOT_FULL = "not-full"
    # Not checked: the sender's own Sent copy and reports to the sender (counted all the same).
    EXEMPT = "exempt"


@dataclass(frozen=True, slots=True)
class Target:
    """A mailbox a message is to be filed in, with its initial flags, the events that
    report its arrival there and how it meets the inbox's quota."""

    mailbox_id: int
    flags: tuple[str, ...] = ()
    notices: tuple[Notice, ...] = ()
    quota: QuotaRule = QuotaRule.FIT


@dataclass(frozen=True, slots=True)
class Quota:
    """An inbox's storage (RFC 9208 STORAGE): what its messages take over all its mailboxes
    (each entry counted, as IMAP's RFC822.SIZE), and its limit; both in bytes, limit 0: none."""

    used: int
    limit: int

    @property
    def full(self) -> bool:
        return 0 < self.limit <= self.used


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook endpoint (store/webhooks.py): whose it is, where its events go and which,
    and how far along the outbox its deliveries are."""

    id: int
    public_id: str  # the API's webhook_id
    pod_id: int | None  # the owner's pod (an inbox webhook's: its inbox's); None: organization
    pod: str | None  # that pod's name
    inbox_id: int | None  # the owning inbox, if an inbox owns it
    inbox: str | None  # its address
    url: str
    secret: str  # whsec_..., Svix's format
    event_types: tuple[str, ...] | None  # None: every type
    pod_ids: tuple[str, ...] | None  # pod names; with inbox_ids None too: every event it may see
    inbox_ids: tuple[str, ...] | None  # inbox addresses
    headers: tuple[tuple[str, str], ...]  # sent with each delivery
    client_id: str | None
    enabled: bool
    disabled_reason: str | None
    cursor: int  # the last event seq done with
    attempts: int  # failed attempts at the event after the cursor
    next_attempt_at: int
    failing_since: int | None
    last_error: str | None
    lease_owner: str | None
    lease_until: int | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class PollingWebhook:
    """A polling webhook (store/polling.py): whose it is, which events it takes, the hash of
    the token that reads it, and the destination its consumer subscribed."""

    id: int
    public_id: str  # the API's webhook_id
    pod_id: int | None  # the owner's pod (an inbox's: its inbox's); None: organization
    pod: str | None  # that pod's name
    inbox_id: int | None  # the owning inbox, if an inbox owns it
    inbox: str | None  # its address
    client_id: str
    event_types: tuple[str, ...] | None  # None: every type
    pod_ids: tuple[str, ...] | None  # pod names; with inbox_ids None too: every event it may see
    inbox_ids: tuple[str, ...] | None  # inbox addresses
    token_hash: str  # SHA-256 (hex) of the token
    start_seq: int  # consumers read the events after it
    destination: dict[str, Any] | None  # what Svix's consumer subscribed; None: not yet
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class PollingPosition:
    """Where a consumer of a polling webhook reads next: after `after` (its commit, or the
    end of its lease while that runs)."""

    after: int
    committed: int


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event of the outbox, as it was written with the change it reports."""

    seq: int  # the order events committed in
    event_id: str
    event_type: str
    pod: str | None  # the pod's public id (its name)
    inbox: str | None  # the inbox's public id (its address)
    blob_id: int | None  # the stored message, if it still exists
    message_id: str | None  # the API's message_id
    thread_id: str | None  # the thread's public id
    detail: dict[str, Any]  # recipients, reason, domain ... (JSON)
    created_at: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A recipient on another server: a row for the outbound queue."""

    mail_from: str  # envelope sender ("" for none)
    recipient: str
    inbox_id: int | None  # the sending inbox, which gets the bounce if delivery fails
    smtputf8: bool = False  # submitted with SMTPUTF8 (RFC 6531)


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """A send made with an idempotency key: kept with the send, so that a retry of the same
    request is answered with `message_id` instead of sending again."""

    inbox_id: int
    key: str
    fingerprint: str  # of the request, so that the key reused for another request is told
    message_id: str


# How long a send's idempotency key is remembered.
RECEIPT_LIFETIME = 24 * 3600


@dataclass(frozen=True, slots=True)
class Parcel:
    """One message, the mailboxes it goes to and the remote recipients it is queued for."""

    raw: bytes
    targets: tuple[Target, ...]
    internaldate: datetime.datetime | None = None  # None: now
    outbound: tuple[Outgoing, ...] = ()


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    id: int
    blob_id: int  # the stored message to send (Store.blob)
    inbox_id: int | None
    mail_from: str
    recipient: str
    domain: str
    created_at: int
    next_attempt_at: int
    attempts: int
    last_reply: str
    lease_owner: str | None
    lease_until: int | None
    smtputf8: bool = False  # submitted with SMTPUTF8 (RFC 6531)


@dataclass(frozen=True, slots=True)
class DomainKey:
    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private_key: str = field(repr=False)
    public_key: str
    active: bool  # signs outgoing mail; an inactive key is only still published
    created_at: int


@dataclass(frozen=True, slots=True)
class Domain:
    id: int
    name: str
    spf: str
    dmarc: str
    created_at: int
    keys: tuple[DomainKey, ...]
    verified_at: int | None = None  # when a check first found its records published

    @property
    def signing_keys(self) -> tuple[DomainKey, ...]:
        return tuple(k for k in self.keys if k.active)


@dataclass(frozen=True, slots=True)
class SenderRule:
    id: int
    scope: str  # "inbox" or "pod"
    owner: str  # the inbox address or the pod name
    action: str  # "allow" or "block"
    entry: str  # an address, or a domain
    created_at: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int  # of the destination
    source_uids: list[int]
    dest_uids: list[int]


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    """Result of a STORE: new flags of the entries it touched, and what it had to skip."""

    updated: list[EntryState]
    modified: list[int]  # UIDs left alone because of UNCHANGEDSINCE (RFC 7162)
    highestmodseq: int
