"""The one door for sending: what happens to a message a logged-in inbox submits, top to
bottom, whichever protocol brought it (SMTP submission, and the HTTP API).

    check the envelope sender, the From header and the sending rate  ->  route every
    recipient (routing.py; an unknown address at one of our domains refuses the message)  ->
    add Received (and Message-ID, Date if missing)  ->  one commit: a Sent copy for the sender
    (\\Seen), an INBOX copy for every hosted recipient, and an outbound queue row for every
    recipient on another server  ->  wake the delivery worker

Nothing here knows a protocol's wire. A protocol may check the sender and route recipients
early, to refuse them in its own terms (SMTP at MAIL and RCPT); `submit` checks everything again.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailgate.auth import Principal
from mailgate.delivery.routing import Route, Router, candidates
from mailgate.delivery.trace import (
    Origin,
    Protocol,
    date_header,
    new_message_id,
    received_header,
)
from mailgate.mime.addresses import InvalidAddress, address_list, normalize_address
from mailgate.mime.headers import header_values, normalize_crlf, split_header
from mailgate.store.api import Store
from mailgate.store.records import (
    DELIVERED,
    RECEIVED,
    SEEN,
    SENT_EVENT,
    Notice,
    Outgoing,
    Parcel,
    QuotaRule,
    SendReceipt,
    Target,
)
from mailgate.telemetry import SOURCE_API, SOURCE_SUBMISSION, Metrics


class SenderNotAuthorized(Exception):
    """The envelope sender or the From header is not the logged-in inbox."""


class UnknownRecipients(Exception):
    """Addresses at one of our domains that no inbox has: the message is refused whole."""

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(f"no such recipient here: {', '.join(addresses)}")
        self.addresses = addresses


class SendingRateExceeded(Exception):
    """The inbox sent its `[limits] messages_per_hour` within the last hour."""

    def __init__(self, address: str, limit: int, retry_after: float) -> None:
        self.retry_after = retry_after
        wait = math.ceil(retry_after)
        super().__init__(
            f"{address} sent {limit} messages within the last hour, its limit; "
            f"try again in {wait} s"
        )


# The window of the sending rate, in seconds.
HOUR = 3600


@dataclass(frozen=True, slots=True)
class Accepted:
    trace_id: str
    message_id: str
    local: list[str]
    queued: list[str]


def check_sender(principal: Principal, mail_from: str) -> None:
    if not _same_address(mail_from, principal.address):
        raise SenderNotAuthorized(f"{mail_from} is not {principal.address}")


class Submission:
    """The submission pipeline for one server; stateless across sessions and requests."""

    def __init__(
        self,
        store: Store,
        router: Router,
        hostname: str,
        on_queued: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        hourly_limit: int = 0,
    ) -> None:
        self.store = store
        self.router = router
        self.hostname = hostname
        self._on_queued = on_queued
        self.metrics = metrics or Metrics()
        self.hourly_limit = hourly_limit  # messages per inbox per hour; 0: no limit

    async def check_rate(self, principal: Principal) -> None:
        """SendingRateExceeded if the inbox sent its hourly limit already. Counted from the
        message.sent events, which every node writes in the commit of the message: a few sent
        at the same moment may pass together, none once the count is known."""
        if not self.hourly_limit:
            return
        now = time.time()
        since = int(now) - HOUR
        reached = await self.store.sent_in_window(principal.address, since, self.hourly_limit)
        if reached is not None:
            retry_after = max(1.0, reached + HOUR - now)
            raise SendingRateExceeded(principal.address, self.hourly_limit, retry_after)

    async def submit(
        self,
        principal: Principal,
        data: bytes,
        recipients: Sequence[str],
        origin: Origin,
        *,
        mail_from: str | None = None,
        idempotency: tuple[str, str] | None = None,
        smtputf8: bool = False,
    ) -> Accepted:
        """Check, stamp and route the message, and commit every copy at once.

        `mail_from` is the envelope sender where the protocol has one (SMTP); the inbox's own
        address otherwise. `idempotency` is a key and the fingerprint of the request that
        carried it: kept in the same commit, and AlreadySent if the inbox used the key lately.
        `smtputf8`: the client said SMTPUTF8 (RFC 6531), which the outbound queue remembers.
        Raises SenderNotAuthorized, SendingRateExceeded, InvalidAddress for a malformed
        recipient, or UnknownRecipients; nothing is stored then.
        """
        check_sender(principal, principal.address if mail_from is None else mail_from)
        await self.check_rate(principal)
        raw = normalize_crlf(data)
        header, body = split_header(raw)
        senders = address_list(header, "From")
        if not senders or not all(_same_address(a, principal.address) for _, a in senders):
            raise SenderNotAuthorized("the From header must be the logged-in inbox")
        addresses = list(dict.fromkeys(normalize_address(r, utf8=True) for r in recipients))

        # One query finds the Sent mailbox and the INBOX of every inbox a recipient may reach.
        sent, inboxes = await self.store.delivery_mailboxes(
            principal.inbox.id, [c for a in addresses for c in candidates(a)]
        )
        if sent is None:
            # The inbox was deleted while this session was logged in to it: retrying cannot help.
            raise SenderNotAuthorized(f"{principal.address} no longer exists")
        routes = await self.router.route_all(addresses, inboxes)
        unknown = [a for a, r in routes.items() if r.route is Route.UNKNOWN]
        if unknown:
            raise UnknownRecipients(unknown)
        local = list(dict.fromkeys(r.address for r in routes.values() if r.route is Route.LOCAL))
        remote = [a for a, r in routes.items() if r.route is Route.REMOTE]

        trace_id = secrets.token_hex(8)
        reached = list(dict.fromkeys(r.address for r in routes.values()))
        added = received_header(origin, self.hostname, trace_id, reached)
        message_ids = header_values(header, "Message-ID")
        message_id = message_ids[0].strip() if message_ids else new_message_id(self.hostname)
        if not message_ids:
            added += f"Message-ID: {message_id}\r\n".encode()
        if not header_values(header, "Date"):
            added += date_header()
        sent_copy = added + raw

        delivered = _without_bcc(header) + body if header_values(header, "Bcc") else raw
        targets = tuple(
            Target(inboxes[address], (), (Notice(RECEIVED),), QuotaRule.NOT_FULL)
            for address in local
        )
        queued = tuple(Outgoing(principal.address, r, principal.inbox.id, smtputf8) for r in remote)
        # The sender is told it was sent, and delivered to the recipients hosted here now; the
        # others' delivery is reported by the outbound queue.
        told = [Notice(SENT_EVENT, tuple(reached))]
        if local:
            told.append(Notice(DELIVERED, tuple(local)))
        # The sender's record of what was sent is kept even when their inbox is full.
        sent_target = Target(sent, (SEEN,), tuple(told), QuotaRule.EXEMPT)
        if delivered is raw:
            # One blob for the Sent copy, every local recipient and the queue (DESIGN).
            parcels = [Parcel(sent_copy, (sent_target, *targets), outbound=queued)]
        else:
            # Bcc stays visible in the sender's Sent copy only.
            parcels = [
                Parcel(sent_copy, (sent_target,)),
                Parcel(added + delivered, targets, outbound=queued),
            ]
        receipt = None
        if idempotency is not None:
            key, fingerprint = idempotency
            receipt = SendReceipt(principal.inbox.id, key, fingerprint, message_id)
        await self.store.deliver(parcels, receipt=receipt)
        source = (
            SOURCE_API if origin.protocol in (Protocol.HTTP, Protocol.HTTPS) else SOURCE_SUBMISSION
        )
        self.metrics.accepted(source, local=len(targets))
        if queued and self._on_queued is not None:
            self._on_queued()
        return Accepted(trace_id, message_id, sorted(local), remote)


def _same_address(address: str, expected: str) -> bool:
    try:
        return normalize_address(address) == expected
    except InvalidAddress:
        return False


def _without_bcc(header: bytes) -> bytes:
    """The header section with every Bcc field (and its continuation lines) removed."""
    out: list[bytes] = []
    skipping = False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        skipping = line[:4].lower() == b"bcc:"
        if not skipping:
            out.append(line)
    return b"".join(out)
