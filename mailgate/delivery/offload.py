"""CPU work on big messages, in a worker process.

dkimpy canonicalizes a message body with regular expressions that hold the GIL, so even from a
thread, signing or verifying a 10 MB message stalls the event loop (about 370 ms measured),
and with it every IDLE push. Above a size threshold that work goes to a separate process;
small messages stay in threads, where starting the work costs less than shipping it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

THRESHOLD = 256 * 1024


class Offload:
    def __init__(self, threshold: int = THRESHOLD, workers: int = 1) -> None:
        self.threshold = threshold
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def wants(self, size: int) -> bool:
        return size > self.threshold

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the worker process (both must pickle); started on first use."""
        if self._pool is None:
            # "spawn": forking a process that runs an event loop and threads risks a child
            # that inherits locks held at the moment of the fork.
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("spawn")
            )
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def run_or_thread(self, size: int, fn: Callable[..., T], *args: Any) -> T:
        if self.wants(size):
            return await self.run(fn, *args)
        return await asyncio.to_thread(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
