"""Metrics over the HTTP API, through the agentmail SDK: event counts and rates from the event
outbox, usage from what the store holds, at the organization, pod and inbox levels, each answer
checked against the SDK's own response types. Mail is sent for real (SMTP submission, the API,
and to a peer on loopback that refuses one recipient), and the counts must move exactly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from agentmail import ValidationError
from agentmail.core.api_error import ApiError
from agentmail.metrics import QueryMetricsResponse, QueryRatesResponse, QueryUsageResponse
from pydantic import TypeAdapter

from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.world import REMOTE, eventually, outbound_settings, point_mx, publish_domain
from tests.harness import DOMAIN, Account, Server
from tests.http.sdk import Api
from tests.smtppeer import SMTPPeer

EVENTS: Any = TypeAdapter(QueryMetricsResponse)
USAGE: Any = TypeAdapter(QueryUsageResponse)
RATES: Any = TypeAdapter(QueryRatesResponse)


def checked(api: Api, adapter: Any, result: Any) -> Any:
    """`result`, once the JSON it was made from has passed the SDK's response type."""
    assert api.last is not None
    adapter.validate_python(api.last.json())
    return result


def total(series: dict[str, Any], event_type: str) -> int:
    return sum(bucket.count for bucket in series[event_type])


def submit(server: Server, sender: Account, to: str, subject: str) -> None:
    with server.smtp_client(sender) as smtp:
        smtp.sendmail(sender.address, [to], make_message(sender.address, to, subject=subject))


@pytest.fixture
def pair(server: Server, org: Api, pod: str) -> tuple[Account, Account]:
    """Two inboxes of a fresh pod, each with a key of its own."""
    return server.account(pod=pod), server.account(pod=pod)


def test_sends_move_the_event_counts_exactly(
    server: Server, org: Api, pod: str, pair: tuple[Account, Account], apis: Callable[..., Api]
) -> None:
    sender, recipient = pair
    mine = apis(sender.key)
    before = mine.client.inboxes.metrics.query_events(sender.address)
    assert total(before, "message.sent") == 0
    submit(server, sender, recipient.address, "One")
    submit(server, sender, recipient.address, "Two")
    mine.client.inboxes.messages.send(
        sender.address, to=[recipient.address], subject="Three", text="hi"
    )

    # Each event is written with its change: counted as soon as the send is answered.
    got = checked(mine, EVENTS, mine.client.inboxes.metrics.query_events(sender.address))
    assert set(got) == {
        "message.received",
        "message.received.spam",
        "message.received.blocked",
        "message.received.unauthenticated",
        "message.sent",
        "message.delivered",
        "message.bounced",
        "message.complained",
        "message.rejected",
        "domain.verified",
    }
    # Without a period, each event is a bucket of its own.
    assert [b.count for b in got["message.sent"]] == [1, 1, 1]
    assert total(got, "message.delivered") == 3  # local recipients are delivered at once
    assert total(got, "message.received") == 0
    stamps = [b.timestamp for b in got["message.sent"]]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - datetime.now(UTC)) < timedelta(minutes=1)

    theirs = apis(recipient.key)
    got = theirs.client.inboxes.metrics.query_events(
        recipient.address, event_types=["message.received", "message.sent"]
    )
    assert set(got) == {"message.received", "message.sent"}
    assert (total(got, "message.received"), total(got, "message.sent")) == (3, 0)

    # The pod's counts are its inboxes' together; an inbox key sees its own at every level.
    got = checked(org, EVENTS, org.client.pods.metrics.query_events(pod))
    assert (total(got, "message.sent"), total(got, "message.received")) == (3, 3)
    for level in (
        theirs.client.metrics.query_events(),
        theirs.client.pods.metrics.query_events(pod),
    ):
        assert (total(level, "message.sent"), total(level, "message.received")) == (0, 3)
    pod_key = apis(server.pod_key(pod))
    got = pod_key.client.metrics.query_events(event_types=["message.sent"])
    assert total(got, "message.sent") == 3

    # Another inbox's key sees nothing of it: its inbox and pod are not there for it.
    # (The SDK declares no 404 for metrics: it raises its ApiError with the status.)
    stranger = apis(server.account().key)
    for call in (
        lambda: stranger.client.inboxes.metrics.query_events(sender.address),
        lambda: stranger.client.pods.metrics.query_usage(pod),
        lambda: stranger.client.inboxes.metrics.query_rates(recipient.address),
    ):
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.status_code == 404
        assert refused.value.body["name"] == "NotFoundError"
    assert total(stranger.client.metrics.query_events(), "message.sent") == 0


