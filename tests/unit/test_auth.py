"""mailgate.auth: the token format, hashing, the login throttle (on a fake clock), SASL
decoding, key scopes, and bearer keys against a real SQLite store. Logins against a real store
are in tests/store/test_inboxes_keys.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

import mailgate.auth
from mailgate.auth import (
    STUFFING_NAMES,
    TOKEN_PREFIX,
    Authenticator,
    AuthFailed,
    AuthorizationRefused,
    BadBase64,
    LockedOut,
    MalformedResponse,
    Throttle,
    covers,
    decode_base64,
    hash_secret,
    new_token,
    plain_credentials,
    split_token,
)
from mailgate.config import AuthSettings
from mailgate.store.api import Store
from mailgate.store.records import ApiKey, Inbox

T = TypeVar("T")

# ------------------------------------------------------------------------ tokens


def test_new_token_format() -> None:
    key_id, secret, token = new_token()
    assert token == f"{TOKEN_PREFIX}{key_id}_{secret}"
    assert re.fullmatch(r"[0-9a-f]{12}", key_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)  # base64url of 32 bytes, unpadded
    assert split_token(token) == (key_id, secret)


def test_new_token_carries_256_random_bits() -> None:
    _, secret, _ = new_token()
    padded = secret + "=" * (-len(secret) % 4)
    assert len(base64.urlsafe_b64decode(padded)) == 32


def test_new_tokens_differ() -> None:
    tokens = {new_token()[2] for _ in range(200)}
    assert len(tokens) == 200
    assert len({t.split("_")[1] for t in tokens}) == 200


def test_tokens_survive_imap_and_smtp_quoting() -> None:
    """A token must be usable as an IMAP atom/quoted string and in AUTH PLAIN as-is."""
    for _ in range(50):
        token = new_token()[2]
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("mgk_abc_secret", ("abc", "secret")),
        ("mgk_abc_sec_ret_", ("abc", "sec_ret_")),  # the secret may hold "_"
        ("mgk_" + "a" * 32 + "_s", ("a" * 32, "s")),
        ("mgk_" + "a" * 33 + "_s", None),  # ids are at most 32 characters
        ("mgk_abc", None),
        ("mgk_abc_", None),
        ("mgk__secret", None),
        ("xyz_abc_secret", None),
        ("MGK_abc_secret", None),
        ("", None),
        ("plain-password", None),
    ],
)
def test_split_token(token: str, expected: tuple[str, str] | None) -> None:
    assert split_token(token) == expected


# ------------------------------------------------------------------------ hashing


def test_hash_secret_is_sha256_hex() -> None:
    assert hash_secret("s3cret") == hashlib.sha256(b"s3cret").hexdigest()
    assert len(hash_secret("x")) == 64  # fits api_keys.secret_hash
    assert hash_secret("a") != hash_secret("b")


def test_hash_secret_of_undecodable_input_does_not_raise() -> None:
    assert len(hash_secret("bad\udcff")) == 64
    assert len(hash_secret("\ud800")) == 64
    assert hash_secret("bad\udcff") != hash_secret("bad\ufffd")


# ------------------------------------------------------------------------ throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(mailgate.auth.time, "monotonic", fake)
    return fake


def throttle(**changes: float) -> Throttle:
    settings = AuthSettings(max_failures=5, failure_window=600, lockout=300, failure_delay=0.5)
    return Throttle(AuthSettings(**{**settings.__dict__, **changes}))


A = "alice@example.test"
B = "bob@example.test"


def test_each_failure_of_a_name_waits_twice_as_long_up_to_the_cap(clock: Clock) -> None:
    t = throttle(max_failures=100)
    delays = [t.failed("10.0.0.1", A) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert max(delays) == AuthSettings().max_failure_delay


def test_failures_of_one_name_never_delay_or_refuse_another(clock: Clock) -> None:
    t = throttle()
    for _ in range(50):
        t.failed("10.0.0.1", A)
    assert t.check("10.0.0.1", B) == 0.0  # B's correct key: answered at once
    assert t.failed("10.0.0.1", B) == 0.5  # B's own first failure: the first delay


def test_a_correct_key_after_many_failures_of_its_name_is_delayed_not_refused(
    clock: Clock,
) -> None:
    t = throttle()
    for _ in range(4):
        t.failed("10.0.0.1", A)
    assert t.check("10.0.0.1", A) == 0.0  # fewer than max_failures in a row
    t.failed("10.0.0.1", A)
    assert t.check("10.0.0.1", A) == 8.0  # delayed as the last failure was, and not refused
    assert t.check("10.0.0.2", A) == 0.0  # the same name from elsewhere is not affected
    t.succeeded("10.0.0.1", A)
    assert t.check("10.0.0.1", A) == 0.0


def test_many_names_failing_from_one_address_slow_its_failures_a_little(clock: Clock) -> None:
    t = throttle()
    for n in range(STUFFING_NAMES - 1):
        assert t.failed("10.0.0.1", f"user{n}@example.test") == 0.5
    # From here on every failure from the address waits too, though less than a name's own cap.
    delays = [t.failed("10.0.0.1", f"more{n}@example.test") for n in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert t.check("10.0.0.1", A) == 0.0  # correct keys are still answered at once
    assert t.failed("10.0.0.2", A) == 0.5  # other addresses are not affected


def test_no_address_is_refused_unless_the_operator_asks(clock: Clock) -> None:
    t = throttle()
    for n in range(1000):
        t.failed("10.0.0.1", f"user{n % 50}@example.test")
    assert t.check("10.0.0.1", A) == 0.0


def test_ban_after_refuses_the_address(clock: Clock) -> None:
    t = throttle(ban_after=5)
    for n in range(4):
        t.check("10.0.0.1", f"user{n}@example.test")
        t.failed("10.0.0.1", f"user{n}@example.test")
    t.check("10.0.0.1", A)
    t.failed("10.0.0.1", A)
    with pytest.raises(LockedOut) as info:
        t.check("10.0.0.1", B)
    assert info.value.retry_after == pytest.approx(300)
    assert "try again in" in str(info.value)
    t.check("10.0.0.2", A)  # other addresses are not affected


def test_a_ban_expires(clock: Clock) -> None:
    t = throttle(ban_after=5)
    for _ in range(5):
        t.failed("10.0.0.1", A)
    clock.now += 299
    with pytest.raises(LockedOut) as info:
        t.check("10.0.0.1", A)
    assert info.value.retry_after == pytest.approx(1)
    clock.now += 1.5
    t.check("10.0.0.1", B)
    # After a ban the count starts again.
    t.failed("10.0.0.1", B)
    t.check("10.0.0.1", B)


def test_failures_outside_the_window_are_forgotten(clock: Clock) -> None:
    t = throttle(ban_after=5)
    for _ in range(4):
        t.failed("10.0.0.1", A)
        clock.now += 100
    clock.now += 600
    assert t.failed("10.0.0.1", A) == 0.5
    assert t.check("10.0.0.1", A) == 0.0


def test_success_resets_the_count(clock: Clock) -> None:
    t = throttle()
    for _ in range(4):
        t.failed("10.0.0.1", A)
    t.succeeded("10.0.0.1", A)
    assert t.failed("10.0.0.1", A) == 0.5


def test_zero_delay(clock: Clock) -> None:
    t = throttle(failure_delay=0.0, lockout=0)
    for n in range(30):
        assert t.check("10.0.0.1", A) == 0.0
        assert t.failed("10.0.0.1", f"user{n}@example.test") == 0.0
        assert t.failed("10.0.0.1", A) == 0.0


def test_memory_stays_bounded(clock: Clock) -> None:
    t = throttle(failure_window=10)
    for i in range(12_000):
        t.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"user{i}@example.test")
        clock.now += 0.01
    # Entries older than the window are dropped once many are tracked.
    assert len(t._streaks) < 11_000
    assert len(t._addresses) < 11_000


# ------------------------------------------------------------------------ SASL


def test_decode_base64() -> None:
    assert decode_base64("aGVsbG8=") == b"hello"
    assert decode_base64(b"aGVsbG8=") == b"hello"
    assert decode_base64("") == b""


@pytest.mark.parametrize("text", ["!!!notbase64", "aGVsbG8", "aGVs bG8=", "=bad=", "é", b"\xff"])
def test_decode_base64_refuses_what_is_not_base64(text: str | bytes) -> None:
    with pytest.raises(BadBase64):
        decode_base64(text)


def test_plain_credentials() -> None:
    assert plain_credentials(b"\0alice@x.test\0mgk_a_b") == (b"alice@x.test", b"mgk_a_b")
    # RFC 4616: an authorization identity equal to the user's own is the same as none.
    assert plain_credentials(b"alice@x.test\0alice@x.test\0k") == (b"alice@x.test", b"k")
    assert plain_credentials(b"\0\0") == (b"", b"")


def test_plain_credentials_refuses_acting_as_another() -> None:
    with pytest.raises(AuthorizationRefused):
        plain_credentials(b"bob@x.test\0alice@x.test\0k")


@pytest.mark.parametrize("response", [b"", b"just-one-field", b"a\0b", b"a\0b\0c\0d"])
def test_plain_credentials_needs_three_fields(response: bytes) -> None:
    with pytest.raises(MalformedResponse):
        plain_credentials(response)


# ------------------------------------------------------------------------ scopes


def _inbox(inbox_id: int, pod_id: int) -> Inbox:
    return Inbox(inbox_id, pod_id, f"pod{pod_id}", f"i{inbox_id}@x.test", 0)


def _key(*, pod_id: int, inbox_id: int | None = None) -> ApiKey:
    inbox = None if inbox_id is None else f"i{inbox_id}@x.test"
    return ApiKey("k", pod_id, f"pod{pod_id}", inbox_id, inbox, "", 0, None, "hash")


def test_an_inbox_key_covers_its_inbox_only() -> None:
    key = _key(pod_id=1, inbox_id=10)
    assert covers(key, _inbox(10, 1))
    assert not covers(key, _inbox(11, 1))  # same pod, another inbox


def test_a_pod_key_covers_every_inbox_of_its_pod_only() -> None:
    key = _key(pod_id=1)
    assert covers(key, _inbox(10, 1))
    assert covers(key, _inbox(11, 1))
    assert not covers(key, _inbox(12, 2))


# ------------------------------------------------------------------------ bearer keys


def with_store(tmp_path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    """`work` on a real store over a fresh SQLite file."""

    async def main() -> T:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def add_key(store: Store, **scope: str) -> tuple[ApiKey, str]:
    key_id, secret, token = new_token()
    return await store.add_key(key_id, hash_secret(secret), **scope), token


def test_a_bearer_key_comes_with_its_scope(tmp_path: Path) -> None:
    async def work(store: Store) -> None:
        auth = Authenticator(store, AuthSettings(failure_delay=0.0))
        inbox = await store.create_inbox("alice@team.test", "team")
        pod_key, pod_token = await add_key(store, pod="team")
        inbox_key, inbox_token = await add_key(store, inbox=inbox.address)

        found = await auth.verify_key(f" {pod_token} ", "192.0.2.1", protocol="api")
        assert (found.id, found.pod, found.inbox_id) == (pod_key.id, "team", None)
        found = await auth.verify_key(inbox_token, "192.0.2.1", protocol="api")
        assert (found.id, found.inbox_id, found.inbox) == (inbox_key.id, inbox.id, inbox.address)
        assert covers(found, inbox)

    with_store(tmp_path, work)


def test_bearer_refusals(tmp_path: Path) -> None:
    async def work(store: Store) -> None:
        auth = Authenticator(store, AuthSettings(max_failures=1000, failure_delay=0.0))
        inbox = await store.create_inbox("alice@x.test")
        _, token = await add_key(store, inbox=inbox.address)
        key_id, secret = split_token(token)  # type: ignore[misc]
        gone, gone_token = await add_key(store, pod="default")
        await store.revoke_key(gone.id)
        for wrong in (
            f"mgk_{key_id}_{secret[:-1]}x",  # wrong secret
            f"mgk_unknown_{secret}",  # unknown key id
            secret,  # not a token
            "",
            gone_token,  # revoked
        ):
            with pytest.raises(AuthFailed):
                await auth.verify_key(wrong, "192.0.2.1", protocol="api")
        await store.delete_inbox(inbox.address)  # its keys go with it
        with pytest.raises(AuthFailed):
            await auth.verify_key(token, "192.0.2.1", protocol="api")

    with_store(tmp_path, work)


def test_bearer_failures_are_throttled_with_logins(tmp_path: Path) -> None:
    async def work(store: Store) -> None:
        settings = AuthSettings(ban_after=3, lockout=60, failure_delay=0.0)
        auth = Authenticator(store, settings)
        inbox = await store.create_inbox("alice@x.test")
        _, token = await add_key(store, inbox=inbox.address)
        with pytest.raises(AuthFailed):
            await auth.login(inbox.address, "mgk_x_wrong", "198.51.100.7", protocol="imap")
        for _ in range(2):
            with pytest.raises(AuthFailed):
                await auth.verify_key("mgk_x_wrong", "198.51.100.7", protocol="api")
        # Banned now (the operator asked for it), even with the right key; others are not.
        with pytest.raises(LockedOut):
            await auth.verify_key(token, "198.51.100.7", protocol="api")
        with pytest.raises(LockedOut):
            await auth.login(inbox.address, token, "198.51.100.7", protocol="imap")
        assert (await auth.verify_key(token, "198.51.100.8", protocol="api")).inbox == inbox.address

    with_store(tmp_path, work)
