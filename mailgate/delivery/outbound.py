"""The delivery worker: sends queued mail to other servers, signed with DKIM.

    claim due recipients (a lease, so each goes to one node)  ->  group them by destination
    ->  sign each message with its sender domain's keys (RSA + Ed25519)  ->  MX lookup (or the
    smarthost)  ->  one connection per host, STARTTLS when offered  ->  per recipient:
    250 delivered | 4xx or no host reachable: retried later | 5xx or too old: bounced (a DSN
    to the sender's INBOX, one per message for all the destinations claimed together)

Recipients that got 250 are recorded at once, before the next message on the connection: a
crash after that never sends them again. If that commit fails it is retried until it holds.
While a delivery runs its claims are renewed, so a slow one never loses them to another node;
a node that dies stops renewing, and another takes them over once the lease has run out. A
claim whose answer was lost with the database (it may have been committed) is given back as
soon as the database answers again, rather than when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import random
import socket
import ssl
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import aiosmtplib

from mailgate.background import stop_task
from mailgate.config import ConfigError, OutboundSettings, Settings
from mailgate.delivery import dkim, dsn
from mailgate.delivery.dns import NullMX, Resolver, TemporaryDNSError
from mailgate.delivery.offload import Offload
from mailgate.mime.addresses import domain_of
from mailgate.mime.headers import split_header
from mailgate.store.api import Store
from mailgate.store.errors import NotFound, StoreError
from mailgate.store.records import INBOX, Parcel, QueuedRecipient, QuotaRule, Target
from mailgate.telemetry import Metrics

log = logging.getLogger(__name__)

CLAIM_BATCH = 200
POLL_INTERVAL = 5.0
COALESCE = 0.05  # seconds to gather more new mail after a wake-up before claiming
# How long a stopping worker lets deliveries in flight finish before it interrupts them.
STOP_GRACE = 5.0
MAX_HOSTS = 5  # MX hosts tried per attempt, in preference order


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # what to call it in logs and DSNs
    addresses: tuple[str, ...]
    port: int


@dataclass
class Outcome:
    """What one attempt decided for each recipient (queue ids)."""

    delivered: list[int] = field(default_factory=list)
    recorded: set[int] = field(default_factory=set)  # delivered ones already committed
    deferred: dict[int, str] = field(default_factory=dict)  # id -> reply
    failed: dict[int, tuple[str, str, str | None]] = field(default_factory=dict)
    # id -> (status, diagnostic, remote host)

    def defer_all(self, items: Sequence[QueuedRecipient], reply: str) -> None:
        for item in items:
            self.deferred[item.id] = reply

    def fail_all(self, items: Sequence[QueuedRecipient], status: str, reply: str) -> None:
        for item in items:
            self.failed[item.id] = (status, reply, None)


@dataclass
class _Batch:
    """Recipients claimed together. Their failures are bounced together once the last of
    their destinations is done, so that a message whose recipients failed at several
    destinations brings its sender one bounce listing them all (as Postfix does per pass);
    until then their claims are kept."""

    items: list[QueuedRecipient]
    open: int  # destinations still being delivered to
    keeper: asyncio.Task[None]  # renews the claims
    failed: dict[int, tuple[str, str, str | None]] = field(default_factory=dict)


class PermanentFailure(Exception):
    def __init__(self, status: str, reply: str) -> None:
        super().__init__(reply)
        self.status = status
        self.reply = reply


class OutboundWorker:
    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        settings: Settings,
        offload: Offload,
        metrics: Metrics | None = None,
        *,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.resolver = resolver
        self.settings = settings
        self.offload = offload
        self.lease = settings.outbound.lease
        self.timeout = settings.outbound.timeout
        self.node = node or node_id(settings)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.outbound.concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._held: set[int] = set()  # queue ids claimed by deliveries running now
        # A claim failed, and may have been committed all the same (the database went away
        # before its answer came): rows this node may hold that no delivery works on.
        self._claims_unsure = False
        # Built once: a context per connection cost ~23 ms of CPU each (the CA store loaded
        # every time), half of what a delivery took.
        self._tls_options = _tls_options(settings.outbound)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailgate-outbound")

    def wake(self) -> None:
        """New mail was queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        # Deliveries in flight get a moment to finish; then they are interrupted, record what
        # they had decided, and the rest is given back for the next start (or another node).
        if self._running:
            _, pending = await asyncio.wait(self._running, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE)
        with contextlib.suppress(StoreError):
            await self.store.release_leases(self.node)

    async def _run(self) -> None:
        try:
            await self.store.release_leases(self.node)
        except StoreError as exc:
            log.warning("outbound: cannot release old claims: %s", exc)
        while True:
            self._wake.clear()
            try:
                if self._claims_unsure:
                    await self._release_unsure_claims()
                claimed = await self._claim()
            except StoreError as exc:
                log.warning("outbound: cannot read the queue: %s", exc)
                self.metrics.store_error(exc)
                self._claims_unsure = True
                claimed = False
            if not claimed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
                    # Woken by new mail: a burst submitted together is claimed together,
                    # so that one connection per destination carries all of it.
                    await asyncio.sleep(COALESCE)

    async def _release_unsure_claims(self) -> None:
        """Give back what a claim whose outcome never came may have taken: it would wait for
        its lease to run out (minutes) before anyone delivered it."""
        released = await self.store.release_leases(self.node, keep=self._held)
        self._claims_unsure = False
        if released:
            log.info("outbound: gave back %d claims of a claim whose outcome was lost", released)

    async def _claim(self) -> bool:
        """Claim what is due and start delivering it; True if there was anything."""
        if self._slots.locked():
            # Every slot is busy: claiming more would only hold leases while waiting.
            await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            return True
        items = await self.store.claim_outbound(self.node, self.lease, CLAIM_BATCH)
        if not items:
            return False
        smarthost = bool(self.settings.outbound.smarthost)
        groups: dict[str, list[QueuedRecipient]] = defaultdict(list)
        for item in items:
            groups["" if smarthost else item.domain].append(item)
        # Renewed from the start: waiting for a free slot counts against the lease too.
        keeper = asyncio.create_task(self._keep_claims([i.id for i in items]))
        batch = _Batch(items, len(groups), keeper)
        self._held.update(i.id for i in items)
        for destination, group in groups.items():
            task = asyncio.create_task(self._deliver(destination, group, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return True

    async def _deliver(self, destination: str, items: list[QueuedRecipient], batch: _Batch) -> None:
        outcome = Outcome()
        interrupted = False
        try:
            async with self._slots:
                try:
                    await self._attempt(destination, items, outcome)
                except Exception as exc:
                    where = destination or "the smarthost"
                    log.exception("outbound: delivery to %s failed unexpectedly", where)
                    self.metrics.store_error(exc)  # reading the message or the keys, maybe
                    outcome.defer_all(
                        [i for i in items if not _settled(i, outcome)], "internal error"
                    )
        except asyncio.CancelledError:
            # Stopping: what was decided is recorded below; stop() gives back the rest.
            interrupted = True
            raise
        finally:
            await self._record(items, outcome, batch)
            batch.open -= 1
            if interrupted or not batch.open:
                await self._bounce(batch)
            if not batch.open:
                batch.keeper.cancel()
                self._held.difference_update(i.id for i in batch.items)
        self.wake()

    async def _keep_claims(self, ids: list[int]) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.store.renew_outbound(self.node, ids, self.lease)
            except StoreError as exc:
                log.warning("outbound: cannot renew claims: %s", exc)
                self.metrics.store_error(exc)

    # ------------------------------------------------------------------ one attempt

    async def _attempt(
        self, destination: str, items: list[QueuedRecipient], outcome: Outcome
    ) -> None:
        try:
            hosts = await self._hosts(destination)
        except PermanentFailure as exc:
            outcome.fail_all(items, exc.status, exc.reply)
            return
        except TemporaryDNSError as exc:
            outcome.defer_all(items, f"DNS lookup failed for {destination}: {exc}")
            return
        last_error = "no mail server could be reached"
        for host in hosts:
            for address in host.addresses:
                try:
                    await self._send(host, address, items, outcome)
                    return
                except (OSError, aiosmtplib.SMTPException, TimeoutError) as exc:
                    last_error = f"{host.name} [{address}]: {_describe(exc)}"
                    log.info("outbound: %s", last_error)
                    # Recipients this connection already settled keep their outcome.
                    items = [i for i in items if not _settled(i, outcome)]
                    if not items:
                        return
        outcome.defer_all(items, last_error)

    async def _hosts(self, domain: str) -> list[Host]:
        out = self.settings.outbound
        if not domain:
            # Connected to by name, so that its certificate is checked against that name: a
            # CA check alone would take any certificate a public CA signed for anyone, and
            # hand the smarthost password to whoever presents one.
            host, _, port = out.smarthost.rpartition(":")
            return [Host(host, (host.strip("[]"),), int(port))]
        try:
            mx = await self.resolver.mx(domain)
        except NullMX:
            raise PermanentFailure("5.1.10", f"{domain} accepts no mail (null MX)") from None
        # RFC 5321 §5.1: hosts of equal preference are tried in random order (the sort is
        # stable), which spreads the load over them.
        random.shuffle(mx)
        mx.sort(key=lambda record: record[0])
        names = [name for _, name in mx] or [domain]  # RFC 5321 §5.1: implicit MX
        hosts: list[Host] = []
        for name in names[:MAX_HOSTS]:
            try:
                addresses = await self.resolver.addresses(name)
            except TemporaryDNSError:
                if mx:
                    continue  # the next MX may do
                raise
            if addresses:
                hosts.append(Host(name, tuple(addresses), out.mx_port))
        if not hosts:
            if not mx:
                raise PermanentFailure("5.1.2", f"{domain} has no mail server (no MX, A or AAAA)")
            raise TemporaryDNSError(f"no address for any MX host of {domain}")
        return hosts

    async def _sign(self, raw: bytes, domain: str) -> bytes:
        try:
            keys = (await self.store.get_domain(domain)).signing_keys
        except NotFound:
            keys = ()
        if not keys:
            log.warning("outbound: %s has no DKIM keys; sending unsigned", domain)
            return raw
        signing = [dkim.DKIMKey(k.selector, k.algorithm, k.private_key, k.public_key) for k in keys]
        # Hashing and RSA signing a message of up to 10 MB is CPU work: off the event loop.
        header = await self.offload.run_or_thread(len(raw), dkim.sign, raw, domain, signing)
        return header + raw

    async def _send(
        self,
        host: Host,
        address: str,
        items: list[QueuedRecipient],
        outcome: Outcome,
    ) -> None:
        out = self.settings.outbound
        client = aiosmtplib.SMTP(
            hostname=address,
            port=host.port,
            local_hostname=self.settings.server.hostname,
            timeout=self.timeout,
            **self._tls_options,
        )
        await client.connect()
        try:
            if out.smarthost and out.smarthost_username:
                await client.login(out.smarthost_username, out.smarthost_password)
            by_message: dict[int, list[QueuedRecipient]] = defaultdict(list)
            for item in items:
                by_message[item.blob_id].append(item)
            for blob_id, recipients in by_message.items():
                # One message in memory at a time, signed for this transaction.
                raw = fold_long_lines(await self.store.blob(blob_id))
                message = await self._sign(raw, domain_of(recipients[0].mail_from))
                await self._transaction(client, host, recipients, message, outcome)
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()

    async def _transaction(
        self,
        client: aiosmtplib.SMTP,
        host: Host,
        recipients: list[QueuedRecipient],
        message: bytes,
        outcome: Outcome,
    ) -> None:
        sender = recipients[0].mail_from
        # RFC 6531 §3.2: a message that needs SMTPUTF8 (a UTF-8 address, or UTF-8 header
        # fields it was submitted with SMTPUTF8 for) goes only to a next hop offering it: it is
        # never downgraded, and one that does not offer it will not start to on a retry.
        utf8_header = not split_header(message)[0].isascii()
        if client.supports_extension("smtputf8"):
            utf8 = any(_needs_smtputf8(i, utf8_header) or i.smtputf8 for i in recipients)
        else:
            utf8 = False
            refused = [i for i in recipients if _needs_smtputf8(i, utf8_header)]
            for item in refused:
                reply = f"{host.name} does not offer SMTPUTF8, which this message needs"
                outcome.failed[item.id] = ("5.6.7", reply, host.name)
            recipients = [i for i in recipients if i.id not in outcome.failed]
            if not recipients:
                return
        options = ["SMTPUTF8"] if utf8 else []
        encoding = "utf-8" if utf8 else "ascii"
        if client.supports_extension("size"):
            # RFC 1870: a remote that takes nothing this big says so now, not after the upload.
            options.append(f"SIZE={len(message)}")
        if client.supports_extension("8bitmime") and not message.isascii():
            options.append("BODY=8BITMIME")  # RFC 6152: 8-bit data is declared
        try:
            await client.mail(sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            _judge(recipients, exc.code, exc.message, host, outcome)
            await _reset(client)
            return
        accepted: list[QueuedRecipient] = []
        for item in recipients:
            try:
                await client.rcpt(item.recipient, encoding=encoding)
                accepted.append(item)
            except aiosmtplib.SMTPResponseException as exc:
                _judge([item], exc.code, exc.message, host, outcome)
        if not accepted:
            await _reset(client)
            return
        try:
            response = await client.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            _judge(accepted, exc.code, exc.message, host, outcome)
            return
        delivered = [item.id for item in accepted]
        outcome.delivered += delivered
        self.metrics.delivered_remote(len(delivered))
        # Recorded before the next message: a crash from here on never sends these again.
        await self._commit(delivered=delivered)
        outcome.recorded.update(delivered)
        for item in accepted:
            log.info(
                "outbound: %s -> %s via %s: %d %s",
                item.mail_from,
                item.recipient,
                host.name,
                response.code,
                response.message,
            )

    # ------------------------------------------------------------------ recording

    async def _record(self, items: list[QueuedRecipient], outcome: Outcome, batch: _Batch) -> None:
        """Commit what an attempt delivered and deferred; hand its failures to the batch."""
        now = int(time.time())
        out = self.settings.outbound
        failed = dict(outcome.failed)
        deferred: list[tuple[int, int, str]] = []
        for item in items:
            reply = outcome.deferred.get(item.id)
            if reply is None or item.id in failed or item.id in outcome.delivered:
                continue
            expires = item.created_at + out.max_queue_age
            if now >= expires:
                tries = item.attempts + 1
                failed[item.id] = ("4.4.7", f"gave up after {tries} attempts: {reply}", None)
                continue
            interval = out.retry_intervals[min(item.attempts, len(out.retry_intervals) - 1)]
            # The last try is made when the queue lifetime ends, not an interval after it.
            deferred.append((item.id, min(now + interval, expires), reply))
        await self._commit(
            delivered=[i for i in outcome.delivered if i not in outcome.recorded],
            deferred=deferred,
        )
        batch.failed.update(failed)
        if deferred:
            self.metrics.deferred(len(deferred))
            self._wake_at(min(when for _, when, _ in deferred))

    async def _bounce(self, batch: _Batch) -> None:
        """Take the batch's failed recipients off the queue, with their bounces."""
        if not batch.failed:
            return
        failed, batch.failed = batch.failed, {}
        items = [i for i in batch.items if i.id in failed]
        try:
            reports = await bounces(self.store, self.settings.server.hostname, items, failed)
        except StoreError as exc:
            # Left claimed: once the lease runs out they are tried, and fail, again.
            log.warning("outbound: cannot write bounces now: %s", exc)
            self.metrics.store_error(exc)
            return
        reasons = {queue_id: (status, text) for queue_id, (status, text, _) in failed.items()}
        await self._commit(failed=list(failed), bounces=reports, reasons=reasons)
        self.metrics.bounced(len(failed))

    async def _commit(
        self,
        *,
        delivered: Sequence[int] = (),
        deferred: Sequence[tuple[int, int, str]] = (),
        failed: Sequence[int] = (),
        bounces: Sequence[Parcel] = (),
        reasons: Mapping[int, tuple[str, str]] | None = None,
    ) -> None:
        if not (delivered or deferred or failed):
            return
        for attempt in range(60):
            try:
                await self.store.finish_outbound(
                    delivered=delivered,
                    deferred=deferred,
                    failed=failed,
                    bounces=bounces,
                    reasons=reasons,
                    owner=self.node,
                )
                return
            except StoreError as exc:
                # Keep trying: a recipient that got 250 but is not recorded would be sent
                # again once the lease ends.
                log.warning("outbound: cannot record the outcome (%s); retrying", exc)
                self.metrics.store_error(exc)
                await asyncio.sleep(min(2**attempt * 0.1, 10))
        log.error("outbound: gave up recording outcomes for %s", [*delivered, *failed])

    def _wake_at(self, when: int) -> None:
        """Retries due before the next poll are looked at when due (test-sized intervals)."""
        delay = when - time.time()
        if delay < POLL_INTERVAL:
            # +50 ms: due means next_attempt_at <= the whole second the claim runs in.
            asyncio.get_running_loop().call_later(max(delay, 0) + 0.05, self.wake)


async def bounces(
    store: Store,
    hostname: str,
    items: Sequence[QueuedRecipient],
    failed: Mapping[int, tuple[str, str, str | None]],
) -> list[Parcel]:
    """One DSN per failed message and sender inbox, for its INBOX (never for a bounce: bounces
    are only ever filed here, never queued). `failed`: id -> (status, diagnostic, host)."""
    groups: dict[tuple[int, int], list[QueuedRecipient]] = defaultdict(list)
    for item in items:
        if item.inbox_id is not None:
            groups[(item.blob_id, item.inbox_id)].append(item)
    parcels = []
    now = datetime.datetime.now(datetime.UTC)
    for (blob_id, inbox_id), group in groups.items():
        try:
            inbox_mailbox = await store.get_mailbox(inbox_id, INBOX)
            original = await store.blob(blob_id)
        except NotFound:
            continue  # the sender's inbox is gone: nobody to tell
        failures = [
            dsn.Failure(
                recipient=i.recipient,
                status=failed[i.id][0],
                diagnostic=failed[i.id][1],
                remote_mta=failed[i.id][2],
            )
            for i in group
        ]
        report = dsn.bounce(
            hostname=hostname,
            sender=group[0].mail_from,
            original=original,
            failures=failures,
            arrival=datetime.datetime.fromtimestamp(group[0].created_at, datetime.UTC),
            last_attempt=now,
            smtputf8=any(i.smtputf8 or not i.recipient.isascii() for i in group),
        )
        # A bounce reaches its sender even over quota: it says what became of their mail.
        parcels.append(Parcel(report, (Target(inbox_mailbox.id, quota=QuotaRule.EXEMPT),)))
    return parcels


async def cancel(store: Store, hostname: str, queue_id: int) -> QueuedRecipient:
    """Take a recipient off the queue for good, bouncing it to its sender; refused while a
    node is delivering it (it may be getting its 250 right now)."""
    item = await store.get_outbound(queue_id)
    failed = {item.id: ("5.0.0", "deleted from the queue by the administrator", None)}
    reports = await bounces(store, hostname, [item], failed)
    status, text, _ = failed[item.id]
    await store.remove_outbound(item.id, bounces=reports, reason=(status, text))
    return item


class _TLSOptions(TypedDict, total=False):
    use_tls: bool
    start_tls: bool | None
    tls_context: ssl.SSLContext


def _tls_options(out: OutboundSettings) -> _TLSOptions:
    """How connections use TLS: to MX hosts, opportunistic STARTTLS whenever offered (RFC 3207
    as MTAs use it), without certificate checks, since MX certificates are commonly not
    verifiable; to a smarthost, as configured, with its certificate checked."""
    if not out.smarthost:
        # A client context without the CA store: it would never be consulted.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return {"start_tls": None, "tls_context": context}
    if out.smarthost_tls == "none":
        return {"start_tls": False}
    try:
        context = ssl.create_default_context(cafile=out.smarthost_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"[outbound] smarthost_ca_file: cannot load {out.smarthost_ca_file}: {exc}"
        ) from None
    if out.smarthost_tls == "implicit":
        return {"use_tls": True, "tls_context": context}
    return {"start_tls": True, "tls_context": context}


def node_id(settings: Settings, worker: int | None = None) -> str:
    """Who claims queue rows: stable across restarts of a node, so that a node starting again
    takes back its own claims at once instead of waiting for their lease; distinct between
    nodes (host name and data directory; the path hashed, as a long one would not fit), and
    between the worker processes of one node ([server] workers), which would otherwise take
    back each other's claims as they start."""
    path = str(Path(settings.server.data_dir).resolve())
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    node = f"{socket.gethostname()[:50]}:{digest}"
    return node if worker is None else f"{node}/{worker}"


def fold_long_lines(raw: bytes, limit: int = 998) -> bytes:
    """Break lines longer than RFC 5322's 998 octets by inserting CRLF SP, as Postfix does
    (smtp_line_length_limit): submission accepts longer lines from scripts, but strict
    receivers refuse them. Done before signing, so the signature covers what is sent."""
    if len(raw) <= limit or not any(len(line) > limit for line in raw.split(b"\r\n")):
        return raw
    out = []
    for line in raw.split(b"\r\n"):
        while len(line) > limit:
            out.append(line[:limit])
            line = b" " + line[limit:]
        out.append(line)
    return b"\r\n".join(out)


def _judge(
    items: Sequence[QueuedRecipient], code: int, message: str, host: Host, outcome: Outcome
) -> None:
    reply = f"{code} {message}".strip()
    for item in items:
        if 500 <= code < 600:
            outcome.failed[item.id] = (_status(code, message), reply, host.name)
        else:
            outcome.deferred[item.id] = f"{host.name}: {reply}"


def _status(code: int, message: str) -> str:
    """The enhanced status code from a reply (RFC 3463), or one derived from its class."""
    first = message.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] == str(code)[0]:
        return first
    return f"{str(code)[0]}.0.0"


def _needs_smtputf8(item: QueuedRecipient, utf8_header: bool) -> bool:
    """A UTF-8 address cannot be sent without SMTPUTF8 (an IDN domain can: queued addresses
    hold A-labels); UTF-8 header fields need it when the client said they were UTF-8."""
    addresses_ascii = item.mail_from.isascii() and item.recipient.isascii()
    return not addresses_ascii or (utf8_header and item.smtputf8)


def _settled(item: QueuedRecipient, outcome: Outcome) -> bool:
    return item.id in outcome.delivered or item.id in outcome.failed


async def _reset(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
        await client.rset()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    # aiosmtplib wraps the socket's error in its own, with a long message around it.
    if isinstance(exc, ConnectionRefusedError) or isinstance(exc.__cause__, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
