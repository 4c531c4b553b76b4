"""What happens to mail arriving from other servers (the MX), top to bottom.

    RCPT: a hosted inbox? (routing.py: name+tag@ reaches name@)  ->  550 5.1.1 for an
          unknown address at one of our domains, 550 5.7.1 for any other domain  ->  the
          inbox's block list against the envelope sender  ->  550 5.7.1 if blocked
    DATA: more than 50 Received fields  ->  554 5.4.6 (a loop)
          SPF (MAIL FROM, HELO), every DKIM signature, DMARC  ->  Authentication-Results
          per recipient: allow-listed -> INBOX; block-listed -> not delivered;
          DMARC fail under p=reject -> refused (550 5.7.1, or 451 4.7.0 when a DNS timeout
          may be the cause); p=quarantine, or SPF fail with no aligned DKIM pass -> Spam;
          otherwise INBOX
          ->  one commit  ->  250

Mail between two inboxes hosted here never comes this way: submission delivers it directly.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from enum import Enum

from mailgate.delivery import verdicts
from mailgate.delivery.dns import Resolver
from mailgate.delivery.offload import Offload
from mailgate.delivery.routing import Route, Router
from mailgate.delivery.trace import Origin, received_header
from mailgate.mime.addresses import a_label, address_list
from mailgate.mime.headers import header_values, normalize_crlf, split_header
from mailgate.store.api import Store
from mailgate.store.records import (
    INBOX,
    RECEIVED,
    RECEIVED_UNAUTHENTICATED,
    SPAM,
    Inbox,
    Notice,
    Parcel,
    QuotaRule,
    Target,
)
from mailgate.telemetry import SOURCE_MX, Metrics

MAX_RECEIVED = 50  # RFC 5321 §6.3: a loop once a message has passed this many hops


class Decision(Enum):
    ACCEPT = "accept"
    UNKNOWN = "unknown"  # one of our domains, no such inbox
    RELAY_DENIED = "relay-denied"  # not our domain at all
    BLOCKED = "blocked"  # the recipient blocks this sender


class Refused(Exception):
    """The whole message is refused; `permanent` chooses 5xx (else 4xx)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class MailLoop(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Delivered:
    trace_id: str
    inbox: list[str]
    spam: list[str]
    dropped: list[str]  # block-listed the From header's sender
    verdict: verdicts.Verdict


class Inbound:
    def __init__(
        self,
        store: Store,
        router: Router,
        resolver: Resolver,
        hostname: str,
        offload: Offload | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.resolver = resolver
        self.hostname = hostname
        self.offload = offload
        self.metrics = metrics or Metrics()

    async def route(self, recipient: str, mail_from: str) -> tuple[Decision, Inbox | None]:
        """Who `recipient` is here; InvalidAddress if it is malformed."""
        route, inbox = await self.router.route(recipient)
        if route is Route.UNKNOWN:
            return Decision.UNKNOWN, None
        if route is Route.REMOTE:
            return Decision.RELAY_DENIED, None
        assert inbox is not None
        rules = (await self.store.sender_rules_for([inbox.id]))[inbox.id]
        if _verdict_of_rules(rules, [_sender(mail_from)]) == "block":
            return Decision.BLOCKED, inbox
        return Decision.ACCEPT, inbox

    async def accept(
        self, *, origin: Origin, mail_from: str, recipients: list[Inbox], data: bytes
    ) -> Delivered:
        raw = normalize_crlf(data)
        header, _ = split_header(raw)
        if len(header_values(header, "Received")) > MAX_RECEIVED:
            raise MailLoop("too many Received headers")
        sender = _sender(mail_from)
        verdict = await verdicts.evaluate(
            self.resolver,
            ip=origin.ip,
            helo=origin.helo or "",
            mail_from=sender,
            message=raw,
            offload=self.offload,
        )
        from_addresses = [a for _, a in address_list(header, "From")]
        rules = await self.store.sender_rules_for(inbox.id for inbox in recipients)
        inbox_targets: list[Inbox] = []
        spam: list[Inbox] = []
        dropped: list[Inbox] = []
        rejecting: list[Inbox] = []
        for inbox in _unique(recipients):
            listed = _verdict_of_rules(rules[inbox.id], [sender, *from_addresses])
            if listed == "allow":
                inbox_targets.append(inbox)
            elif listed == "block":
                dropped.append(inbox)
            elif _dmarc_rejects(verdict):
                rejecting.append(inbox)
            elif _suspicious(verdict):
                spam.append(inbox)
            else:
                inbox_targets.append(inbox)
        if rejecting and not inbox_targets and not spam:
            if verdict.dmarc.result == verdicts.TEMPERROR:
                # Had the lookup that timed out answered, the policy might not reject: let
                # the sender try again later rather than bounce good mail. A timeout that
                # could not change the result (a signature of an unaligned domain) does not
                # turn a certain fail into a retry.
                raise Refused("DMARC policy could not be checked", permanent=False)
            raise Refused(f"rejected by the DMARC policy of {verdict.dmarc.domain}", permanent=True)
        # The others accept the message, so it cannot be refused: under the sender domain's
        # reject policy it goes to Spam for those whose policy it fails (RFC 7489 §6.7
        # leaves this local policy to the receiver).
        spam += rejecting
        if dropped and not inbox_targets and not spam:
            raise Refused("sender blocked by the recipient", permanent=True)

        trace_id = secrets.token_hex(8)
        stamped = (
            received_header(
                origin, self.hostname, trace_id, [i.address for i in inbox_targets + spam]
            )
            + verdicts.authentication_results(self.hostname, verdict)
            + verdicts.remove_own_authentication_results(header, self.hostname)
            + raw[len(header) :]
        )
        received = (Notice(RECEIVED),)
        # Spam here is mail that failed its authentication (there is no content filter).
        unauthenticated = (Notice(RECEIVED_UNAUTHENTICATED),)
        targets = [
            Target(await self._mailbox(i, INBOX), (), received, QuotaRule.NOT_FULL)
            for i in inbox_targets
        ]
        targets += [
            Target(await self._mailbox(i, SPAM), (), unauthenticated, QuotaRule.NOT_FULL)
            for i in spam
        ]
        if targets:
            await self.store.deliver([Parcel(stamped, tuple(targets))])
        self.metrics.accepted(SOURCE_MX, local=len(targets))
        return Delivered(
            trace_id,
            [i.address for i in inbox_targets],
            [i.address for i in spam],
            [i.address for i in dropped],
            verdict,
        )

    async def _mailbox(self, inbox: Inbox, name: str) -> int:
        return (await self.store.get_mailbox(inbox.id, name)).id


def _sender(mail_from: str) -> str:
    """The envelope sender, "" for the null reverse-path."""
    return "" if mail_from in ("", "<>") else mail_from


def _matches(entry: str, address: str) -> bool:
    """An entry is an address (exact, or with the sender's +tag dropped) or a domain (the
    domain and its subdomains).

    The address is taken as the sender wrote it: a quoted or otherwise unusual local part
    (valid in RFC 5321, never an inbox here) must not slip a sender past a domain block.
    """
    local, at, domain = address.strip().removeprefix("<").removesuffix(">").rpartition("@")
    if not at or not domain:
        return False
    # Entries are ASCII (IDNs as A-labels): a UTF-8 domain (an 8-bit From header, SMTPUTF8)
    # is compared in that form too, or it would pass a block of its own domain.
    domain = a_label(domain)
    entry = entry.strip().rstrip(".").lower()
    if "@" not in entry:
        return domain == entry or domain.endswith("." + entry)
    local = unicodedata.normalize("NFC", _unquoted(local)).lower()
    # Like Postfix's access maps with a recipient_delimiter: name+tag@ is also name@.
    return entry in (f"{local}@{domain}", f"{local.split('+', 1)[0]}@{domain}")


def _unquoted(local: str) -> str:
    """RFC 5321 §4.1.2: "name" and name are the same local part."""
    if len(local) >= 2 and local[0] == local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def _verdict_of_rules(rules: list[tuple[str, str]], senders: list[str]) -> str | None:
    """ "allow" if any sender is allowed (allowing wins), "block" if one is blocked."""
    hits = {action for action, entry in rules for s in senders if _matches(entry, s)}
    if "allow" in hits:
        return "allow"
    return "block" if "block" in hits else None


def _dmarc_rejects(verdict: verdicts.Verdict) -> bool:
    """Fails p=reject, or might have (then the answer is 451, not 550): a "temperror" that
    keeps the policy means an identifier that could have aligned could not be checked; one
    without a policy means the record could not be read, and unless an identifier aligned
    under any record passed, that record may say p=reject (a DNS timeout is never a pass)."""
    dmarc = verdict.dmarc
    if dmarc.result == verdicts.TEMPERROR and dmarc.policy is None:
        return not (dmarc.dkim_aligned or dmarc.spf_aligned)
    return dmarc.result in ("fail", verdicts.TEMPERROR) and dmarc.policy == "reject"


def _suspicious(verdict: verdicts.Verdict) -> bool:
    """Quarantine under DMARC, or an SPF fail that no aligned DKIM signature outweighs."""
    if verdict.dmarc.result == "fail" and verdict.dmarc.policy == "quarantine":
        return True
    return verdict.spf.result == "fail" and not verdict.dmarc.dkim_aligned


def _unique(inboxes: list[Inbox]) -> list[Inbox]:
    seen: dict[int, Inbox] = {}
    for inbox in inboxes:
        seen.setdefault(inbox.id, inbox)
    return list(seen.values())
