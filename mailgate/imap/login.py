"""Logging in and out: STARTTLS, LOGIN, AUTHENTICATE (SASL PLAIN) and LOGOUT."""

from __future__ import annotations

from mailgate.auth import (
    AuthFailed,
    AuthorizationRefused,
    BadBase64,
    LockedOut,
    MalformedResponse,
    decode_base64,
    plain_credentials,
)
from mailgate.imap.errors import bad, no
from mailgate.imap.interfaces import ANY, Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Authenticate, Login, Request
from mailgate.store.errors import Unavailable


@command("LOGOUT", ANY)
async def logout(s: Session, request: Request) -> str:
    s.untagged(b"BYE mailgate logging out")
    s.unselect()
    s.session_state = State.LOGOUT
    return "LOGOUT completed"


@command("STARTTLS", State.NOT_AUTHENTICATED)
async def starttls(s: Session, request: Request) -> str:
    if s.tls_active:
        raise bad("TLS is already active", "CLIENTBUG")
    s.after_reply = s.start_tls
    return "Begin TLS negotiation now"


@command("LOGIN", State.NOT_AUTHENTICATED)
async def login(s: Session, request: Request) -> str:
    if not s.tls_active:
        # RFC 3501 §6.2.3: LOGINDISABLED is advertised until STARTTLS.
        raise no("Run STARTTLS first: logins need TLS", "PRIVACYREQUIRED")
    args = request.args
    assert isinstance(args, Login)
    return await _log_in(s, args.user, args.password)


@command("AUTHENTICATE", State.NOT_AUTHENTICATED)
async def authenticate(s: Session, request: Request) -> str:
    if not s.tls_active:
        raise no("Run STARTTLS first: logins need TLS", "PRIVACYREQUIRED")
    args = request.args
    assert isinstance(args, Authenticate)
    if args.mechanism != "PLAIN":
        raise no(f"Unsupported authentication mechanism {args.mechanism}", "CANNOT")
    response = args.initial_response
    if response is None:
        s.send(b"+ \r\n")
        s.flush()
        response = (await s.read_line()).strip()
        if response == b"*":
            # RFC 3501 §6.2.2: a cancelled exchange gets a tagged BAD.
            raise bad("Authentication cancelled")
    if response == b"=":
        response = b""
    try:
        user, password = plain_credentials(decode_base64(response))
    except BadBase64:
        raise bad("Invalid base64 in authentication data") from None
    except MalformedResponse:
        raise bad("Malformed PLAIN authentication data") from None
    except AuthorizationRefused:
        raise no("Acting as another identity is not allowed", "AUTHORIZATIONFAILED") from None
    return await _log_in(s, user, password)


async def _log_in(s: Session, user: bytes, password: bytes) -> str:
    try:
        principal = await s.authenticator.login(
            user.decode("utf-8", "replace"),
            password.decode("utf-8", "replace"),
            s.client_ip,
            protocol="imap",
        )
    except AuthFailed:
        raise no("Invalid address or API key", "AUTHENTICATIONFAILED") from None
    except LockedOut as exc:
        raise no(f"Too many failed logins from your address; {exc}", "UNAVAILABLE") from None
    except Unavailable as exc:
        s.metrics.store_error(exc)
        raise no("Logins are temporarily unavailable, try again", "UNAVAILABLE") from None
    s.logged_in(principal)
    return "[CAPABILITY " + " ".join(c.decode() for c in s.capability_list()) + "] Logged in"
