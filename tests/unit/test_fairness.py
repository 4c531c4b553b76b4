"""Pace: long work on the event loop gives way to other tasks between slices."""

from __future__ import annotations

import asyncio
import itertools
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

    async def paced() -> None:
        with Pace() as pace:
            await long_work(pace)

    async def main(with_pace: bool) -> None:
        work = asyncio.ensure_future(paced() if with_pace else long_work(None))
        await asyncio.sleep(0)  # the work starts first and runs until it gives way
        order.append("other task")
        await work

    asyncio.run(main(True))
    assert order == ["other task", "long work done"]
    order.clear()
    asyncio.run(main(False))  # without a pace it holds the loop to the end
    assert order == ["long work done", "other task"]


def test_slices_shrink_as_more_long_work_runs_at_once() -> None:
    """Each turn of the loop runs a slice of each; together they stay about SLICE long."""
    turns: list[int] = []
    steps = 40  # a step is 1/40 of a slice, so each work runs 5 slices' worth in all

    async def work(name: int) -> None:
        with Pace() as pace:
            for _ in range(5 * steps):
                burn(SLICE / steps)
                turns.append(name)
                await pace.step()

    async def main() -> None:
        await asyncio.gather(*(work(n) for n in range(4)))

    asyncio.run(main())
    assert Pace.active == 0
    runs = [len(list(run)) for _, run in itertools.groupby(turns)]
    # Each starts with the share of a slice the ones before it leave (1, 1/2, 1/3, 1/4); from
    # then on, four at once take turns of a quarter slice each (a step more where the clock is
    # read late), until they finish.
    shares = [steps + 2, steps // 2 + 2, steps // 3 + 2, steps // 4 + 2]
    assert all(run <= share for run, share in zip(runs, shares, strict=False)), runs
    assert max(runs[4:-8]) <= steps // 4 + 2, runs
