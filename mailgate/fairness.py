"""Sharing the server fairly. Connections per client address are bounded (`PerAddress`), so
one address cannot take every socket and session; a session's commands are paced
(`CommandRate`), so one client in a tight loop of cheap commands cannot take the loop from the
others. And the one event loop is shared: long work (a SEARCH over a big mailbox, a FETCH of
thousands of messages) runs in slices, and between slices every other client is served.

    with Pace() as pace:
        for message in messages:
            ...                      # a small step
            await pace.step()        # yields to the loop once its slice is used up

Each turn of the loop runs one slice of every long work in progress, so the slices shrink as
more of it runs at once: a turn, and with it the wait of a client with a quick command, stays
about SLICE long however many clients ask for costly work. A step costs one clock read; work
that is fast anyway never yields.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from types import TracebackType

# What one turn of the loop may spend on long work, all of it together.
SLICE = 0.004


class Pace:
    __slots__ = ("_until",)

    # Long work in progress in this process (there is one event loop per process).
    active = 0

    def __init__(self) -> None:
        self._until = 0.0

    def __enter__(self) -> Pace:
        Pace.active += 1
        self._until = time.monotonic() + SLICE / Pace.active
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        Pace.active -= 1

    async def step(self) -> None:
        if time.monotonic() >= self._until:
            await asyncio.sleep(0)
            self._until = time.monotonic() + SLICE / max(Pace.active, 1)


class PerAddress:
    """Connections open per client address, IMAP and SMTP together (the PROXY header's address
    where a balancer sends one). Addresses in the exempt networks (loopback, by default) are
    not counted: a local relay, a webmail or a benchmark may hold many."""

    def __init__(self, limit: int, exempt: Iterable[str]) -> None:
        self.limit = limit  # 0: no limit
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in exempt]
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count a connection from `address`, unless it has `limit` open already (False)."""
        if not self.limit or self._exempted(address):
            return True
        held = self._open.get(address, 0)
        if held >= self.limit:
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._open.get(address)
        if held is None:
            return
        if held <= 1:
            del self._open[address]
        else:
            self._open[address] = held - 1

    def _exempted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._exempt)


class CommandRate:
    """A session's commands per second, as a token bucket holding one second's worth: a client
    may send that many at once, then is held to the rate. A command over it is not refused
    (a script in a loop would break on a NO it does not expect); the session reads its next
    command later, so the flood waits in the client's socket, costing the server nothing."""

    __slots__ = ("_at", "_per_second", "_tokens")

    def __init__(self, per_second: int) -> None:
        self._per_second = float(per_second)
        self._tokens = self._per_second
        self._at = time.monotonic()

    def wait(self) -> float:
        """Count a command just answered; the seconds to wait before reading the next."""
        now = time.monotonic()
        rate = self._per_second
        tokens = min(rate, self._tokens + (now - self._at) * rate) - 1.0
        self._tokens, self._at = tokens, now
        return 0.0 if tokens >= 0.0 else -tokens / rate
