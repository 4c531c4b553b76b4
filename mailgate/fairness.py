"""Sharing the one event loop: long work (a SEARCH over a big mailbox, a FETCH of thousands of
messages) runs in slices, and between slices every other client is served.

    pace = Pace()
    for message in messages:
        ...                      # a small step
        await pace.step()        # yields to the loop once SLICE seconds have gone by

A step costs one clock read; the loop is given up only when the slice is used up, so work that
is fast anyway pays nothing for it.
"""

from __future__ import annotations

import asyncio
import time

# Long enough that yielding costs little, short enough that eight clients doing the costliest
# work at once still leave a ninth waiting well under 100 ms.
SLICE = 0.005


class Pace:
    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until = time.monotonic() + SLICE

    async def step(self) -> None:
        if time.monotonic() >= self._until:
            await asyncio.sleep(0)
            self._until = time.monotonic() + SLICE
