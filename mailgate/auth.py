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
import contextlib
import hashlib
import hmac
import logging
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
from mailgate.store.logins import Failures
from mailgate.store.records import ApiKey, Inbox
from mailgate.telemetry import (
    LOGIN_FAILED,
    LOGIN_LOCKED_OUT,
    LOGIN_OK,
    LOGIN_UNAVAILABLE,
    Metrics,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

TOKEN_PREFIX = "mgk_"
# A hash to compare against when the key id is unknown, so that case costs the same time.
_DUMMY_HASH = hashlib.sha256(b"mailgate").hexdigest()


class AuthFailed(Exception):
    """Wrong address, unknown or revoked key, or a key whose scope does not cover the inbox."""


class LockedOut(Exception):
    """The client address is banned (`[auth] ban_after`); try again after `retry_after` s."""

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
    """Failed logins, counted per (client address, login name) and per client address.

    A failed answer waits, longer with each failure of that name from that address in a row
    (doubling, capped), and once an address fails for many names (credential stuffing) every
    failed answer from it waits a little too. A correct key is never refused for someone
    else's mistakes: it is answered at once, unless its own name has failed from that address
    `max_failures` times in a row, and then it is delayed, not refused. Refusing an address
    outright is the operator's choice (`ban_after`). Kept in memory, and each failure counted
    in the store too (store/logins.py): what every node saw of a name and an address decides the
    delay and the ban, so N nodes give a guesser no more tries than one. With 256-bit keys,
    guessing is hopeless; the delays only keep a guesser's cost to the server small.
    """

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self.window = settings.failure_window
        self._streaks: dict[tuple[str, str], _Streak] = {}
        self._addresses: dict[str, _Address] = {}
        self._banned_until: dict[str, float] = {}

    def check(self, client: str, name: str) -> float:
        """Before verifying a login: LockedOut if the address is banned, else how long a
        correct answer for `name` must wait (0 unless it failed many times in a row)."""
        now = time.monotonic()
        until = self._banned_until.get(client)
        if until is not None:
            if until > now:
                raise LockedOut(until - now)
            del self._banned_until[client]
        streak = self._current(self._streaks.get((client, name)), now)
        if streak is None or streak.count < self._settings.max_failures:
            return 0.0
        return self._pair_delay(streak.count)

    def failed(self, client: str, name: str, shared: Failures | None = None) -> float:
        """Record a failure, with what every node counted of it (`shared`, from the store)
        where known; returns how long to wait before answering it."""
        now = time.monotonic()
        streak = self._current(self._streaks.get((client, name)), now) or _Streak()
        streak.count = max(streak.count + 1, shared.in_a_row if shared else 0)
        streak.last = now
        self._streaks[(client, name)] = streak
        address = self._addresses.get(client)
        if address is None or now - address.last > self._settings.failure_window:
            address = self._addresses[client] = _Address()
        address.note(name, now, self._settings.failure_window)
        failures = max(len(address.failures), shared.from_address if shared else 0)
        names = max(len(address.names), shared.names if shared else 0)
        ban_after = self._settings.ban_after
        if ban_after and failures >= ban_after:
            self._banned_until[client] = now + self._settings.lockout
            address.failures.clear()
        self._forget_stale(now)
        return max(self._pair_delay(streak.count), self._address_delay(names))

    def succeeded(self, client: str, name: str) -> bool:
        """Forget the name's failures from the address; whether there were any (here)."""
        failing = self._streaks.pop((client, name), None) is not None
        address = self._addresses.get(client)
        if address is not None:
            # A ban counts failures in a row from the address, as the streaks do per name.
            address.failures.clear()
        return failing

    def _current(self, streak: _Streak | None, now: float) -> _Streak | None:
        if streak is None or now - streak.last > self._settings.failure_window:
            return None
        return streak

    def _pair_delay(self, count: int) -> float:
        delay = self._settings.failure_delay * 2 ** min(count - 1, 30)
        return min(delay, self._settings.max_failure_delay)

    def _address_delay(self, names: int) -> float:
        # Smaller than a name's own: many names failing is a sign, not proof, of stuffing.
        if names < STUFFING_NAMES:
            return 0.0
        delay = self._settings.failure_delay * 2 ** min(names - STUFFING_NAMES, 30)
        return min(delay, self._settings.max_failure_delay / 2)

    def _forget_stale(self, now: float) -> None:
        # Bound memory when many addresses or names fail once and never come back.
        if len(self._streaks) + len(self._addresses) < 10_000:
            return
        horizon = now - self._settings.failure_window
        for pair in [p for p, s in self._streaks.items() if s.last < horizon]:
            del self._streaks[pair]
        for client in [c for c, a in self._addresses.items() if a.last < horizon]:
            del self._addresses[client]
        for client in [c for c, t in self._banned_until.items() if t < now]:
            del self._banned_until[client]


# Distinct login names failing from one address, within the window, that make it a suspect.
STUFFING_NAMES = 10


class _Streak:
    """Failures of one name from one address in a row."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0


class _Address:
    """Failures from one address, whatever the name."""

    __slots__ = ("failures", "last", "names")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.names: set[str] = set()  # bounded: only "many" matters
        self.last = 0.0

    def note(self, name: str, now: float, window: int) -> None:
        self.last = now
        self.failures.append(now)
        while self.failures and self.failures[0] < now - window:
            self.failures.popleft()
        if len(self.names) < 4 * STUFFING_NAMES:
            self.names.add(name)


def covers(key: ApiKey, inbox: Inbox) -> bool:
    """Whether `key` opens `inbox`: its own inbox, any inbox of its pod, or (an organization
    key) any inbox at all."""
    if key.inbox_id is not None:
        return inbox.id == key.inbox_id
    return key.pod_id is None or inbox.pod_id == key.pod_id


class Authenticator:
    def __init__(
        self, store: Store, settings: AuthSettings, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.throttle = Throttle(settings)
        self.metrics = metrics or Metrics()

    async def login(self, address: str, token: str, client: str, *, protocol: str) -> Principal:
        """The principal for (address, token), or AuthFailed / LockedOut after the due delay."""
        return await self._throttled(
            client,
            address,
            protocol,
            lambda: self._principal(address, token),
            "invalid address or API key",
        )

    async def verify_key(self, token: str, client: str, *, protocol: str) -> ApiKey:
        """The active key `token` names, with its scope (a bearer token, sent without an
        address), or AuthFailed / LockedOut after the due delay, as for a login. The key's
        public id is its login name for the throttle."""
        parts = split_token(token.strip())
        name = parts[0] if parts else "?"
        return await self._throttled(
            client, name, protocol, lambda: self._key(token), "invalid API key"
        )

    async def verify_token(
        self,
        name: str,
        client: str,
        verify: Callable[[], Awaitable[T | None]],
        *,
        protocol: str,
    ) -> T:
        """What `verify` finds for a bearer token other than an API key (a polling webhook's,
        `name` being what it opens), throttled, counted and logged as a login is; AuthFailed
        when it finds nothing."""
        return await self._throttled(client, name, protocol, verify, "invalid token")

    async def _throttled(
        self,
        client: str,
        name: str,
        protocol: str,
        verify: Callable[[], Awaitable[T | None]],
        failure: str,
    ) -> T:
        # Names are compared as logins are: an address in any case is one name.
        name = name.strip().lower()[:320]
        try:
            wait = self.throttle.check(client, name)
        except LockedOut:
            log.warning("%s login refused for %r from %s: address banned", protocol, name, client)
            self.metrics.login(protocol, LOGIN_LOCKED_OUT)
            raise
        try:
            verified = await verify()
        except errors.StoreError:
            # Counted as a store error where it is answered (each protocol's edge).
            self.metrics.login(protocol, LOGIN_UNAVAILABLE)
            raise
        if verified is None:
            self.metrics.login(protocol, LOGIN_FAILED)
            delay = self.throttle.failed(client, name, await self._shared_failure(client, name))
            # One line per failure, for an operator's fail2ban: "login failed ... from <ip>".
            log.warning("%s login failed for %r from %s", protocol, name, client)
            if delay:
                await asyncio.sleep(delay)
            raise AuthFailed(failure)
        if wait:
            await asyncio.sleep(wait)
        if self.throttle.succeeded(client, name):
            with contextlib.suppress(errors.StoreError):  # stale failures age out anyway
                await self.store.login_succeeded(client, name)
        self.metrics.login(protocol, LOGIN_OK)
        return verified

    async def _shared_failure(self, client: str, name: str) -> Failures | None:
        """The failure counted in the store, with every node's before it; None if the store
        cannot say now (this node's own count decides then)."""
        try:
            window = self.throttle.window
            return await self.store.login_failed(client, name, int(time.time()), window)
        except errors.StoreError as exc:
            log.warning("cannot count a failed login in the store: %s", exc)
            return None

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
