"""Tokens the API hands out and takes back (page tokens, download links): a small JSON payload
in base64url and its HMAC-SHA256 under the store's "tokens" secret, which every node shares.
Each kind of token signs its purpose with it, so one kind can never pass for another."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

# Tokens are short; anything longer was not made here (and is not worth hashing).
MAX_TOKEN = 2048


def seal(key: bytes, purpose: bytes, payload: dict[str, Any]) -> str:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{_b64(data)}.{_b64(_mac(key, purpose, data))}"


def unseal(key: bytes, purpose: bytes, token: str) -> dict[str, Any] | None:
    """The payload of a token made here for `purpose`, unchanged; else None."""
    if len(token) > MAX_TOKEN:
        return None
    data_part, _, mac_part = token.partition(".")
    try:
        data = _unb64(data_part)
        mac = _unb64(mac_part)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(_mac(key, purpose, data), mac):
        return None
    payload = json.loads(data)
    return payload if isinstance(payload, dict) else None


def _mac(key: bytes, purpose: bytes, data: bytes) -> bytes:
    return hmac.new(key, purpose + data, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
