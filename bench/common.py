"""What every part of the benchmark shares: the loopback address, the inboxes' domain, the
timeouts, the error a measurement raises, a test account, and a server as the phases see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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


class Target(Protocol):
    """A server the phases measure: one `mailgate serve` (server.Server) or the reference
    servers (reference.Reference)."""

    name: str  # "node A", ... when there are several; empty for one mailgate server
    ports: dict[str, int]  # by mailgate's listener names: "imaps", "submissions", "mx"
    # Its 250 after DATA means the message is queued, not in the recipient's mailbox yet.
    queues: bool

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...

    def log_tail(self, lines: int = 30) -> str: ...

    def cpu_seconds(self) -> float:
        """User + system CPU of all its processes and threads since it started."""
        ...

    def memory_kib(self) -> dict[str, int]:
        """Its Rss, Pss and Anonymous memory in KiB."""
        ...

    def open_fds(self) -> int: ...
