"""Sharing the one event loop: long work (a SEARCH over a big mailbox, a FETCH of thousands of
messages) runs in slices, and between slices every other client is served.

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
import time
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
