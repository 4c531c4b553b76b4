"""Pace: long work on the event loop gives way to other tasks between slices. The work here
spends time on a clock of the test's own, so what is checked is the order of turns, whatever
else the machine is doing."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from mailgate.fairness import SLICE, Pace

clock = [0.0]


@pytest.fixture(autouse=True)
def test_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailgate.fairness.time", SimpleNamespace(monotonic=lambda: clock[0]))


def burn(seconds: float) -> None:
    """Work that takes `seconds` on the test's clock."""
    clock[0] += seconds


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
    assert runs[:4] == [steps, steps // 2, steps // 3 + 1, steps // 4], runs
    # Four at once: a quarter slice each, until the first to finish (the one that began with
    # the whole slice) leaves the other three a third each.
    first_done = turns.index(0, len(turns) - turns[::-1].index(0) - 1)
    four = [len(list(run)) for _, run in itertools.groupby(turns[: first_done + 1])][4:-1]
    # (A step more where the sum of the steps' times rounds just below the quarter.)
    assert four, turns
    assert set(four) <= {steps // 4, steps // 4 + 1}, four
