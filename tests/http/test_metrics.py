"""GET /metrics: Prometheus text that parses, whose counters move as mail moves (real clients over
TLS: smtplib, imaplib, the agentmail SDK; a real SMTP peer for mail to the world), and which is
served to loopback clients and organization keys only, unless `[api] public_metrics` is set.

The harness binds 127.0.0.1 only, so a client on another machine is played through a
PROXY-protocol balancer (`[server] proxy_networks`): the header names its address.
"""

from __future__ import annotations

import imaplib
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.world import (
    REMOTE,
    attempted,
    drained,
    eventually,
    outbound_settings,
    point_mx,
    publish_domain,
)
from tests.harness import DOMAIN, Account, Server
from tests.http.metrics import Scrape, scrape, via_balancer
from tests.http.sdk import Api
from tests.smtppeer import SMTPPeer
from tests.transcript import Transcript

# Clients as the server sees them through the balancer: one on another machine, one on the
# node itself (a Prometheus or an agent beside it).
OUTSIDER = "203.0.113.7"
LOCAL = "127.0.0.1"

ACCEPTED = "mailgate_messages_accepted_total"
DELIVERED = "mailgate_messages_delivered_total"
LOGINS = "mailgate_logins_total"
COMMANDS = "mailgate_imap_command_duration_seconds"
TRANSACTIONS = "mailgate_smtp_transaction_duration_seconds"
SESSIONS = "mailgate_sessions"


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_metrics_parse_with_every_family_named(server: Server) -> None:
    metrics = scrape(server)
    assert {
        "mailgate_sessions",
        "mailgate_logins",
        "mailgate_messages_accepted",
        "mailgate_messages_delivered",
        "mailgate_messages_deferred",
        "mailgate_messages_bounced",
        "mailgate_outbound_queue_depth",
        "mailgate_outbound_queue_oldest_age_seconds",
        COMMANDS,
        TRANSACTIONS,
        "mailgate_store_errors",
        "mailgate_store_commits",
        "mailgate_store_committed_writes",
    } <= metrics.families
    # Known series are there from the start, at 0 if nothing happened yet.
    assert metrics.has("mailgate_store_errors_total", error="Unavailable")
    assert metrics.has(ACCEPTED, source="append")
    assert metrics.has(f"{COMMANDS}_count", command="other")
    # Counters and histograms come without `_created` series (noise for Prometheus).
    assert not any(name.endswith("_created") for name, _ in metrics.samples)


def test_submission_moves_accepted_delivered_logins_and_transaction_latency(
    server: Server, account: Account, other: Account
) -> None:
    before = scrape(server)
    with server.smtp_client(account) as smtp:
        message = make_message(account.address, other.address)
        smtp.sendmail(account.address, [other.address], message)
    after = scrape(server)
    assert delta(before, after, ACCEPTED, source="submission") == 1
    assert delta(before, after, DELIVERED, route="local") == 1  # other's INBOX (not the Sent copy)
    assert delta(before, after, LOGINS, protocol="smtp", result="ok") == 1
    assert delta(before, after, f"{TRANSACTIONS}_count", service="submission") == 1
    assert delta(before, after, f"{TRANSACTIONS}_sum", service="submission") > 0


