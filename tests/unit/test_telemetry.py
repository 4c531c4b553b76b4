"""mailgate.telemetry and the /metrics access rule, without sockets: what counts as a store
failure, who needs a key, one registry per node, and scrapes that never wait on a dead store."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily

from mailgate import telemetry
from mailgate.http import errors as http_errors
from mailgate.http.health import key_needed
from mailgate.store import errors
from mailgate.telemetry import Metrics, gauge_family
from tests.http.metrics import parse


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (errors.Unavailable("database unavailable (OSError)"), "Unavailable"),
        (errors.Conflict("too many concurrent changes"), "Conflict"),
        (errors.StoreError("internal store error (DatabaseError)"), "StoreError"),
        # Answers, not failures: a client asked for something that is not there.
        (errors.MailboxNotFound("no such mailbox"), None),
        (errors.InboxExists("taken"), None),
        (errors.AlreadySent("<id@x>", "fingerprint"), None),
        (errors.LimitExceeded("too many"), None),
        # Not the store's, whatever their names.
        (http_errors.Unavailable("the database is unavailable"), None),
        (TimeoutError(), None),
    ],
)
def test_store_failures_are_told_from_answers(error: BaseException, kind: str | None) -> None:
    assert telemetry.store_failure(error) == kind


@pytest.mark.parametrize(
    ("client", "needed"),
    [
        ("127.0.0.1", False),
        ("127.3.4.5", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("203.0.113.7", True),
        ("10.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("2001:db8::1", True),
        ("/run/mailgate.sock", True),  # not an address
        (None, True),
    ],
)
def test_metrics_need_a_key_unless_asked_from_this_machine(
    client: str | None, needed: bool
) -> None:
    assert key_needed(client, public=False) is needed
    assert key_needed(client, public=True) is False  # [api] public_metrics = true


def render(metrics: Metrics) -> str:
    return asyncio.run(metrics.render()).decode()


def test_each_node_counts_on_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.login("imap", telemetry.LOGIN_OK)
    one.accepted(telemetry.SOURCE_MX, local=2)
    one.store_error(errors.Unavailable("down"))
    first, second = parse(render(one)), parse(render(two))
    assert first.value("mailgate_logins_total", protocol="imap", result="ok") == 1
    assert first.value("mailgate_messages_delivered_total", route="local") == 2
    assert first.value("mailgate_store_errors_total", error="Unavailable") == 1
    assert second.value("mailgate_logins_total", protocol="imap", result="ok") == 0
    assert second.value("mailgate_store_errors_total", error="Unavailable") == 0


def test_unknown_imap_commands_share_one_series() -> None:
    metrics = Metrics()
    timers = metrics.command_timers(["NOOP", "FETCH"])
    assert set(timers) == {"NOOP", "FETCH", telemetry.OTHER}
    timers.get("FROBNICATE", timers[telemetry.OTHER]).observe(0.001)
    scrape = parse(render(metrics))
    assert scrape.value("mailgate_imap_command_duration_seconds_count", command="other") == 1
    assert not scrape.has("mailgate_imap_command_duration_seconds_count", command="FROBNICATE")


def test_a_read_that_fails_or_hangs_is_left_out_of_the_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry, "SCRAPE_TIMEOUT", 0.05)
    metrics = Metrics()

    async def backlog() -> list[GaugeMetricFamily]:
        family = gauge_family("mailgate_webhook_backlog", "Events waiting", labels=["endpoint"])
        family.add_metric(["hooks.example"], 3)
        return [family]

    async def broken() -> list[GaugeMetricFamily]:
        raise errors.Unavailable("database unavailable")

    async def hanging() -> list[GaugeMetricFamily]:
        await asyncio.sleep(3600)
        raise AssertionError("not reached")

    for read in (backlog, broken, hanging):
        metrics.on_scrape(read)
    websockets = metrics.gauge("mailgate_websocket_clients", "Websocket clients connected")
    websockets.set(2)
    metrics.count_sessions("websocket", lambda: 5)

    scrape = parse(render(metrics))
    assert scrape.value("mailgate_webhook_backlog", endpoint="hooks.example") == 3
    assert scrape.value("mailgate_websocket_clients") == 2
    assert scrape.value("mailgate_sessions", protocol="websocket") == 5
    assert "mailgate_logins" in scrape.families  # the rest is all there
    # What was read is for that scrape only: the registry keeps no stale copy.
    assert b"mailgate_webhook_backlog" not in generate_latest(metrics.registry)
