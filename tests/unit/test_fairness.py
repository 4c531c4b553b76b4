"""Pace: long work on the event loop gives way to other tasks between slices."""

from __future__ import annotations

import asyncio
import time

from mailgate.fairness import SLICE, Pace


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_long_work_lets_a_task_that_became_ready_meanwhile_run_before_it_ends() -> None:
    order: list[str] = []

    async def long_work(pace: Pace | None) -> None:
        for _ in range(20):
            burn(SLICE / 2)  # 10 slices of work in all
            if pace is not None:
                await pace.step()
        order.append("long work done")

    async def main(pace: Pace | None) -> None:
        work = asyncio.ensure_future(long_work(pace))
        await asyncio.sleep(0)  # the work starts first and runs until it gives way
        order.append("other task")
        await work

    asyncio.run(main(Pace()))
    assert order == ["other task", "long work done"]
    order.clear()
    asyncio.run(main(None))  # without a pace it holds the loop to the end
    assert order == ["long work done", "other task"]