def test_periods_bucket_the_range_and_limit_and_descending_pick(
    org: Api, pair: tuple[Account, Account], apis: Callable[..., Api]
) -> None:
    sender, recipient = pair
    api = apis(sender.key)
    for subject in ("a", "b"):
        api.client.inboxes.messages.send(sender.address, to=[recipient.address], subject=subject)
    now = datetime.now(UTC)
    start = now - timedelta(hours=3)
    got = checked(
        api,
        EVENTS,
        api.client.inboxes.metrics.query_events(
            sender.address, event_types=["message.sent"], start=start, end=now, period=3600
        ),
    )
    buckets = got["message.sent"]
    # Every hour of the range, empty ones too, each stamped with its first second.
    assert len(buckets) == 3
    assert buckets[0].timestamp == start.replace(microsecond=0)
    assert [b.timestamp - buckets[0].timestamp for b in buckets] == [
        timedelta(hours=h) for h in range(3)
    ]
    assert [b.count for b in buckets] == [0, 0, 2]
    newest = api.client.inboxes.metrics.query_events(
        sender.address,
        event_types=["message.sent"],
        start=start,
        end=now,
        period=3600,
        descending=True,
        limit=1,
    )
    assert [(b.timestamp, b.count) for b in newest["message.sent"]] == [(buckets[-1].timestamp, 2)]
    one = api.client.inboxes.metrics.query_events(
        sender.address, event_types=["message.sent"], limit=1, descending=True
    )
    assert [b.count for b in one["message.sent"]] == [1]
    # An end in the future is now; a range before the sends counts none of them.
    ahead = api.client.inboxes.metrics.query_events(
        sender.address, event_types=["message.sent"], end=now + timedelta(days=1)
    )
    assert total(ahead, "message.sent") == 2
    earlier = api.client.inboxes.metrics.query_events(
        sender.address, event_types=["message.sent"], end=now - timedelta(hours=1)
    )
    assert total(earlier, "message.sent") == 0


