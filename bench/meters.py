"""What processes cost, read from /proc and the kernel's CPU clocks: the CPU time, memory and
open files of one process or of a tree of them, and the CPU time of the local PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import Target

MEMORY_FIELDS = ("Rss", "Pss", "Anonymous")


def die_with_parent() -> None:
    """In a server child (preexec_fn): get SIGTERM if the benchmark dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def process_cpu_clock(pid: int) -> int | None:
    """The CLOCK_PROCESS_CPUTIME_ID-like clock of another process (ns resolution), if any."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            return None
        time.clock_gettime(clock.value)  # readable by us?
        return clock.value
    except (OSError, AttributeError):
        return None


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """The command name and the fields after it in /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def stat_cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU of a process from /proc/<pid>/stat, and with `reaped` that of the
    children it has waited for. It counts in clock ticks (10 ms), too coarse for one FETCH but
    fine over a phase."""
    fields = _stat(pid)[1]
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree(*roots: int) -> list[int]:
    """The processes `roots` and every descendant of theirs that is alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children.setdefault(int(_stat(entry.name)[1][1]), []).append(int(entry.name))
    tree: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def tree_cpu_seconds(*roots: int) -> float:
    """User + system CPU of a tree of processes, with the children they have reaped: a service
    process that exited in the meantime still counts, in its parent's figures."""
    total = 0.0
    for pid in process_tree(*roots):
        with contextlib.suppress(OSError):
            total += stat_cpu_seconds(pid, reaped=True)
    return total


def memory_kib(pid: int) -> dict[str, int]:
    """Rss, Pss and Anonymous (KiB) from smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in MEMORY_FIELDS:
            out[name] = int(rest.split()[0])
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tree_memory_kib(*roots: int) -> dict[str, int]:
    """Rss, Pss and Anonymous (KiB) summed over a tree of processes. Only the Pss and
    Anonymous sums mean something: Rss counts every shared page once per process."""
    total = dict.fromkeys(MEMORY_FIELDS, 0)
    for pid in process_tree(*roots):
        with contextlib.suppress(OSError):  # gone in the meantime
            for name, kib in memory_kib(pid).items():
                total[name] += kib
    return total


def tree_open_fds(*roots: int) -> int:
    total = 0
    for pid in process_tree(*roots):
        with contextlib.suppress(OSError):  # gone in the meantime
            total += open_fds(pid)
    return total


@contextlib.contextmanager
def cpu_meter(*servers: Target) -> Iterator[Callable[[], tuple[float, float]]]:
    """Yields a function returning (CPU seconds of all the servers, wall seconds) since entry."""
    cpu0, wall0 = sum(s.cpu_seconds() for s in servers), time.perf_counter()
    yield lambda: (sum(s.cpu_seconds() for s in servers) - cpu0, time.perf_counter() - wall0)


def postgres_cpu_seconds() -> float | None:
    """User + system CPU of every `postgres` process on this machine (the PostgreSQL server, when
    it runs here: backends, WAL writer, ...), or None if there is none. A backend that exits
    in between takes its CPU with it; the servers' pools keep theirs open."""
    total = 0.0
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            name = _stat(entry.name)[0]
            if name == "postgres":
                total += stat_cpu_seconds(int(entry.name))
                found = True
        except OSError:
            continue
    return total if found else None
