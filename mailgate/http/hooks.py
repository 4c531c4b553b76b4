"""The webhook delivery worker: POSTs each endpoint the events of the outbox it wants, in order,
signed as Svix signs them, until the endpoint answers 2xx.

    an event commits (EventsRecorded on the bus, NOTIFY from other nodes)  ->  claim the enabled
    endpoints that are due and behind the outbox (a lease: one node at a time per endpoint)  ->
    per endpoint, in a task of its own: the next event after its cursor that its owner and
    filters take  ->  payload as the SDK reads it  ->  resolve its host, check every address,
    connect to the one checked  ->  POST, signed  ->  2xx: cursor moves (committed), next event
    at once | anything else: attempts + 1, retried on Svix's schedule; disabled after
    `[api] webhook_disable_after` seconds of failing

The cursor moves only after the 2xx, so a crash between the two sends that event again, with the
same `svix-id` (at least once); a clean stop lets deliveries in flight finish and commit first,
so a restart sends nothing twice. A redirect is a failure (never followed: it could point
anywhere). Each endpoint is delivered in its own task with its own connections (kept between
deliveries), at most `CONCURRENCY` at a time, so a slow endpoint delays only itself; the
response body is read up to 64 KiB and thrown away.

Signing (Svix's scheme, which `svix.webhooks.Webhook(secret).verify` checks): `svix-id` is the
event's id, the same for every attempt; `svix-timestamp` the Unix time of the attempt;
`svix-signature` is `v1,` and the base64 of HMAC-SHA256 under the secret's bytes (the base64
after `whsec_`) of "{svix-id}.{svix-timestamp}.{body}".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import math
import ssl
import time
from typing import Any

import httpx

from mailgate import __version__
from mailgate.background import stop_task
from mailgate.delivery.dns import TemporaryDNSError
from mailgate.http import destinations
from mailgate.http.context import Services
from mailgate.http.events import matches, rendered
from mailgate.store.errors import NotFound, StoreError
from mailgate.store.events import Change, EventsRecorded, Subscription
from mailgate.store.records import OutboxEvent, Webhook

log = logging.getLogger(__name__)

CONCURRENCY = 50  # endpoints delivered to at once by one node
POLL_INTERVAL = 5.0  # for retries and leases of other nodes; new events wake the worker at once
BATCH = 100  # events read at a time
MAX_BODY = 65536  # bytes of an endpoint's answer read (then thrown away)
STOP_GRACE = 5.0  # seconds a stopping worker lets deliveries in flight finish
KEPT_CLIENTS = 2 * CONCURRENCY  # endpoints whose connections are kept between deliveries


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The `svix-signature` header's value."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def wanted(hook: Webhook, event: OutboxEvent) -> bool:
    """Whether the endpoint gets the event: its owner sees it (the organization every event, a
    pod its inboxes', an inbox its own) and its filters take it."""
    if hook.inbox is not None:
        if event.inbox != hook.inbox:
            return False
    elif hook.pod is not None and event.pod != hook.pod:
        return False
    return matches(
        event,
        None if hook.event_types is None else frozenset(hook.event_types),
        None if hook.inbox_ids is None else frozenset(hook.inbox_ids),
        None if hook.pod_ids is None else frozenset(hook.pod_ids),
    )


def _filters(hook: Webhook) -> dict[str, Any]:
    """What the store can filter on: the endpoint's lists, else its owner."""
    inboxes, pods = hook.inbox_ids, hook.pod_ids
    if inboxes is None and pods is None:
        if hook.inbox is not None:
            inboxes = (hook.inbox,)
        elif hook.pod is not None:
            pods = (hook.pod,)
    return {"inboxes": inboxes, "pods": pods, "event_types": hook.event_types}


class LeaseLost(Exception):
    """The endpoint is not this node's to deliver any more: disabled or deleted over the API,
    or taken over by another node (this one stalled past its lease)."""


class WebhookWorker:
    def __init__(self, services: Services, node: str) -> None:
        settings = services.settings.api
        self.services = services
        self.store = services.store
        self.node = node
        self.intervals = settings.webhook_retry_intervals
        self.disable_after = settings.webhook_disable_after
        self.timeout = settings.webhook_timeout
        self.allow_private = settings.allow_private_webhooks
        # Long enough for a few attempts in a row; renewed well before it runs out.
        self.lease = max(60, math.ceil(4 * self.timeout))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[int, asyncio.Task[bool]] = {}
        self._subscription: Subscription | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._stopping = False
        # Whether any endpoint was enabled when last looked (at most POLL_INTERVAL ago, or
        # when one was made or enabled over this node's API): with none, a commit's events
        # wake nobody, and mail pays nothing for webhooks.
        self._any: bool | None = None
        metrics = services.metrics
        self._sent = metrics.counter(
            "mailgate_webhook_deliveries_total", "Events delivered to webhooks (answered 2xx)"
        )
        self._failures = metrics.counter(
            "mailgate_webhook_failures_total",
            "Webhook deliveries that failed (not 2xx, timed out, refused), per endpoint",
            ["webhook"],
        )
        # Each endpoint's HTTP client (its URL, the client), least recently used first.
        self._clients: dict[int, tuple[str, httpx.AsyncClient]] = {}
        self._closing: set[asyncio.Future[None]] = set()
        # One TLS context for every connection, made at the first: building one loads the CA
        # store (time and memory), which a server without webhooks never needs.
        self._tls: ssl.SSLContext | None = None

    def start(self) -> None:
        self._subscription = self.store.bus.subscribe_outbox(self._heard)
        self._task = asyncio.create_task(self._run(), name="mailgate-webhooks")

    def _heard(self, change: Change) -> None:
        if self._any is False and isinstance(change, EventsRecorded):
            return  # no endpoint to deliver to (an endpoint made elsewhere: the next poll)
        self._wake.set()  # look at the store

    def webhooks_changed(self) -> None:
        """An endpoint was made or changed over the API: look again now."""
        self._any = None
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        await stop_task(self._task)
        self._task = None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        # Deliveries in flight finish and commit (so a restart sends none of them again); one
        # still waiting for its endpoint then is cut, and sent again after the restart.
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE)
        with contextlib.suppress(StoreError):
            await self.store.release_webhook_leases(self.node)
        for webhook_id in list(self._clients):
            self._forget_client(webhook_id)
        if self._closing:
            await asyncio.wait(self._closing, timeout=STOP_GRACE)

    async def _run(self) -> None:
        try:
            await self.store.release_webhook_leases(self.node)
        except StoreError as exc:
            log.warning("webhooks: cannot release old claims: %s", exc)
        while True:
            self._wake.clear()
            try:
                self._any = await self.store.any_enabled_webhook()
                if self._any:
                    await self._claim()
            except StoreError as exc:
                log.warning("webhooks: cannot read the endpoints: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)

    async def _claim(self) -> None:
        free = CONCURRENCY - len(self._running)
        if free <= 0:
            return  # an endpoint that finishes wakes the worker
        for hook in await self.store.claim_webhooks(self.node, self.lease, free):
            if hook.id in self._running:  # cannot be: it held the lease until it ended
                continue
            task = asyncio.create_task(self._serve(hook), name=f"mailgate-webhook-{hook.id}")
            self._running[hook.id] = task
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[bool]) -> None:
        self._running = {k: t for k, t in self._running.items() if t is not task}
        # Events that came while it held its lease could not be claimed: look again (unless
        # the store failed it: then at the next poll, not in a busy loop).
        if (
            not self._stopping
            and not task.cancelled()
            and task.exception() is None
            and task.result()
        ):
            self._wake.set()

    async def _serve(self, hook: Webhook) -> bool:
        """Deliver the endpoint's events in order until none are left, one fails, or the
        worker stops; then give the endpoint back. False if the store failed."""
        release = True
        client = self._client_for(hook)
        try:
            release = await self._deliver_all(hook, client)
            if not release:
                self._forget_client(hook.id)  # it failed: maybe its connection did
        except LeaseLost:
            release = False
            self._forget_client(hook.id)
            log.info("webhooks: %s disabled, deleted or taken over meanwhile", hook.public_id)
        except StoreError as exc:
            log.warning("webhooks: %s: the store failed: %s", hook.public_id, exc)
            return False
        except Exception:
            self._forget_client(hook.id)
            log.exception("webhooks: delivering to %s failed unexpectedly", hook.public_id)
            return False
        finally:
            if release:
                with contextlib.suppress(StoreError):
                    await self.store.release_webhook(hook.id, self.node)
        return True

    async def _deliver_all(self, hook: Webhook, client: httpx.AsyncClient) -> bool:
        """Returns whether the endpoint is still held (a failure gives it back itself)."""
        loop = asyncio.get_running_loop()
        cursor, attempts = hook.cursor, hook.attempts
        renewed = loop.time()
        while not self._stopping:
            batch = await self.store.events_after(cursor, limit=BATCH, **_filters(hook))
            if not batch:
                # Done. Events beyond the cursor that it does not want are done with too, or it
                # would be claimed again for them. Every event up to `newest` has committed
                # (seq order is commit order): looking once more after reading it tells
                # whether any of them is for it.
                newest = await self.store.last_event_seq()
                if newest > cursor:
                    if await self.store.events_after(cursor, limit=1, **_filters(hook)):
                        continue
                    await self._advance(hook, newest)
                return True
            for event in batch:
                if self._stopping:
                    break
                if not wanted(hook, event):
                    continue
                if loop.time() - renewed > self.lease / 3:
                    if not await self.store.renew_webhook(hook.id, self.node, self.lease):
                        raise LeaseLost
                    renewed = loop.time()
                try:
                    error = await self._post(hook, event, client)
                except StoreError:
                    raise
                except Exception:
                    # A bug, for this event: retried on the schedule, not in a busy loop.
                    log.exception("webhooks: %s: %s failed", hook.public_id, event.event_id)
                    error = "internal error"
                if error is not None:
                    self._failures.labels(hook.public_id).inc()
                    await self._failed(hook, attempts, error)
                    return False
                self._sent.inc()
                await self._advance(hook, event.seq)
                cursor, attempts = event.seq, 0
            else:
                if batch[-1].seq > cursor:
                    await self._advance(hook, batch[-1].seq)
                cursor = batch[-1].seq
                if len(batch) == BATCH:
                    # A backlog: its URL, filters or headers may have been changed over the API
                    # meanwhile (a short run sees them at its next claim).
                    hook = await self._current(hook)
        return True

    async def _current(self, hook: Webhook) -> Webhook:
        """The endpoint as it is now (its URL, filters and headers may have been changed over
        the API), if this node still holds it."""
        try:
            now = await self.store.get_webhook(hook.public_id)
        except NotFound:
            raise LeaseLost from None
        if not now.enabled or now.lease_owner != self.node:
            raise LeaseLost
        return now

    async def _advance(self, hook: Webhook, seq: int) -> None:
        if not await self.store.advance_webhook(hook.id, self.node, seq):
            raise LeaseLost

    async def _failed(self, hook: Webhook, attempts: int, error: str) -> None:
        delay = self.intervals[min(attempts, len(self.intervals) - 1)]
        retry_at = math.ceil(time.time() + delay)
        log.info("webhooks: %s: %s (attempt %d)", hook.public_id, error, attempts + 1)
        now = await self.store.webhook_failed(
            hook.id, self.node, error=error, retry_at=retry_at, disable_after=self.disable_after
        )
        if now is None:
            raise LeaseLost
        if not now.enabled:
            log.warning("webhooks: %s disabled: %s", hook.public_id, now.disabled_reason)
            return
        # This node tries again on time (others see it at their next poll).
        loop = asyncio.get_running_loop()
        timer = loop.call_at(loop.time() + max(0.0, retry_at - time.time()) + 0.01, self._retry)
        self._timers.add(timer)

    def _retry(self) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {t for t in self._timers if t.when() > now}
        self._wake.set()

    def _client_for(self, hook: Webhook) -> httpx.AsyncClient:
        """The endpoint's client, kept from one claim to the next so that its connection is
        too (mail that comes one message at a time would otherwise cost a TCP and TLS
        handshake per event); a new one when its URL changed."""
        kept = self._clients.pop(hook.id, None)
        if kept is not None and kept[0] != hook.url:
            self._close(kept[1])
            kept = None
        client = kept[1] if kept is not None else self._client()
        self._clients[hook.id] = (hook.url, client)  # now the most recently used
        while len(self._clients) > KEPT_CLIENTS:
            self._close(self._clients.pop(next(iter(self._clients)))[1])
        return client

    def _forget_client(self, webhook_id: int) -> None:
        kept = self._clients.pop(webhook_id, None)
        if kept is not None:
            self._close(kept[1])

    def _close(self, client: httpx.AsyncClient) -> None:
        closing = asyncio.ensure_future(client.aclose())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _client(self) -> httpx.AsyncClient:
        """Connections of one endpoint only: they were made for its host name (its TLS name
        was checked), which another endpoint at the same address must not reuse."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return httpx.AsyncClient(
            verify=self._tls,
            follow_redirects=False,
            timeout=self.timeout,
            trust_env=False,  # no proxy from the environment: it would bypass the check
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def _post(
        self, hook: Webhook, event: OutboxEvent, client: httpx.AsyncClient
    ) -> str | None:
        """One attempt; None when it was answered 2xx, else what went wrong."""
        body = (await rendered(self.services, event)).encode()
        try:
            destination = destinations.parse(hook.url)
            found = await destinations.addresses(
                destination, self.services.resolver, self.allow_private
            )
        except (ValueError, destinations.Refused, destinations.Unreachable) as exc:
            return f"refused: {exc}" if isinstance(exc, destinations.Refused) else str(exc)
        except TemporaryDNSError as exc:
            return f"DNS: {exc}"
        stamp = str(int(time.time()))
        headers = {
            **dict(hook.headers),
            "host": destination.netloc,
            "user-agent": f"mailgate/{__version__}",
            "content-type": "application/json",
            "svix-id": event.event_id,
            "svix-timestamp": stamp,
            "svix-signature": sign(hook.secret, event.event_id, stamp, body),
        }
        extensions: dict[str, Any] = {}
        if destination.scheme == "https" and not destination.literal:
            extensions["sni_hostname"] = destination.host
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream(
                    "POST",
                    destinations.pinned(destination, found[0]),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_BODY:
                            break
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"answered {status} (redirects are not followed)"
        return f"answered {status}"
