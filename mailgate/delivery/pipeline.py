"""What happens to a submitted message, top to bottom.

    check the envelope sender  ->  route each recipient  ->  (DATA)  check the From header
    ->  add Received (and Message-ID, Date if missing)  ->  one commit: a Sent copy for the
    sender (\\Seen), an INBOX copy for every hosted recipient, and an outbound queue row for
    every recipient on another server  ->  250  ->  wake the delivery worker

The SMTP handler calls these steps at MAIL, RCPT and DATA; nothing here knows SMTP's wire.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from mailgate.addresses import InvalidAddress, domain_of, normalize_address
from mailgate.auth import Principal
from mailgate.delivery.trace import Origin, date_header, new_message_id, received_header
from mailgate.message import address_list, header_values, normalize_crlf, split_header
from mailgate.store.api import Store
from mailgate.store.records import SEEN, Outgoing, Parcel, Target


class SenderNotAuthorized(Exception):
    """The envelope sender or the From header is not the logged-in inbox."""


class Route(Enum):
    LOCAL = "local"  # an inbox here
    UNKNOWN = "unknown"  # one of our domains, but no such inbox: refused (550 5.1.1)
    REMOTE = "remote"  # another server's: queued for the delivery worker


@dataclass(frozen=True, slots=True)
class Accepted:
    trace_id: str
    message_id: str
    local: list[str]
    queued: list[str]


class Submission:
    """The submission pipeline for one server; stateless across SMTP sessions."""

    def __init__(
        self, store: Store, hostname: str, on_queued: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.hostname = hostname
        self._on_queued = on_queued

    def check_sender(self, principal: Principal, mail_from: str) -> None:
        if not _same_address(mail_from, principal.address):
            raise SenderNotAuthorized(f"{mail_from} is not {principal.address}")

    async def route(self, recipient: str) -> tuple[str, Route]:
        """The normalised recipient (for a hosted one, its inbox's address) and what would
        happen to it; InvalidAddress if malformed."""
        address = normalize_address(recipient)
        inbox = await self.store.inbox_reached_by(address)  # plus-addressing too, as on the MX
        if inbox is not None:
            return inbox.address, Route.LOCAL
        if await self.store.is_local_domain(domain_of(address)):
            return address, Route.UNKNOWN
        return address, Route.REMOTE

    async def submit(
        self, principal: Principal, recipients: list[str], data: bytes, origin: Origin
    ) -> Accepted:
        """Check the From header, stamp the message, and commit every copy at once."""
        raw = normalize_crlf(data)
        header, body = split_header(raw)
        senders = address_list(header, "From")
        if not senders or not all(_same_address(a, principal.address) for _, a in senders):
            raise SenderNotAuthorized("the From header must be the logged-in inbox")

        trace_id = secrets.token_hex(8)
        added = received_header(origin, self.hostname, trace_id, recipients)
        message_ids = header_values(header, "Message-ID")
        message_id = message_ids[0].strip() if message_ids else new_message_id(self.hostname)
        if not message_ids:
            added += f"Message-ID: {message_id}\r\n".encode()
        if not header_values(header, "Date"):
            added += date_header()
        sent_copy = added + raw

        sent, inboxes = await self.store.delivery_mailboxes(principal.inbox.id, recipients)
        if sent is None:
            # The inbox was deleted while this session was logged in to it: retrying cannot help.
            raise SenderNotAuthorized(f"{principal.address} no longer exists")
        delivered = _without_bcc(header) + body if header_values(header, "Bcc") else raw
        remote = [r for r in recipients if r not in inboxes]
        targets = tuple(Target(mailbox_id) for mailbox_id in inboxes.values())
        queued = tuple(Outgoing(principal.address, r, principal.inbox.id) for r in remote)
        sent_target = Target(sent, (SEEN,))
        if delivered is raw:
            # One blob for the Sent copy, every local recipient and the queue (DESIGN).
            parcels = [Parcel(sent_copy, (sent_target, *targets), outbound=queued)]
        else:
            # Bcc stays visible in the sender's Sent copy only.
            parcels = [
                Parcel(sent_copy, (sent_target,)),
                Parcel(added + delivered, targets, outbound=queued),
            ]
        await self.store.deliver(parcels)
        if queued and self._on_queued is not None:
            self._on_queued()
        return Accepted(trace_id, message_id, sorted(inboxes), remote)


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
