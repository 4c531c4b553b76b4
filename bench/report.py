"""The numbers and how they are shown: percentiles, a phase's section, the summary table,
progress on stderr."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


@dataclass
class Section:
    title: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, label: str, value: str, note: str = "") -> None:
        self.rows.append((label, value, note))

    def print(self) -> None:
        print(f"\n== {self.title}")
        w0 = max((len(label) for label, _, _ in self.rows), default=0)
        w1 = max((len(value) for _, value, _ in self.rows), default=0)
        for label, value, note in self.rows:
            print(f"  {label:<{w0}}  {value:>{w1}}  {note}".rstrip())
        sys.stdout.flush()


@dataclass
class Summary:
    setup: str = ""  # what ran: database and nodes, shown in the heading
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    # With the reference servers: their column's heading, and their results by row.
    reference: str = ""
    compared: dict[int, str] = field(default_factory=dict)

    def add(self, what: str, result: str, budget: str = "") -> None:
        self.rows.append((what, result, budget))

    def compare(self, start: int, results: list[str]) -> None:
        """The reference servers' results for the rows a phase added from `start` on."""
        for i, result in enumerate(results):
            self.compared[start + i] = result

    def failed(self, start: int, labels: list[str], reason: str) -> None:
        """A phase failed: replace whatever rows it added from `start` on by its usual rows,
        marked FAILED, so that every run of the same phases prints the same rows."""
        del self.rows[start:]
        reason = reason.splitlines()[0] if reason else ""
        reason = reason if len(reason) <= 70 else reason[:67] + "..."
        for i, label in enumerate(labels):
            self.rows.append((label, "FAILED", reason if i == 0 else ""))

    def print(self) -> None:
        rows: list[tuple[str, ...]]
        if self.reference:
            rows = [("measurement", "mailgate", self.reference, "budget / reference")]
            rows += [
                (what, result, self.compared.get(i, ""), budget)
                for i, (what, result, budget) in enumerate(self.rows)
            ]
        else:
            rows = [("measurement", "result", "budget / reference"), *self.rows]
        # The first column left-aligned, the results right-aligned, the last one as it comes.
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
        rule = "-" * (sum(widths) + 2 * len(widths) + max(len(r[-1]) for r in rows))
        print(f"\n== Summary ({self.setup})" if self.setup else "\n== Summary")
        print("  " + rule)
        for i, row in enumerate(rows):
            cells = [f"{row[0]:<{widths[0]}}"]
            cells += [f"{cell:>{width}}" for cell, width in zip(row[1:-1], widths[1:], strict=True)]
            print("  " + "  ".join([*cells, row[-1]]).rstrip())
            if i == 0:
                print("  " + rule)
        print("  " + rule)
        sys.stdout.flush()


def progress(text: str) -> None:
    # Progress goes to stderr, so stdout holds only the report.
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def cpu_note(cpu: float, wall: float) -> str:
    return f"{cpu:.2f} s  ({cpu / wall * 100:.0f}% of one core over {wall:.2f} s)"


def pg_row(
    section: Section,
    pg0: float | None,
    pg1: float | None,
    count: int,
    wall: float,
    label: str = "PostgreSQL CPU",
) -> None:
    if pg0 is not None and pg1 is not None:
        pg_cpu = pg1 - pg0
        section.add(
            label,
            f"{pg_cpu / count * 1000:.2f}",
            f"ms/message; {cpu_note(pg_cpu, wall)}  (every local postgres process)",
        )
