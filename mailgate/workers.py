"""`mailgate serve` on every core ([server] workers > 1): a parent process that supervises
worker processes, each an event loop running an `App` on the same ports.

The parent binds every listening socket once (so a port in use is one error, the ports are
printed once, and a restarted worker takes up the same sockets) and starts the workers, which
inherit them: each accepts on all of them, and the kernel hands a connection to whichever worker
accepts it first. The parent relays the workers' changes to each other on SQLite
(store/channel.py; PostgreSQL has LISTEN/NOTIFY), restarts a worker that dies (its clients
reconnect to the others at once, and to it once it is back), and on SIGINT or SIGTERM stops
them all: each finishes what it is storing, says goodbye and exits, then the parent does.

What must happen once happens once: pruning runs in worker 0 only; the outbound queue and the
webhook deliveries are shared through leases in the database as between nodes, each worker
claiming under a name of its own (`node_id(settings, worker)`); failed logins are counted in
the database. What is kept in memory is each worker's: `[limits] connections_per_ip` counts
the connections of the worker that holds them, and /metrics answers for the worker that took
the scrape's connection (`mailgate_worker` names it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailgate.config import Settings
from mailgate.listeners import Listener, bind, describe
from mailgate.store.api import Store
from mailgate.store.channel import MAX_LINE
from mailgate.tls import Certificate, ensure_certificate

log = logging.getLogger(__name__)

# A worker stops within App's drain (10 s) and its goodbyes (10 s); then it is killed.
STOP_SECONDS = 30.0
# A worker that keeps dying is started again after 0.1 s, doubling up to this.
RESTART_MAX_DELAY = 5.0
# A worker that served this long had no trouble starting: its next restart is quick again.
HEALTHY_SECONDS = 10.0


def worker_count(settings: Settings) -> int:
    """[server] workers, 0 meaning the CPU cores this process may run on."""
    return settings.server.workers or len(os.sched_getaffinity(0))


class WorkerFailed(Exception):
    """A worker exited before it was ready (it said why on stderr); `code` is its exit code."""

    def __init__(self, index: int, code: int) -> None:
        super().__init__(f"worker {index} exited with {code} before it was ready")
        self.code = code


@dataclass
class Serving:
    """What `serve` prints once every worker is ready (the fields `App` has, and the workers)."""

    settings: Settings
    certificate: Certificate
    listeners: list[Listener]
    pids: list[int]


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    relay: asyncio.StreamWriter
    ready: asyncio.Task[bool]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Supervisor:
    """Starts `count` workers with `command` (the `mailgate serve` command line, to which
    `--worker SPEC` is added) and keeps them running until `stop`."""

    def __init__(self, settings: Settings, count: int, command: Sequence[str]) -> None:
        self.settings = settings
        self.count = count
        self.command = list(command)
        self.sockets: dict[str, socket.socket] = {}
        self.workers: dict[int, _Worker] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> Serving:
        """Bind, migrate, start every worker and wait until each is serving; ConfigError for
        a bad setting or a port in use, Unavailable for the database, WorkerFailed."""
        settings = self.settings
        # Made here, once: workers generating a self-signed certificate at once would race.
        certificate = ensure_certificate(settings)
        self.sockets = bind(settings)
        try:
            # Migrations run once, before any worker opens the database.
            store = await Store.open(
                settings.database_url,
                pool_size=1,
                pool_timeout=settings.database.pool_timeout,
            )
            await store.close()
            for index in range(self.count):
                self.workers[index] = await self._spawn(index)
            for worker in list(self.workers.values()):
                if not await worker.ready:
                    raise WorkerFailed(worker.index, await worker.process.wait())
        except BaseException:
            await self.stop()
            raise
        self._keepers = [
            asyncio.create_task(self._keep(index), name=f"mailgate-worker-{index}")
            for index in self.workers
        ]
        listeners = [
            describe(settings, name, sock.getsockname()[1]) for name, sock in self.sockets.items()
        ]
        pids = [worker.process.pid for worker in self.workers.values()]
        return Serving(settings, certificate, listeners, pids)

    async def stop(self) -> None:
        """SIGTERM to every worker; wait for them (killing one that takes too long)."""
        self._stopping = True
        for keeper in self._keepers:
            keeper.cancel()
        workers = list(self.workers.values())
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        for sock in self.sockets.values():
            sock.close()
        waiting = [asyncio.ensure_future(worker.process.wait()) for worker in workers]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=STOP_SECONDS)
            for worker in workers:
                if worker.process.returncode is None:
                    log.error("worker %d did not stop in time: killed", worker.index)
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            if late:
                await asyncio.wait(late)
        for worker in workers:
            self._forget(worker)

    async def _spawn(self, index: int) -> _Worker:
        relay, relay_child = socket.socketpair()
        ready, ready_child = socket.socketpair()
        fds = {name: sock.fileno() for name, sock in self.sockets.items()}
        spec = {
            "index": index,
            "sockets": fds,
            "relay": relay_child.fileno(),
            "ready": ready_child.fileno(),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                "--worker",
                json.dumps(spec),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=[*fds.values(), relay_child.fileno(), ready_child.fileno()],
            )
        finally:
            relay_child.close()
            ready_child.close()
        reader, writer = await asyncio.open_unix_connection(sock=relay, limit=MAX_LINE)
        ready_reader, ready_writer = await asyncio.open_unix_connection(sock=ready)
        worker = _Worker(
            index,
            process,
            writer,
            asyncio.create_task(_ready(ready_reader, ready_writer, index, process.pid)),
        )
        worker.tasks.append(asyncio.create_task(self._relay(worker, reader)))
        return worker

    async def _relay(self, source: _Worker, reader: asyncio.StreamReader) -> None:
        """Every line (a batch of changes) from `source` to every other worker."""
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError) as exc:  # reset, or not one of our lines
                log.error("worker %d: relaying its changes failed: %s", source.index, exc)
                return
            if not line.endswith(b"\n"):
                return  # it exited
            for worker in list(self.workers.values()):
                if worker is not source and not worker.relay.is_closing():
                    worker.relay.write(line)

    async def _keep(self, index: int) -> None:
        """Start worker `index` again whenever it exits (until `stop`)."""
        delay = 0.1
        loop = asyncio.get_running_loop()
        while True:
            worker = self.workers[index]
            started = loop.time()
            code = await worker.process.wait()
            self._forget(worker)
            if self._stopping:
                return
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            if loop.time() - started > HEALTHY_SECONDS:
                delay = 0.1
            log.error(
                "worker %d (pid %d) ended (%s); starting it again in %.1f s",
                index,
                worker.process.pid,
                how,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)
            self.workers[index] = await self._spawn(index)

    def _forget(self, worker: _Worker) -> None:
        worker.relay.close()
        worker.ready.cancel()
        for task in worker.tasks:
            task.cancel()


async def _ready(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int, pid: int
) -> bool:
    """Whether the worker said it is serving (False: it exited first)."""
    try:
        said = await reader.readline()
    except OSError:
        said = b""
    finally:
        writer.close()
    if said == b"ready\n":
        log.info("worker %d (pid %d) is serving", index, pid)
        return True
    return False
