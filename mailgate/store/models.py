"""SQLAlchemy tables. Private to the store: nothing outside `mailgate.store` sees a row.

Times are integer Unix seconds (the same on SQLite and PostgreSQL). A message's bytes live once
in `blobs`, its IMAP metadata (computed at ingest) once in `messages`, and each mailbox that
holds it has an `entries` row with its own UID, flags and MODSEQ.

In code, a `messages` row and its blob are one *stored message*, named by its *blob id*; the
`message_id` columns of `entries`, `blobs` and `outbound` hold that id (never a Message-ID).

Ids are never reused (SQLite AUTOINCREMENT; PostgreSQL sequences never go back): sessions and
event subscriptions hold inbox and mailbox ids, and a deleted mailbox's id coming back as
another's would show one mailbox's messages in another.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

pods = Table(
    "pods",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    # The API's client id: creating with one that exists returns that pod (idempotent).
    Column("client_id", String(255), nullable=True, unique=True),
    Column("updated_at", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)

inboxes = Table(
    "inboxes",
    metadata,
    Column("id", Id, primary_key=True),
    Column("pod_id", Id, ForeignKey("pods.id", ondelete="CASCADE"), nullable=False, index=True),
    # Stored lower-cased: addresses compare case-insensitively.
    Column("address", String(320), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("display_name", String(255), nullable=True),
    Column("client_id", String(255), nullable=True, unique=True),
    Column("metadata", Text, nullable=True),  # a JSON object, set over the API
    Column("updated_at", BigInteger, nullable=True),
    # Storage quota in bytes (store/quota.py); NULL: [limits] inbox_quota, 0: none.
    Column("quota", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)

# Database-wide counters. "uidvalidity": the last UIDVALIDITY handed out. It is global, not per
# inbox, so that deleting an inbox and creating it again never repeats a UIDVALIDITY that a
# client may still have cached for (address, mailbox name) (RFC 3501 §2.3.1.1).
counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # NULL: an organization key, which covers every pod.
    Column("pod_id", Id, ForeignKey("pods.id", ondelete="CASCADE"), nullable=True, index=True),
    # NULL: the key covers every inbox of its pod.
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=True),
    Column("secret_hash", String(64), nullable=False),
    Column("label", String(255), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=True),  # its label was last changed
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("name", String(1000), nullable=False),
    Column("special_use", String(16), nullable=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),
    Column("highestmodseq", BigInteger, nullable=False),
    # Every keyword ever set here, space-separated: the FLAGS a SELECT announces.
    Column("keywords", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    # Expunge records up to this MODSEQ have been forgotten (Store.prune_expunged).
    Column("pruned_modseq", BigInteger, nullable=False, server_default="0"),
    # \Recent (RFC 3501 §2.3.2): UIDs from here on have not been claimed as recent by any
    # session yet (Store.claim_recent); one session, on any node, gets each.
    Column("recent_uid", BigInteger, nullable=False, server_default="1"),
    # The sizes of its entries added up, kept in the transactions that add and remove them
    # under the mailbox's lock: an inbox's quota usage is the sum over its few mailboxes.
    Column("size", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("inbox_id", "name", name="uq_mailboxes_inbox_id_name"),
    sqlite_autoincrement=True,
)

# The names an inbox subscribes to (RFC 3501 §6.3.6): kept apart from the mailboxes, since a
# subscription outlives its mailbox (LIST answers it \NonExistent) until UNSUBSCRIBE.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(1000), nullable=False),
    UniqueConstraint("inbox_id", "name", name="uq_subscriptions_inbox_id_name"),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("header", LargeBinary, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("bodystructure", LargeBinary, nullable=False),
    Column("parts", LargeBinary, nullable=False),
    Column("sent_date", BigInteger, nullable=True),
    Column("sent_date_tz", SmallInteger, nullable=False, server_default="0"),
    # What threads are built from (ingest.thread_ids): msg-ids as "<id@host>", References
    # space-separated; NULL where the message has none (or only junk).
    Column("msgid", Text, nullable=True),
    Column("in_reply_to", Text, nullable=True),
    Column("refs", Text, nullable=False, server_default=""),
    # What the HTTP API lists (mime/apiview.py's summary): addresses as "Name <addr>", lists as
    # JSON arrays; the decoded subject; the start of the text; the attachments, as JSON.
    Column("subject", Text, nullable=True),
    Column("from_addr", Text, nullable=True),
    Column("to_addrs", Text, nullable=True),
    Column("cc_addrs", Text, nullable=True),
    Column("bcc_addrs", Text, nullable=True),
    Column("reply_to", Text, nullable=True),
    Column("preview", Text, nullable=True),
    Column("attachments", Text, nullable=False, server_default="[]"),
    # What IMAP SORT and THREAD compare (mime/sortkeys.py): keys already casemapped; the
    # subject's "it is a reply or forward" besides its base subject.
    Column("sort_subject", Text, nullable=False, server_default=""),
    Column("subject_reply", Boolean, nullable=False, server_default=false()),
    Column("sort_from", Text, nullable=False, server_default=""),
    Column("sort_to", Text, nullable=False, server_default=""),
    Column("sort_cc", Text, nullable=False, server_default=""),
    Column("sort_display_from", Text, nullable=False, server_default=""),
    Column("sort_display_to", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_messages_msgid", "msgid"),
    Index("ix_messages_in_reply_to", "in_reply_to"),
    sqlite_autoincrement=True,
)

blobs = Table(
    "blobs",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# What search matches a stored message by (store/search.py), made at ingest: the sender, the
# recipients (To, Cc and Bcc, one a line) and the subject as the API shows them, case-folded for
# substring matching; and the start of the decoded text (mime/apiview.search_text), which the
# full-text index covers. That index is the database's own and is not declared here (see
# declared()): on SQLite the FTS5 table FULL_TEXT_INDEX, whose external content is this table,
# kept in step by triggers on it (so a batch rebuild of this table must make them again); on
# PostgreSQL the generated column FULL_TEXT_INDEX, to_tsvector('simple', body), and its GIN
# index of the same name. Migration 0008 makes both.
search_texts = Table(
    "search_texts",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("sender", Text, nullable=False, server_default=""),
    Column("recipients", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False, server_default=""),
    Column("body", Text, nullable=False, server_default=""),
)
FULL_TEXT_INDEX = "search_body"

# What IMAP SEARCH matches (mime/imapsearch.py), per stored message, case-folded, so that header
# and text searches are substring tests in SQL instead of a parse of every message. Two tables:
# a header search reads only the small one. FIELD_COLUMNS: SUBJECT, FROM, TO, CC and BCC.
FIELD_COLUMNS = {
    "subject": "subject",
    "from": "from_field",
    "to": "to_field",
    "cc": "cc_field",
    "bcc": "bcc_field",
}
header_texts = Table(
    "header_texts",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    *(Column(c, Text, nullable=False, server_default="") for c in FIELD_COLUMNS.values()),
    Column("headers", Text, nullable=False, server_default=""),  # every field: HEADER
    Column("header", Text, nullable=False, server_default=""),  # the section: TEXT
)
body_texts = Table(
    "body_texts",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("body", Text, nullable=False, server_default=""),
    Column("whole", Boolean, nullable=False, server_default=true()),
)

# The conversations of an inbox (store/threads.py says how messages are grouped into them).
threads = Table(
    "threads",
    metadata,
    Column("id", Id, primary_key=True),
    # What the API and IMAP (THREADID) call the thread.
    Column("public_id", String(36), nullable=False, unique=True),
    Column(
        "inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    # The base subject (no Re:/Fwd:), case-folded, for replies without usable references.
    Column("subject", String(200), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("last_message_at", BigInteger, nullable=False),
    Index("ix_threads_inbox_subject", "inbox_id", "subject"),
    Index("ix_threads_inbox_last_message_at", "inbox_id", "last_message_at"),
    sqlite_autoincrement=True,
)

entries = Table(
    "entries",
    metadata,
    Column("mailbox_id", Id, ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False),
    # System flags as a bitmask (see records.FLAG_BITS), so UNSEEN counts stay in SQL.
    Column("flags", SmallInteger, nullable=False),
    Column("keywords", Text, nullable=False, server_default=""),
    Column("modseq", BigInteger, nullable=False),
    Column("internaldate", BigInteger, nullable=False),
    Column("internaldate_tz", SmallInteger, nullable=False, server_default="0"),
    # The conversation it belongs to in its inbox; every entry has one (NULL only while an
    # upgrade fills it in).
    Column("thread_id", Id, ForeignKey("threads.id"), nullable=True),
    # RFC 8514 SAVEDATE: when it was put into this mailbox (a copy gets its own), epoch
    # seconds. Nullable only because a NOT NULL column would make SQLite rebuild the table on
    # upgrade; the upgrade gives older entries their internal date, and reads fall back to it.
    Column("saved_at", BigInteger, nullable=True),
    Index("ix_entries_mailbox_modseq", "mailbox_id", "modseq"),
    Index("ix_entries_message_id", "message_id"),
    Index("ix_entries_thread_id", "thread_id"),
)

# Tombstones: which UIDs left a mailbox at which MODSEQ, so sessions (and later QRESYNC)
# can learn about expunges they did not see happen. Kept for a day (Store.prune_expunged).
expunged = Table(
    "expunged",
    metadata,
    Column("mailbox_id", Id, ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    Column("modseq", BigInteger, nullable=False),
    Column("expunged_at", BigInteger, nullable=False, server_default="0"),
    Index("ix_expunged_mailbox_modseq", "mailbox_id", "modseq"),
    Index("ix_expunged_expunged_at", "expunged_at"),
)

# Server-wide secrets, made once and shared by every node: "tokens" signs the API's page tokens
# and download links.
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

# ------------------------------------------------------------------ mail to and from the world

domains = Table(
    "domains",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(253), nullable=False, unique=True),
    # The SPF and DMARC records `mailgate domain dns` tells the owner to publish.
    Column("spf", String(1000), nullable=False),
    Column("dmarc", String(1000), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # When a check first found its records published (the domain.verified event); NULL before.
    Column("verified_at", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)

dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "domain_id", Id, ForeignKey("domains.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    # Active keys sign outgoing mail; a retired key stays published until its owner removes it.
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_id_selector"),
    sqlite_autoincrement=True,
)

# One row per recipient still to be sent to another server. It keeps its message (and blob)
# alive; a delivery worker claims due rows with a lease, so that on PostgreSQL several nodes
# share the queue and a recipient is sent by one of them.
outbound = Table(
    "outbound",
    metadata,
    Column("id", Id, primary_key=True),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False, index=True),
    # The sending inbox, which gets the bounce; NULL once that inbox is deleted.
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="SET NULL"), nullable=True),
    Column("mail_from", String(320), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("domain", String(253), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_reply", Text, nullable=False, server_default=""),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    # Submitted with SMTPUTF8 (RFC 6531): its UTF-8 header fields need a next hop offering it.
    Column("smtputf8", Boolean, nullable=False, server_default=false()),
    Index("ix_outbound_next_attempt_at", "next_attempt_at"),
    sqlite_autoincrement=True,
)

# What a send with an Idempotency-Key sent, so that a retry within a day returns it rather than
# sending again; written in the send's own transaction.
send_receipts = Table(
    "send_receipts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("inbox_id", Id, ForeignKey("inboxes.id"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # of the request: same key, same request
    Column("message_id", Text, nullable=False),  # the Message-ID it sent
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("inbox_id", "key", name="uq_send_receipts_inbox_key"),
    Index("ix_send_receipts_created_at", "created_at"),
    sqlite_autoincrement=True,
)

# Allow and block lists, per inbox or per pod: an entry is an address or a domain.
sender_rules = Table(
    "sender_rules",
    metadata,
    Column("id", Id, primary_key=True),
    Column("pod_id", Id, ForeignKey("pods.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("action", String(8), nullable=False),
    Column("entry", String(320), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("reason", String(255), nullable=True),  # why it was listed, as the API was told
    sqlite_autoincrement=True,
)

# ------------------------------------------------------------------ events the API reports

# The event outbox: one row per event the API reports (message.received, message.sent, ...),
# written in the transaction of the change it reports. `seq` orders them as they committed
# (store/outbox.py); webhooks, websockets and listings read from here. Pod and inbox are their
# public names, not references, so that an event outlives a deleted inbox until it is sent.
events = Table(
    "events",
    metadata,
    Column("seq", Id, primary_key=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("pod", String(255), nullable=True),
    Column("inbox", String(320), nullable=True),
    Column("blob_id", BigInteger, nullable=True),  # the stored message, while it lasts
    Column("message_id", Text, nullable=True),  # the API's message_id (a Message-ID)
    Column("thread_id", String(36), nullable=True),  # the thread's public id
    Column("detail", Text, nullable=False, server_default="{}"),  # JSON: recipients, reason ...
    Column("created_at", BigInteger, nullable=False),
    Index("ix_events_inbox_seq", "inbox", "seq"),
    Index("ix_events_pod_seq", "pod", "seq"),
    Index("ix_events_created_at", "created_at"),
    Index("ix_events_inbox_created_at", "inbox", "created_at"),  # the sending rate
    sqlite_autoincrement=True,
)

# Failed logins in a row, per client address and login name, shared by every node
# (store/logins.py); rows go when the name logs in, or once stale.
login_failures = Table(
    "login_failures",
    metadata,
    Column("client", String(64), primary_key=True),
    Column("name", String(320), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Index("ix_login_failures_client_last_at", "client", "last_at"),
    Index("ix_login_failures_last_at", "last_at"),
)

# Inbox events: a label a message gained or lost (label.added, label.removed), written in the
# transaction of the change (store/labelling.py); `id` orders them, and names them to the API.
label_events = Table(
    "label_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("message_id", Text, nullable=False),  # the API's message_id
    Column("event_type", String(16), nullable=False),
    Column("label", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_label_events_inbox_id_id", "inbox_id", "id"),
    Index("ix_label_events_created_at", "created_at"),
    sqlite_autoincrement=True,
)

# Webhook endpoints. Each reads the event outbox from its own cursor, in order: the event after
# `cursor` that matches its filters is sent until it is answered 2xx, then the cursor moves on.
# A node claims an endpoint with a lease, as it claims outbound mail.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("public_id", String(64), nullable=False, unique=True),
    # Who owns it: an inbox (and its pod), a pod, or (both NULL) the organization.
    Column("pod_id", Id, ForeignKey("pods.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("event_types", Text, nullable=True),  # JSON lists; NULL: every one
    Column("pod_ids", Text, nullable=True),
    Column("inbox_ids", Text, nullable=True),
    Column("headers", Text, nullable=False, server_default="{}"),  # JSON object
    # "org", "pod:<id>" or "inbox:<id>": whose `client_id`s are unique together (a create
    # repeated with one returns the same webhook; another owner may use the same one).
    Column("owner", String(64), nullable=False),
    Column("client_id", String(255), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text, nullable=True),
    Column("cursor", BigInteger, nullable=False),  # the last event seq done with
    Column("attempts", Integer, nullable=False, server_default="0"),  # on the next event
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("failing_since", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_webhooks_next_attempt_at", "next_attempt_at"),
    UniqueConstraint("owner", "client_id", name="uq_webhooks_owner_client_id"),
    sqlite_autoincrement=True,
)

# Polling webhooks: subscriptions an agent reads with Svix's consumer API instead of receiving
# them at a URL. The token that reads one is shown once and kept only as its SHA-256.
polling_webhooks = Table(
    "polling_webhooks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("public_id", String(64), nullable=False, unique=True),
    # Who owns it, as for webhooks: an inbox (and its pod), a pod, or the organization.
    Column("pod_id", Id, ForeignKey("pods.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("inbox_id", Id, ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("owner", String(64), nullable=False),  # "org", "pod:<id>" or "inbox:<id>"
    Column("client_id", String(255), nullable=False),
    Column("event_types", Text, nullable=True),  # JSON lists; NULL: every one
    Column("pod_ids", Text, nullable=True),
    Column("inbox_ids", Text, nullable=True),
    Column("token_hash", String(64), nullable=False),
    # The newest event when it was made: its consumers read the events after it.
    Column("start_seq", BigInteger, nullable=False),
    # The destination Svix's consumer subscribed (JSON: uid, event_types, channels, metadata,
    # when); NULL until it has.
    Column("destination", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("owner", "client_id", name="uq_polling_webhooks_owner_client_id"),
    sqlite_autoincrement=True,
)

# Each consumer's place in a polling webhook's events (Svix's poller: a consumer id the reader
# chooses). `committed` is the last event seq it committed; a poll leases the events it returns
# until `lease_until` (Unix milliseconds), and the next poll in the lease reads after
# `leased_to` instead, so the events of an uncommitted poll come again once the lease is over.
polling_consumers = Table(
    "polling_consumers",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "webhook_id",
        Id,
        ForeignKey("polling_webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("consumer_id", String(255), nullable=False),
    Column("committed", BigInteger, nullable=False),
    Column("leased_to", BigInteger, nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint(
        "webhook_id", "consumer_id", name="uq_polling_consumers_webhook_id_consumer_id"
    ),
    sqlite_autoincrement=True,
)


def declared(name: str | None, type_: str, parent_names: object) -> bool:
    """Whether Alembic's autogenerate compares this schema object with the tables above (its
    `include_name` hook): all but the full-text index (on SQLite its tables, on PostgreSQL its
    column and index)."""
    return not (name or "").startswith(FULL_TEXT_INDEX)
