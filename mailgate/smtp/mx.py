"""The MX handler: mail from other servers, for hosted inboxes only, without AUTH.

It answers RCPT and DATA with what the inbound pipeline (delivery/inbound.py) decides; it holds
no SQL and no socket code.
"""

from __future__ import annotations

import logging
import time

from aiosmtpd.smtp import Envelope, Session

from mailgate.config import SMTPSettings
from mailgate.delivery.inbound import Decision, Inbound, MailLoop, Refused
from mailgate.mime.addresses import InvalidAddress, normalize_address
from mailgate.smtp import replies
from mailgate.smtp.server import (
    MailgateSMTP,
    advertise,
    quota_refusal,
    routed,
    session_error,
    utf8_refusal,
)
from mailgate.store.errors import LimitExceeded, OverQuota, StoreError, Unavailable
from mailgate.telemetry import SOURCE_MX, Metrics

log = logging.getLogger(__name__)


class MXHandler:
    def __init__(
        self, inbound: Inbound, settings: SMTPSettings, metrics: Metrics | None = None
    ) -> None:
        self.inbound = inbound
        self.settings = settings
        self.metrics = metrics or Metrics()

    async def handle_EHLO(
        self,
        server: MailgateSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        return advertise(session, hostname, responses, auth=False)

    async def handle_MAIL(
        self,
        server: MailgateSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # "<>" is the null reverse-path of bounces (RFC 5321 §4.5.5): accepted as such.
        refusal = utf8_refusal(address, envelope)
        if refusal is not None:
            return refusal
        if not address.isascii():
            try:
                normalize_address(address, utf8=True)
            except InvalidAddress:
                return replies.BAD_SENDER  # invalid UTF-8, or not an address at all
        routed(envelope).started = time.perf_counter()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(
        self,
        server: MailgateSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = utf8_refusal(address, envelope)
        if refusal is not None:
            return refusal
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        try:
            decision, inbox = await self.inbound.route(address, envelope.mail_from or "")
        except InvalidAddress:
            return replies.BAD_RECIPIENT
        except Unavailable as exc:
            log.warning("cannot look up recipient %s: %s", address, exc)
            self.metrics.store_error(exc)
            return replies.TEMPORARY_FAILURE
        if decision is Decision.UNKNOWN:
            return replies.UNKNOWN_RECIPIENT
        if decision is Decision.RELAY_DENIED:
            return replies.RELAY_DENIED
        if decision is Decision.BLOCKED:
            return replies.SENDER_BLOCKED
        assert inbox is not None
        refusal = await quota_refusal(self.inbound.store, inbox.id, self.metrics)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        routed(envelope).inboxes.append(inbox)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: MailgateSMTP, session: Session, envelope: Envelope) -> str:
        try:
            return await self._data(server, envelope)
        finally:
            started = routed(envelope).started
            if started is not None:
                self.metrics.smtp_transaction(SOURCE_MX, time.perf_counter() - started)

    async def _data(self, server: MailgateSMTP, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        try:
            with server.storing():
                delivered = await self.inbound.accept(
                    origin=server.origin(authenticated=False, smtputf8=envelope.smtp_utf8),
                    mail_from=envelope.mail_from or "",
                    recipients=routed(envelope).inboxes,
                    data=content,
                )
        except MailLoop:
            return replies.MAIL_LOOP
        except OverQuota:
            return replies.MAILBOX_FULL_NOW
        except Refused as exc:
            if exc.permanent:
                return f"{replies.POLICY_REJECTED} ({exc.reason})"
            return f"{replies.POLICY_TEMPORARY} ({exc.reason})"
        except (Unavailable, LimitExceeded) as exc:
            log.warning("inbound message not stored: %s", exc)
            self.metrics.store_error(exc)
            return replies.TEMPORARY_FAILURE
        except StoreError as exc:
            log.exception("inbound message not stored")
            self.metrics.store_error(exc)
            return replies.TEMPORARY_FAILURE
        log.info(
            "inbound from %s [%s]: inbox %s, spam %s, dropped %s; %s",
            envelope.mail_from,
            server.peer_ip,
            delivered.inbox,
            delivered.spam,
            delivered.dropped,
            f"spf={delivered.verdict.spf.result} dmarc={delivered.verdict.dmarc.result}",
        )
        return f"{replies.ACCEPTED} {delivered.trace_id}"

    async def handle_exception(self, error: Exception) -> str:
        return session_error(log, error)