def test_usage_ends_at_what_the_store_holds(
    server: Server, org: Api, pod: str, pair: tuple[Account, Account], apis: Callable[..., Api]
) -> None:
    sender, recipient = pair
    api = apis(sender.key)
    for subject in ("First", "Second"):
        submit(server, sender, recipient.address, subject)
    api.client.inboxes.messages.send(
        sender.address, to=[recipient.address], subject="Third", text="hi"
    )
    api.client.inboxes.drafts.create(sender.address, subject="Not yet", text="a draft")

    got = checked(api, USAGE, api.client.inboxes.metrics.query_usage(sender.address))
    # An inbox carries only these; what does not apply to it is left out.
    assert set(got) == {"storage_bytes", "message_count", "thread_count"}
    listed = api.client.inboxes.messages.list(sender.address).messages
    assert len(listed) == 3
    assert got["message_count"][-1].value == 3
    assert got["thread_count"][-1].value == 3
    # A draft is stored (storage) but is no message.
    sizes = sum(m.size for m in listed)
    assert got["storage_bytes"][-1].value > sizes
    # Hourly points over the last day, the last at the end (now), oldest first; the mail came
    # within the last hour, so only the last point holds it.
    points = got["message_count"]
    assert len(points) == 25
    assert [p.value for p in points[:-1]] == [0] * 24
    assert abs(points[-1].timestamp - datetime.now(UTC)) < timedelta(minutes=1)

    got = checked(org, USAGE, org.client.pods.metrics.query_usage(pod))
    assert set(got) == {
        "storage_bytes",
        "message_count",
        "thread_count",
        "inbox_count",
        "domain_count",
    }
    assert got["message_count"][-1].value == 6  # three sent, three received
    assert got["thread_count"][-1].value == 6
    assert got["inbox_count"][-1].value == 2
    assert got["domain_count"][-1].value == 1

    asked = org.client.inboxes.metrics.query_usage(
        recipient.address, usage_types=["message_count", "pod_count"], period=600, limit=2
    )
    assert set(asked) == {"message_count"}
    assert [p.value for p in asked["message_count"]] == [0, 0]  # the oldest two
    newest = org.client.inboxes.metrics.query_usage(
        recipient.address, usage_types=["message_count"], descending=True, limit=1
    )
    assert [p.value for p in newest["message_count"]] == [3]

    # What is deleted is in no point of the history: the series is what exists now.
    gone = api.client.inboxes.messages.list(sender.address, limit=1).messages[0]
    api.client.inboxes.messages.delete(sender.address, gone.message_id)
    after = api.client.inboxes.metrics.query_usage(sender.address, usage_types=["message_count"])
    assert after["message_count"][-1].value == 2