def test_imap_logins_commands_and_append_move_their_counters(
    server: Server, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(imaplib.Commands, "FROBNICATE", ("AUTH",))  # imaplib sends only these
    before = scrape(server)
    client = server.imap_client()
    with pytest.raises(imaplib.IMAP4.error):
        client.login(account.address, "mgk_nope_wrongsecret")
    client.login(account.address, account.key)
    for _ in range(3):
        client.noop()
    client.append("INBOX", None, None, make_message(account.address, account.address))
    with pytest.raises(imaplib.IMAP4.error):  # BAD: unknown, so counted as "other"
        client._simple_command("FROBNICATE")
    client.logout()
    after = scrape(server)
    assert delta(before, after, LOGINS, protocol="imap", result="failed") == 1
    assert delta(before, after, LOGINS, protocol="imap", result="ok") == 1
    assert delta(before, after, f"{COMMANDS}_count", command="LOGIN") == 2
    assert delta(before, after, f"{COMMANDS}_count", command="NOOP") == 3
    assert delta(before, after, f"{COMMANDS}_count", command="other") == 1
    assert not after.has(f"{COMMANDS}_count", command="FROBNICATE")
    assert delta(before, after, f"{COMMANDS}_bucket", command="NOOP", le="+Inf") == 3
    assert delta(before, after, ACCEPTED, source="append") == 1


def test_idle_is_timed_until_it_idles(server: Server, account: Account) -> None:
    before = scrape(server)
    with Transcript.login(server, account) as session:
        session.ok("SELECT INBOX")
        tag = session.next_tag()
        session.send(f"{tag} IDLE\r\n")
        assert session.read_line().startswith(b"+")
        idling = scrape(server)  # while it idles: its time so far is counted once
        session.send("DONE\r\n")
        assert session.read_line().startswith(f"{tag} OK".encode())
    assert delta(before, idling, f"{COMMANDS}_count", command="IDLE") == 1
    assert delta(before, idling, f"{COMMANDS}_count", command="SELECT") == 1


def test_an_api_send_counts_as_accepted_from_the_api(
    server: Server, account: Account, other: Account, apis: Callable[[str], Api]
) -> None:
    before = scrape(server)
    api = apis(account.key)
    api.client.inboxes.messages.send(account.address, to=other.address, text="hello")
    after = scrape(server)
    assert delta(before, after, ACCEPTED, source="api") == 1
    assert delta(before, after, DELIVERED, route="local") == 1
    assert delta(before, after, LOGINS, protocol="api", result="ok") >= 1  # one per request


def test_sessions_gauge_follows_open_connections(make_server: Callable[..., Server]) -> None:
    server = make_server()
    account = server.account()
    assert scrape(server).value(SESSIONS, protocol="imap") == 0
    client = server.imap_client(account)
    smtp = server.smtp_client(account)
    metrics = scrape(server)
    assert metrics.value(SESSIONS, protocol="imap") == 1
    assert metrics.value(SESSIONS, protocol="smtp_submission") == 1
    assert metrics.value(SESSIONS, protocol="smtp_mx") == 0
    assert metrics.value(SESSIONS, protocol="http") >= 1  # this scrape's own connection
    client.logout()
    smtp.quit()
    eventually(
        lambda: scrape(server).value(SESSIONS, protocol="imap") == 0 or None,
        10,
        "the IMAP session to be gone",
    )


# -------------------------------------------------------------------- mail to the world


def test_outbound_counts_remote_deliveries_deferrals_bounces_and_the_queue(
    make_server: Callable[..., Server], zone: ZoneServer, peer: SMTPPeer
) -> None:
    point_mx(zone)
    # A retry far away, so the deferred recipient stays queued until the test says retry.
    server = make_server(**outbound_settings(zone, peer.port, retry_intervals=(600,)))
    account = server.account()
    publish_domain(zone, server, DOMAIN)
    bob, carol = f"bob@{REMOTE}", f"carol@{REMOTE}"
    peer.rcpt_by_address[carol] = "550 5.1.1 No such user"
    peer.data_replies.append("451 4.3.0 Try again later")
    queued_at = time.time()
    with server.smtp_client(account) as smtp:
        smtp.sendmail(account.address, [bob, carol], make_message(account.address, [bob, carol]))

    attempted(server)  # bob: DATA answered 451; carol: 550 at RCPT

    def bounced() -> Scrape | None:
        metrics = scrape(server)
        return metrics if metrics.value("mailgate_messages_bounced_total") == 1 else None

    metrics = eventually(bounced, 20, "carol's bounce to be counted")
    assert metrics.value("mailgate_messages_deferred_total") == 1
    assert metrics.value(DELIVERED, route="remote") == 0
    assert metrics.value("mailgate_outbound_queue_depth") == 1  # bob, waiting
    age = metrics.value("mailgate_outbound_queue_oldest_age_seconds")
    assert 0 <= age <= time.time() - queued_at + 1

    server.retry_outbound()
    drained(server)
    metrics = scrape(server)
    assert metrics.value(DELIVERED, route="remote") == 1
    assert metrics.value("mailgate_outbound_queue_depth") == 0
    assert metrics.value("mailgate_outbound_queue_oldest_age_seconds") == 0
    assert metrics.value("mailgate_messages_deferred_total") == 1
    assert metrics.value("mailgate_messages_bounced_total") == 1


# -------------------------------------------------------------------- who may read them


@pytest.fixture
def balanced(make_server: Callable[..., Server]) -> Server:
    """A server behind a PROXY-protocol balancer on 127.0.0.1."""
    return make_server(server={"proxy_networks": ("127.0.0.1/32",)})


def _refused(answer: Any) -> None:
    assert answer.status == 403
    body = answer.json()
    assert body["name"] == "ForbiddenError"
    assert "organization keys" in body["message"]


def test_metrics_are_refused_to_other_machines_without_an_organization_key(
    balanced: Server,
) -> None:
    account = balanced.account()
    _refused(via_balancer(balanced, "/metrics", OUTSIDER))
    _refused(via_balancer(balanced, "/metrics", OUTSIDER, key=account.key))  # an inbox key
    _refused(via_balancer(balanced, "/metrics", OUTSIDER, key=balanced.pod_key("default")))
    unknown = via_balancer(balanced, "/metrics", OUTSIDER, key="mgk_nope_wrongsecret")
    assert unknown.status == 401  # as everywhere in the API
    assert unknown.json()["name"] == "UnauthorizedError"


def test_metrics_are_served_to_organization_keys_and_loopback_clients(balanced: Server) -> None:
    answer = via_balancer(balanced, "/metrics", OUTSIDER, key=balanced.org_key())
    assert answer.status == 200
    assert answer.headers["cache-control"] == "no-store"
    assert b"mailgate_sessions" in answer.body
    assert via_balancer(balanced, "/metrics", LOCAL).status == 200


def test_health_needs_no_key_from_anywhere(balanced: Server) -> None:
    answer = via_balancer(balanced, "/healthz", OUTSIDER)
    assert answer.status == 200
    assert answer.json()["status"] == "ok"


def test_public_metrics_serves_everyone(make_server: Callable[..., Server]) -> None:
    server = make_server(server={"proxy_networks": ("127.0.0.1/32",)}, api={"public_metrics": True})
    answer = via_balancer(server, "/metrics", OUTSIDER)
    assert answer.status == 200
    assert b"mailgate_logins_total" in answer.body
