"""What happens to a submitted message, top to bottom.

    check the envelope sender  ->  route each recipient  ->  (DATA)  check the From header
    ->  add Received (and Message-ID, Date if missing)  ->  one commit: a Sent copy for the
    sender (\\Seen) and an INBOX copy for every hosted recipient  ->  250

The SMTP handler calls these steps at MAIL, RCPT and DATA; nothing here knows SMTP's wire.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum

from mailgate.addresses import InvalidAddress, normalize_address
from mailgate.auth import Principal
from mailgate.delivery.trace import Client, date_header, new_message_id, received_header
from mailgate.message import address_list, header_values, normalize_crlf, split_header
from mailgate.store.api import Store
from mailgate.store.records import SEEN, Parcel, Target


class SenderNotAuthorized(Exception):
    """The envelope sender or the From header is not the logged-in inbox."""


class Route(Enum):
    LOCAL = "local"
    NOT_HOSTED = "not-hosted"  # no outbound delivery yet: refused, never silently dropped


@dataclass(frozen=True, slots=True)
class Accepted:
    trace_id: str
    message_id: str
    local: list[str]


class Submission:
    """The submission pipeline for one server; stateless across SMTP sessions."""

    def __init__(self, store: Store, hostname: str) -> None:
        self.store = store
        self.hostname = hostname

    def check_sender(self, principal: Principal, mail_from: str) -> None:
        if not _same_address(mail_from, principal.address):
            raise SenderNotAuthorized(f"{mail_from} is not {principal.address}")

    async def route(self, recipient: str) -> tuple[str, Route]:
        """The normalised recipient and what would happen to it; InvalidAddress if malformed."""
        address = normalize_address(recipient)
        found = await self.store.find_inboxes([address])
        return address, Route.LOCAL if address in found else Route.NOT_HOSTED

    async def submit(
        self, principal: Principal, recipients: list[str], data: bytes, client: Client
    ) -> Accepted:
        """Check the From header, stamp the message, and commit every copy at once."""
        raw = normalize_crlf(data)
        header, body = split_header(raw)
        senders = address_list(header, "From")
        if not senders or not all(_same_address(a, principal.address) for _, a in senders):
            raise SenderNotAuthorized("the From header must be the logged-in inbox")

        trace_id = secrets.token_hex(8)
        added = received_header(client, self.hostname, trace_id, recipients)
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
        parcels = [Parcel(sent_copy, (Target(sent, (SEEN,)),))]
        targets = tuple(Target(mailbox_id) for mailbox_id in inboxes.values())
        if targets:
            if delivered is raw:
                # One blob for the Sent copy and every recipient (DESIGN: stored once).
                parcels = [Parcel(sent_copy, parcels[0].targets + targets)]
            else:
                # Bcc stays visible in the sender's Sent copy only.
                parcels.append(Parcel(added + delivered, targets))
        await self.store.deliver(parcels)
        return Accepted(trace_id, message_id, sorted(inboxes))


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
