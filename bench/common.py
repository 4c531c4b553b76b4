"""What every part of the benchmark shares: the loopback address, the senders' domain,
the timeouts, the error a measurement raises and a test account."""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"
DOMAIN = "bench.test"  # the inboxes' domain
SOCKET_TIMEOUT = 60.0
READY_TIMEOUT = 60.0


class BenchError(Exception):
    """A measurement could not be completed; the message says why."""


@dataclass(frozen=True)
class Account:
    address: str
    key: str