def test_organization_usage_and_events_on_a_server_of_its_own(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    first = server.account()
    second = server.account(pod="other")
    api = Api(server, server.org_key())
    try:
        api.client.inboxes.messages.send(first.address, to=[second.address], text="hello")
        got = checked(api, USAGE, api.client.metrics.query_usage(period=3600))
        latest = {kind: points[-1].value for kind, points in got.items()}
        assert latest == {
            "pod_count": 2,
            "inbox_count": 2,
            "domain_count": 1,
            "message_count": 2,
            "thread_count": 2,
            "storage_bytes": latest["storage_bytes"],
        }
        assert latest["storage_bytes"] > 0
        events = api.client.metrics.query_events(period=86400)
        assert {kind: total(events, kind) for kind in events if total(events, kind)} == {
            "message.sent": 1,
            "message.delivered": 1,
            "message.received": 1,
        }
        # The whole day is one bucket.
        assert len(events["message.sent"]) == 1
        rates = checked(api, RATES, api.client.metrics.query_rates())
        newest = rates["bounce"][-1]
        assert (newest.rate, newest.sent) == (0.0, 1)
        assert rates["complaint"][-1].rate == 0.0
        # Before any send, nothing was sent: no rate at all.
        assert rates["bounce"][0].rate is None
        assert rates["bounce"][0].sent == 0
    finally:
        api.close()


def test_a_bounce_makes_the_bounce_rate(
    make_server: Callable[..., Server], zone: ZoneServer, peer: SMTPPeer
) -> None:
    point_mx(zone)
    peer.rcpt_by_address[f"bob@{REMOTE}"] = "550 5.1.1 no such user"
    server = make_server(**outbound_settings(zone, peer.port))
    account = server.account()
    other = server.account()
    publish_domain(zone, server, DOMAIN)
    api = Api(server, account.key)
    try:
        api.client.inboxes.messages.send(
            account.address, to=[f"bob@{REMOTE}", f"carol@{REMOTE}"], subject="Anyone?"
        )

        def outcome() -> Any:
            got = api.client.inboxes.metrics.query_events(
                account.address, event_types=["message.bounced", "message.delivered"]
            )
            return (
                got if total(got, "message.bounced") and total(got, "message.delivered") else None
            )

        events = eventually(outcome, what="the bounce and the delivery")
        assert (total(events, "message.bounced"), total(events, "message.delivered")) == (1, 1)
        rates = checked(api, RATES, api.client.inboxes.metrics.query_rates(account.address))
        assert set(rates) == {"bounce", "complaint"}
        # One of the two recipients bounced; mailgate gets no complaints (no feedback loop).
        assert (rates["bounce"][-1].rate, rates["bounce"][-1].sent) == (0.5, 2)
        assert (rates["complaint"][-1].rate, rates["complaint"][-1].sent) == (0.0, 2)
        assert len(rates["bounce"]) == 25  # hourly over the last day
        assert all(p.rate is None and p.sent == 0 for p in rates["bounce"][:-1])
        # The window ends at each point: a window that ended before the send holds nothing.
        now = datetime.now(UTC)
        narrow = api.client.inboxes.metrics.query_rates(
            account.address,
            rate_types=["bounce"],
            start=now - timedelta(minutes=10),
            period=60,
            window=600,
        )
        assert set(narrow) == {"bounce"}
        assert len(narrow["bounce"]) == 11
        assert narrow["bounce"][0].sent == 0
        assert (narrow["bounce"][-1].rate, narrow["bounce"][-1].sent) == (0.5, 2)
        # The organization's rate is the same mail; another inbox sent nothing.
        org = Api(server, server.org_key())
        try:
            whole = org.client.metrics.query_rates(rate_types=["bounce"])
            assert (whole["bounce"][-1].rate, whole["bounce"][-1].sent) == (0.5, 2)
            quiet = org.client.inboxes.metrics.query_rates(other.address)
            assert quiet["bounce"][-1].rate is None
        finally:
            org.close()
    finally:
        api.close()


def test_bad_parameters_are_validation_errors(org: Api, pair: tuple[Account, Account]) -> None:
    sender, _ = pair
    metrics = org.client.inboxes.metrics
    now = datetime.now(UTC)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: metrics.query_events(sender.address, start=now - timedelta(days=91)), "start"),
        (lambda: metrics.query_usage(sender.address, end=now - timedelta(days=91)), "end"),
        # A day in minutes is 1440 buckets: over 1000.
        (lambda: metrics.query_events(sender.address, period=60), "period"),
        (lambda: metrics.query_usage(sender.address, period=60), "period"),
        # Range plus window: two days in 2-minute steps.
        (lambda: metrics.query_rates(sender.address, period=120), "period"),
        (lambda: metrics.query_rates(sender.address, period=600, window=900), "window"),
        (lambda: metrics.query_events(sender.address, event_types=["message.nope"]), "event_types"),
        (lambda: metrics.query_usage(sender.address, usage_types=["bytes"]), "usage_types"),
        (lambda: metrics.query_rates(sender.address, rate_types=["spam"]), "rate_types"),
        (lambda: metrics.query_events(sender.address, period=0), "period"),
        (lambda: metrics.query_events(sender.address, limit=0), "limit"),
        (
            lambda: metrics.query_events(
                sender.address, start=now - timedelta(hours=1), end=now - timedelta(hours=2)
            ),
            "start",
        ),
    ]
    for call, field in cases:
        with pytest.raises(ValidationError) as refused:
            call()
        assert refused.value.status_code == 400
        body = refused.value.body
        assert body.name == "ValidationError"
        assert [e["path"] for e in body.errors] == [[field]], body


def test_metrics_are_no_longer_501(org: Api) -> None:
    for path in ("/v0/metrics/events", "/v0/metrics/usage", "/v0/metrics/rates"):
        answer = org.raw("GET", path)
        assert answer.status_code == 200, answer.text
    # A list parameter repeated (other clients) reads as the SDK's JSON array does.
    answer = org.raw(
        "GET",
        "/v0/metrics/events",
        params=[("event_types", "message.sent"), ("event_types", "message.bounced")],
    )
    assert set(answer.json()) == {"message.sent", "message.bounced"}
    missing = org.raw("GET", "/v0/pods/no-such-pod/metrics/usage")
    assert missing.status_code == 404
