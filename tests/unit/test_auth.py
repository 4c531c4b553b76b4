"""mailgate.auth, the pure parts: the token format, hashing, and the login throttle (on a fake
clock). Logins against a real store are in tests/store/test_inboxes_keys.py."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

import mailgate.auth
from mailgate.auth import (
    MAX_FAILURE_DELAY,
    TOKEN_PREFIX,
    LockedOut,
    Throttle,
    hash_secret,
    new_token,
    split_token,
)
from mailgate.config import AuthSettings

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


def test_each_failure_waits_twice_as_long_up_to_the_cap(clock: Clock) -> None:
    t = throttle(max_failures=100)
    delays = [t.failed("10.0.0.1") for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert max(delays) == MAX_FAILURE_DELAY


def test_lockout_after_max_failures(clock: Clock) -> None:
    t = throttle()
    for _ in range(4):
        t.check("10.0.0.1")
        t.failed("10.0.0.1")
    t.check("10.0.0.1")
    # The failure that locks the address out waits as long as the ones before it, or longer.
    assert t.failed("10.0.0.1") == 8.0
    with pytest.raises(LockedOut) as info:
        t.check("10.0.0.1")
    assert info.value.retry_after == pytest.approx(300)
    assert "try again in" in str(info.value)
    t.check("10.0.0.2")  # other addresses are not affected


def test_lockout_expires(clock: Clock) -> None:
    t = throttle()
    for _ in range(5):
        t.failed("10.0.0.1")
    clock.now += 299
    with pytest.raises(LockedOut) as info:
        t.check("10.0.0.1")
    assert info.value.retry_after == pytest.approx(1)
    clock.now += 1.5
    t.check("10.0.0.1")
    # After a lockout the count starts again.
    assert t.failed("10.0.0.1") == 0.5


def test_failures_outside_the_window_are_forgotten(clock: Clock) -> None:
    t = throttle()
    for _ in range(4):
        t.failed("10.0.0.1")
        clock.now += 100
    clock.now += 600
    assert t.failed("10.0.0.1") == 0.5
    t.check("10.0.0.1")


def test_success_resets_the_count(clock: Clock) -> None:
    t = throttle()
    for _ in range(4):
        t.failed("10.0.0.1")
    t.succeeded("10.0.0.1")
    assert t.failed("10.0.0.1") == 0.5
    t.check("10.0.0.1")


def test_zero_delay_and_zero_lockout(clock: Clock) -> None:
    t = throttle(failure_delay=0.0, lockout=0)
    for _ in range(10):
        t.check("10.0.0.1")
        assert t.failed("10.0.0.1") == 0.0


def test_memory_stays_bounded(clock: Clock) -> None:
    t = throttle(failure_window=10)
    for i in range(12_000):
        t.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        clock.now += 0.01
    # Entries older than the window are dropped once many addresses are tracked.
    assert len(t._failures) < 11_000
