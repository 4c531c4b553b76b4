"""API keys and logins: a login is (inbox address, API key), valid iff the key is active and
its scope (one inbox, or every inbox of a pod) covers that inbox; a bearer key (the HTTP API's,
sent without an address) is valid iff it is active, and then opens what its scope covers.

A key looks like `mgk_<id>_<secret>`: the id is public (shown by `key list`, used by `key
revoke`), the secret carries 256 random bits and is stored only as its SHA-256. A fast hash is
right here: the secret is random, not a password a person chose, so it cannot be guessed.

The SASL decoding IMAP and SMTP share is here too (PLAIN, RFC 4616; LOGIN's base64 pieces);
each protocol turns its errors into its own replies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from mailgate.config import AuthSettings
from mailgate.mime.addresses import InvalidAddress, normalize_address
from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.records import ApiKey, Inbox

T = TypeVar("T")

TOKEN_PREFIX = "mgk_"
MAX_FAILURE_DELAY = 8.0
# A hash to compare against when the key id is unknown, so that case costs the same time.
_DUMMY_HASH = hashlib.sha256(b"mailgate").hexdigest()


class AuthFailed(Exception):
    """Wrong address, unknown or revoked key, or a key whose scope does not cover the inbox."""


class LockedOut(Exception):
    """Too many failed logins from this client address; try again after `retry_after` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {int(retry_after) + 1} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Principal:
    """Who logged in: the inbox, and the key that opened it."""

    inbox: Inbox
    key_id: str

    @property
    def address(self) -> str:
        return self.inbox.address


class SASLError(Exception):
    """A SASL response the client got wrong; each protocol answers each kind in its terms."""


class BadBase64(SASLError):
    pass


class MalformedResponse(SASLError):
    """Not the three NUL-separated fields of PLAIN."""


class AuthorizationRefused(SASLError):
    """An authorization identity other than the user's own."""


def decode_base64(response: str | bytes) -> bytes:
    """One base64 piece of a SASL exchange (a PLAIN response, LOGIN's user name or password)."""
    try:
        return base64.b64decode(response, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a str with non-ASCII characters
        raise BadBase64("invalid base64 in authentication data") from None


def plain_credentials(response: bytes) -> tuple[bytes, bytes]:
    """(user, password) of a decoded PLAIN response (RFC 4616: authzid NUL authcid NUL passwd)."""
    fields = response.split(b"\x00")
    if len(fields) != 3:
        raise MalformedResponse("malformed PLAIN authentication data")
    authzid, user, password = fields
    if authzid and authzid != user:
        # RFC 4616: we do not let one identity act as another.
        raise AuthorizationRefused("acting as another identity is not allowed")
    return user, password


def hash_secret(secret: str) -> str:
    # surrogatepass: a password decoded with surrogateescape still hashes (and never matches)
    # instead of raising UnicodeEncodeError in the middle of a login.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32:
        return None
    return key_id, secret


def new_token() -> tuple[str, str, str]:
    """A fresh (key id, secret, token)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 32 bytes: 256 bits
    return key_id, secret, f"{TOKEN_PREFIX}{key_id}_{secret}"


class Throttle:
    """Failed logins per client address: each one answers more slowly, too many lock it out.

    Kept in memory per node: a lockout only needs to slow a guesser down, and across nodes the
    key space (256 bits) does the rest.
    """

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def check(self, client: str) -> None:
        until = self._locked_until.get(client)
        if until is None:
            return
        remaining = until - time.monotonic()
        if remaining > 0:
            raise LockedOut(remaining)
        del self._locked_until[client]

    def failed(self, client: str) -> float:
        """Record a failure; returns how long to wait before answering it."""
        now = time.monotonic()
        window = self._failures.setdefault(client, deque())
        window.append(now)
        while window and window[0] < now - self._settings.failure_window:
            window.popleft()
        # Computed before a lockout clears the window: the failure that locks out waits longest.
        delay = min(self._settings.failure_delay * 2 ** (len(window) - 1), MAX_FAILURE_DELAY)
        if len(window) >= self._settings.max_failures:
            self._locked_until[client] = now + self._settings.lockout
            window.clear()
        self._forget_stale(now)
        return delay

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _forget_stale(self, now: float) -> None:
        # Bound memory when many addresses fail once and never come back.
        if len(self._failures) < 10_000:
            return
        horizon = now - self._settings.failure_window
        for client in [c for c, w in self._failures.items() if not w or w[-1] < horizon]:
            del self._failures[client]
        for client in [c for c, t in self._locked_until.items() if t < now]:
            del self._locked_until[client]


def covers(key: ApiKey, inbox: Inbox) -> bool:
    """Whether `key` opens `inbox`: its own inbox, or any inbox of its pod."""
    if key.inbox_id is not None:
        return inbox.id == key.inbox_id
    return inbox.pod_id == key.pod_id


class Authenticator:
    def __init__(self, store: Store, settings: AuthSettings) -> None:
        self.store = store
        self.throttle = Throttle(settings)

    async def login(self, address: str, token: str, client: str) -> Principal:
        """The principal for (address, token), or AuthFailed / LockedOut after the due delay."""
        return await self._throttled(
            client, lambda: self._principal(address, token), "invalid address or API key"
        )

    async def verify_key(self, token: str, client: str) -> ApiKey:
        """The active key `token` names, with its scope (a bearer token, sent without an
        address), or AuthFailed / LockedOut after the due delay, as for a login."""
        return await self._throttled(client, lambda: self._key(token), "invalid API key")

    async def _throttled(
        self, client: str, verify: Callable[[], Awaitable[T | None]], failure: str
    ) -> T:
        self.throttle.check(client)
        verified = await verify()
        if verified is None:
            delay = self.throttle.failed(client)
            if delay:
                await asyncio.sleep(delay)
            raise AuthFailed(failure)
        self.throttle.succeeded(client)
        return verified

    async def _key(self, token: str) -> ApiKey | None:
        parts = split_token(token.strip())
        key = await self.store.get_key(parts[0]) if parts else None
        expected = key.secret_hash if key else _DUMMY_HASH
        given = hash_secret(parts[1]) if parts else ""
        if not hmac.compare_digest(expected, given) or key is None or not key.active:
            return None
        return key

    async def _principal(self, address: str, token: str) -> Principal | None:
        key = await self._key(token)
        if key is None:
            return None
        try:
            inbox = await self.store.get_inbox(normalize_address(address))
        except (InvalidAddress, errors.InboxNotFound):
            return None
        return Principal(inbox, key.id) if covers(key, inbox) else None
