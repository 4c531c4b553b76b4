"""The submission handler: AUTH with inbox + API key, then MAIL, RCPT and DATA through
delivery's one door for sending (delivery/submission.py). It returns reply texts; it holds no
SQL and no socket code."""

from __future__ import annotations

import logging
import time

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from mailgate.auth import (
    Authenticator,
    AuthFailed,
    AuthorizationRefused,
    BadBase64,
    LockedOut,
    MalformedResponse,
    Principal,
    SASLError,
    decode_base64,
    plain_credentials,
)
from mailgate.config import SMTPSettings
from mailgate.delivery.routing import Route, Router
from mailgate.delivery.submission import (
    SenderNotAuthorized,
    SendingRateExceeded,
    Submission,
    UnknownRecipients,
    check_sender,
)
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
from mailgate.store.errors import LimitExceeded, OverQuota, Unavailable
from mailgate.telemetry import SOURCE_SUBMISSION, Metrics

log = logging.getLogger(__name__)


class SubmissionHandler:
    def __init__(
        self,
        submission: Submission,
        router: Router,
        authenticator: Authenticator,
        settings: SMTPSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.submission = submission
        self.router = router
        self.authenticator = authenticator
        self.settings = settings
        self.metrics = metrics or Metrics()

    # ---------------------------------------------------------------- EHLO

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        return advertise(session, hostname, responses, auth=True)

    # ---------------------------------------------------------------- AUTH

    async def auth_PLAIN(self, server: MailgateSMTP, args: list[str]) -> AuthResult:
        try:
            if len(args) == 1:
                # aiosmtpd decodes the base64 of a challenge's answer itself.
                blob = await server.challenge_auth("")
                if blob is MISSING:
                    return AuthResult(success=False, handled=True)
            else:
                blob = decode_base64(args[1])
            assert isinstance(blob, bytes)
            user, password = plain_credentials(blob)
        except SASLError as exc:
            return _refused(_SASL_REPLIES[type(exc)])
        return await self._login(server, user, password)

    async def auth_LOGIN(self, server: MailgateSMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            user = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if user is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                user = decode_base64(args[1])
            except SASLError as exc:
                return _refused(_SASL_REPLIES[type(exc)])
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(user, bytes)
        assert isinstance(password, bytes)
        return await self._login(server, user, password)

    async def _login(self, server: MailgateSMTP, user: bytes, password: bytes) -> AuthResult:
        client = server.peer_ip
        try:
            principal = await self.authenticator.login(
                user.decode("utf-8", "replace"),
                password.decode("utf-8", "replace"),
                client,
                protocol="smtp",
            )
        except AuthFailed:
            return _refused(replies.AUTH_FAILED)
        except LockedOut:
            return _refused(replies.AUTH_LOCKED_OUT)
        except Unavailable as exc:
            self.metrics.store_error(exc)
            return _refused(replies.AUTH_TEMPORARY)
        return AuthResult(success=True, auth_data=principal, message=replies.AUTH_OK)

    # ---------------------------------------------------------------- envelope

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        principal = _principal(session)
        refusal = utf8_refusal(address, envelope)
        if refusal is not None:
            return refusal
        try:
            check_sender(principal, address)
            # Refused before the message is sent; DATA checks again.
            await self.submission.check_rate(principal)
        except SenderNotAuthorized:
            return replies.SENDER_NOT_AUTHORIZED
        except SendingRateExceeded as exc:
            return replies.sending_rate(str(exc))
        except Unavailable as exc:
            self.metrics.store_error(exc)
            return replies.TEMPORARY_FAILURE
        routed(envelope).started = time.perf_counter()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = utf8_refusal(address, envelope)
        if refusal is not None:
            return refusal
        try:
            recipient = normalize_address(address, utf8=True)
        except InvalidAddress:
            return replies.BAD_RECIPIENT
        # Every RCPT counts, repeats too (as in Postfix): a client cannot make the server
        # read more than the limit of them. DATA delivers once per distinct address.
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        if recipient in envelope.rcpt_tos:
            envelope.rcpt_tos.append(recipient)  # accepted before: no second lookup
            return replies.RECIPIENT_OK
        # Routed here only to refuse an unknown recipient at once; DATA routes them all again.
        try:
            route, inbox = await self.router.route(recipient)
        except Unavailable as exc:
            log.warning("cannot look up recipient %s: %s", recipient, exc)
            self.metrics.store_error(exc)
            return replies.TEMPORARY_FAILURE
        if route is Route.UNKNOWN:
            return replies.UNKNOWN_RECIPIENT
        if inbox is not None:
            refusal = await quota_refusal(self.submission.store, inbox.id, self.metrics)
            if refusal is not None:
                return refusal
        envelope.rcpt_tos.append(recipient)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: MailgateSMTP, session: Session, envelope: Envelope) -> str:
        try:
            return await self._data(server, session, envelope)
        finally:
            started = routed(envelope).started
            if started is not None:
                self.metrics.smtp_transaction(SOURCE_SUBMISSION, time.perf_counter() - started)

    async def _data(self, server: MailgateSMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        try:
            with server.storing():
                accepted = await self.submission.submit(
                    _principal(session),
                    content,
                    envelope.rcpt_tos,
                    server.origin(authenticated=True, smtputf8=envelope.smtp_utf8),
                    mail_from=envelope.mail_from or "",
                    smtputf8=envelope.smtp_utf8,
                )
        except SenderNotAuthorized:
            return replies.SENDER_NOT_AUTHORIZED
        except SendingRateExceeded as exc:
            return replies.sending_rate(str(exc))
        except UnknownRecipients:
            # An inbox deleted between RCPT and DATA.
            return replies.UNKNOWN_RECIPIENT
        except OverQuota:
            return replies.MAILBOX_FULL_NOW
        except (Unavailable, LimitExceeded) as exc:
            log.warning("submission from %s not stored: %s", _principal(session).address, exc)
            self.metrics.store_error(exc)
            return replies.TEMPORARY_FAILURE
        except Exception as exc:
            # Answered here rather than by handle_exception, so that aiosmtpd still ends the
            # transaction: otherwise the next MAIL would get "503 nested MAIL command".
            log.exception("submission from %s failed", _principal(session).address)
            self.metrics.store_error(exc)  # counted if it is the store's
            return replies.TEMPORARY_FAILURE
        return f"{replies.ACCEPTED} {accepted.trace_id}"

    async def handle_exception(self, error: Exception) -> str:
        return session_error(log, error)


# Each kind of SASL error as SMTP answers it.
_SASL_REPLIES: dict[type[SASLError], str] = {
    BadBase64: replies.AUTH_BAD_BASE64,
    MalformedResponse: replies.AUTH_MALFORMED,
    AuthorizationRefused: replies.AUTH_FAILED,
}


def _refused(reply: str) -> AuthResult:
    # handled=False makes aiosmtpd send `reply`; its default (True) would send nothing at all
    # and leave the client waiting for an answer.
    return AuthResult(success=False, handled=False, message=reply)


def _principal(session: Session) -> Principal:
    principal = session.auth_data
    # aiosmtpd's auth_required guarantees AUTH happened before MAIL, RCPT and DATA.
    assert isinstance(principal, Principal)
    return principal
