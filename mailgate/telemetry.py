"""What a node counts for its operators, in Prometheus form (GET /metrics on the API's port).

Each server (app.App) has one `Metrics` with a registry of its own, not prometheus_client's
process-wide default, so that several servers in one process (the tests) count apart. The module
sits low in the layers, just above config, so that auth, delivery and the protocol edges can
count; it imports no other part of mailgate.

Hot paths stay cheap: the histogram series of each IMAP command is looked up once per server
(`command_timers`), so timing a command costs two clock reads and one observe (under a
microsecond); a counter increment costs about 0.3 µs. Label values come from small fixed sets
(commands, protocols, endpoints), never from what a client sends.

Three ways to add to it:

- a counter or gauge that code updates as things happen: `metrics.counter(...)` and
  `metrics.gauge(...)` register one on this node's registry (the webhook worker's
  `mailgate_webhook_failures_total{webhook}`);
- a count of open connections: `metrics.count_sessions(WEBSOCKET, lambda: len(clients))`,
  read at each scrape as `mailgate_sessions{protocol="websocket"}`;
- a value only the store knows, read at scrape time: `metrics.on_scrape(read)`, where `read`
  is an async function returning metric families (`gauge_family`), as
  `mailgate_webhook_backlog{webhook}` is. The families of a read that fails or takes longer
  than SCRAPE_TIMEOUT are left out of that scrape rather than shown stale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST  # the text format generate_latest writes
# How long a scrape waits for values read from the store (a scrape must answer even when the
# database does not; Prometheus's own default scrape timeout is 10 s).
SCRAPE_TIMEOUT = 2.0
# IMAP commands that are not in the registry (typos, extensions we lack) share one series.
OTHER = "other"

# Sessions: the protocols app.py counts (the HTTP API's connections included).
IMAP = "imap"
SMTP_SUBMISSION = "smtp_submission"
SMTP_MX = "smtp_mx"
HTTP = "http"
WEBSOCKET = "websocket"  # subscribed event streams (http/stream.py)

# Where an accepted message came from (mailgate_messages_accepted_total{source}).
SOURCE_SUBMISSION = "submission"  # SMTP submission, 465/587
SOURCE_API = "api"  # a send over the HTTP API
SOURCE_MX = "mx"  # another server, port 25
SOURCE_APPEND = "append"  # IMAP APPEND

# Login results (mailgate_logins_total{result}), for the protocols auth.py is told.
LOGIN_OK = "ok"
LOGIN_FAILED = "failed"
LOGIN_LOCKED_OUT = "locked_out"
LOGIN_UNAVAILABLE = "unavailable"
LOGIN_PROTOCOLS = ("imap", "smtp", "api")

_COMMAND_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_TRANSACTION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

# A metric family with its samples, as an `on_scrape` read returns them.
Family = Metric
Read = Callable[[], Awaitable[Iterable[Family]]]


class _Scraped(Collector):
    """The families the scrape's reads returned, for the one generate_latest that follows."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class _Commits(Collector):
    """The store's write transactions and the writes they held, read at each scrape (the
    writer counts them as plain integers: nothing to pay per write)."""

    def __init__(self, read: Callable[[], tuple[int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        commits, writes = self._read()
        yield CounterMetricFamily(
            "mailgate_store_commits",
            "Write transactions committed to the database",
            value=commits,
        )
        yield CounterMetricFamily(
            "mailgate_store_committed_writes",
            "Writes (a delivery, an APPEND, a flag change...) committed; divided by "
            "mailgate_store_commits_total, the writes per commit (group commit on SQLite)",
            value=writes,
        )


class Metrics:
    """One node's metrics; see the module's docstring for adding to them."""

    def __init__(self) -> None:
        # No `_created` series beside every counter and histogram: they double the text for
        # nothing Prometheus uses. (A switch of the library's, for the whole process, whose
        # only exporter is mailgate.)
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self._sessions = self.gauge(
            "mailgate_sessions", "Connections open now, by protocol", ["protocol"]
        )
        self._logins = self.counter(
            "mailgate_logins",
            "Logins (IMAP LOGIN/AUTHENTICATE, SMTP AUTH) and API key checks (one per API "
            "request), by protocol and result",
            ["protocol", "result"],
        )
        self._accepted = self.counter(
            "mailgate_messages_accepted",
            "Messages accepted and committed (250 after DATA, OK after APPEND, an API send), "
            "by where they came from",
            ["source"],
        )
        self._delivered = self.counter(
            "mailgate_messages_delivered",
            "Copies delivered, one per recipient: route=local into a hosted mailbox, "
            "route=remote accepted by another server (250)",
            ["route"],
        )
        self._deferred = self.counter(
            "mailgate_messages_deferred",
            "Outbound delivery attempts that failed temporarily, one per recipient (retried later)",
        )
        self._bounced = self.counter(
            "mailgate_messages_bounced",
            "Outbound recipients given up on (5xx or too long queued), a bounce to the sender",
        )
        self._imap_commands = Histogram(
            "mailgate_imap_command_duration_seconds",
            "IMAP commands from the end of their reading to their reply written, by command "
            "(IDLE: until it starts idling)",
            ["command"],
            buckets=_COMMAND_BUCKETS,
            registry=self.registry,
        )
        self._smtp_transactions = Histogram(
            "mailgate_smtp_transaction_duration_seconds",
            "SMTP transactions from MAIL FROM to the reply to DATA, by service (submission or mx)",
            ["service"],
            buckets=_TRANSACTION_BUCKETS,
            registry=self.registry,
        )
        self._slowed = self.counter(
            "mailgate_commands_slowed",
            "IMAP and SMTP commands after which the session waited before reading the next, "
            "being over [limits] commands_per_second, by protocol (imap or smtp)",
            ["protocol"],
        )
        self._store_errors = self.counter(
            "mailgate_store_errors",
            "Store failures met by requests, deliveries and scrapes: error=Unavailable "
            "(database down or busy), Conflict (writers kept colliding), StoreError (internal)",
            ["error"],
        )
        self._scraped = _Scraped()
        self.registry.register(self._scraped)
        self._reads: list[Read] = []
        # Known series start at 0, so that rate() and alerts see them before their first event.
        for protocol in LOGIN_PROTOCOLS:
            for result in (LOGIN_OK, LOGIN_FAILED):
                self._logins.labels(protocol, result)
        for source in (SOURCE_SUBMISSION, SOURCE_API, SOURCE_MX, SOURCE_APPEND):
            self._accepted.labels(source)
        for route in ("local", "remote"):
            self._delivered.labels(route)
        for kind in (_UNAVAILABLE, _CONFLICT, _INTERNAL):
            self._store_errors.labels(kind)
        for protocol in ("imap", "smtp"):
            self._slowed.labels(protocol)

    # ------------------------------------------------------------------ extending

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter on this node's registry (exposed as `<name>_total`)."""
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge on this node's registry."""
        return Gauge(name, documentation, labels, registry=self.registry)

    def count_sessions(self, protocol: str, count: Callable[[], float]) -> None:
        """`mailgate_sessions{protocol}` is `count()` at each scrape: counted where the
        connections are kept anyway, so opening and closing one costs nothing here."""
        self._sessions.labels(protocol).set_function(count)

    def count_commits(self, read: Callable[[], tuple[int, int]]) -> None:
        """`mailgate_store_commits_total` and `mailgate_store_committed_writes_total` are
        `read()` (commits, writes) at each scrape."""
        self.registry.register(_Commits(read))

    def on_scrape(self, read: Read) -> None:
        """Have each scrape await `read` for families of its own (values from the store)."""
        self._reads.append(read)

    # ------------------------------------------------------------------ counting

    def login(self, protocol: str, result: str) -> None:
        self._logins.labels(protocol, result).inc()

    def accepted(self, source: str, *, local: int = 0) -> None:
        """A message accepted from `source`, of which `local` copies went to hosted mailboxes."""
        self._accepted.labels(source).inc()
        if local:
            self._delivered.labels("local").inc(local)

    def delivered_remote(self, recipients: int) -> None:
        self._delivered.labels("remote").inc(recipients)

    def deferred(self, recipients: int) -> None:
        self._deferred.inc(recipients)

    def bounced(self, recipients: int) -> None:
        self._bounced.inc(recipients)

    def command_timers(self, names: Iterable[str]) -> dict[str, Histogram]:
        """The histogram series of each IMAP command in `names`, and of OTHER: a session
        observes `timers.get(name) or timers[OTHER]`, with no label lookup per command."""
        return {name: self._imap_commands.labels(name) for name in (*names, OTHER)}

    def slowed(self, protocol: str) -> None:
        self._slowed.labels(protocol).inc()

    def smtp_transaction(self, service: str, seconds: float) -> None:
        self._smtp_transactions.labels(service).observe(seconds)

    def store_error(self, exc: BaseException) -> None:
        """Count `exc` if it is a store failure (see `store_failure`); the callers are the
        places that turn store errors into answers, so each failure is counted once."""
        kind = store_failure(exc)
        if kind is not None:
            self._store_errors.labels(kind).inc()

    # ------------------------------------------------------------------ scraping

    async def render(self) -> bytes:
        """The exposition text: the reads first (awaited, never blocking the loop), then the
        registry, generated with no await in between so that two scrapes cannot mix."""
        results = await asyncio.gather(*(self._read(read) for read in self._reads))
        self._scraped.families = [family for families in results for family in families]
        try:
            return generate_latest(self.registry)
        finally:
            self._scraped.families = []

    async def _read(self, read: Read) -> list[Metric]:
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                return list(await read())
        except Exception as exc:
            name = getattr(read, "__qualname__", read)
            log.warning("metrics: reading %s failed: %s", name, str(exc) or type(exc).__name__)
            return []


def gauge_family(
    name: str, documentation: str, value: float | None = None, labels: Sequence[str] = ()
) -> GaugeMetricFamily:
    """A gauge for `on_scrape` reads: one value, or `.add_metric(label_values, value)` each."""
    if labels:
        return GaugeMetricFamily(name, documentation, labels=labels)
    return GaugeMetricFamily(name, documentation, value=value)


def webhook_backlogs(backlogs: Iterable[tuple[str, int, int]]) -> list[Family]:
    """Each enabled webhook endpoint's backlog and failing attempts, as the store reads them."""
    behind = gauge_family(
        "mailgate_webhook_backlog",
        "Events committed past a webhook's cursor (not all of them its to send), per endpoint",
        labels=["webhook"],
    )
    failing = gauge_family(
        "mailgate_webhook_failing_attempts",
        "Failed attempts in a row at a webhook's next event (0: it is up to date or fine)",
        labels=["webhook"],
    )
    for webhook, backlog, attempts in backlogs:
        behind.add_metric([webhook], backlog)
        failing.add_metric([webhook], attempts)
    return [behind, failing]


def outbound_queue(depth: int, oldest_age: float) -> list[Family]:
    """The outbound queue as a scrape reads it from the store."""
    return [
        gauge_family(
            "mailgate_outbound_queue_depth",
            "Recipients on other servers waiting for delivery (all nodes of the database)",
            depth,
        ),
        gauge_family(
            "mailgate_outbound_queue_oldest_age_seconds",
            "Seconds since the oldest waiting recipient was queued; 0 when none waits",
            oldest_age,
        ),
    ]


# The store's errors that mean it failed, rather than answered (no such mailbox, already
# exists...), by class name: this module sits below the store and cannot import its classes
# (tests/unit/test_telemetry.py holds these names to mailgate.store.errors).
_STORE_ERRORS = "mailgate.store.errors"
_UNAVAILABLE = "Unavailable"
_CONFLICT = "Conflict"
_INTERNAL = "StoreError"


def store_failure(exc: BaseException) -> str | None:
    """ "Conflict", "Unavailable" or "StoreError" for a store failure; None for anything else."""
    names = [cls.__name__ for cls in type(exc).__mro__ if cls.__module__ == _STORE_ERRORS]
    if not names:
        return None
    for kind in (_CONFLICT, _UNAVAILABLE):
        if kind in names:
            return kind
    # The bare base class is what the store raises for its own internal errors.
    return _INTERNAL if names[0] == _INTERNAL else None
