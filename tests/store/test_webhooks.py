"""Webhook endpoints in the store: client_id idempotent per owner, filters merged in one
transaction, and the delivery state: a lease that one node holds at a time, a cursor only its
holder moves, failures counted until the endpoint is disabled, re-enabling from the newest event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.outbox import Pending
from mailgate.store.records import Inbox
from tests.store.conftest import run


def _create(store: Store, **given: Any) -> Any:
    values: dict[str, Any] = {
        "public_id": f"wh_{given.pop('n', 0)}",
        "pod_id": None,
        "inbox_id": None,
        "url": "https://hooks.example.com/in",
        "secret": "whsec_c2VjcmV0",
        "event_types": ["domain.verified"],
        "pod_ids": None,
        "inbox_ids": None,
        "headers": {},
    }
    values.update(given)
    return run(store.create_webhook(**values))


def _event(store: Store) -> int:
    run(store.record_events([Pending("domain.verified", detail={"domain": "example.test"})]))
    return run(store.last_event_seq())


def test_client_id_is_idempotent_per_owner(store: Store, inbox: Inbox) -> None:
    first = _create(store, n=1, client_id="same")
    assert _create(store, n=2, client_id="same").public_id == first.public_id
    other = _create(store, n=3, client_id="same", pod_id=inbox.pod_id, inbox_id=inbox.id)
    assert other.public_id != first.public_id
    assert (other.pod, other.inbox) == (inbox.pod, inbox.address)
    assert [h.public_id for h in run(store.list_webhooks(inbox_id=inbox.id))] == ["wh_3"]
    assert [h.public_id for h in run(store.list_webhooks(pod_id=inbox.pod_id))] == ["wh_3"]
    assert len(run(store.list_webhooks())) == 2


def test_a_new_endpoint_starts_after_the_newest_event(store: Store) -> None:
    seq = _event(store)
    hook = _create(store)
    assert hook.cursor == seq
    assert run(store.claim_webhooks("node-a", 60, 10)) == []  # nothing newer: not claimed
    _event(store)
    assert [h.public_id for h in run(store.claim_webhooks("node-a", 60, 10))] == [hook.public_id]


def test_one_node_holds_an_endpoint_and_only_it_moves_the_cursor(
    open_store: Callable[..., Store],
) -> None:
    a, b = open_store(), open_store()
    hook = _create(a)
    seq = _event(a)
    (claimed,) = run(a.claim_webhooks("node-a", 60, 10))
    assert claimed.lease_owner == "node-a"
    assert run(b.claim_webhooks("node-b", 60, 10)) == []
    assert run(b.advance_webhook(hook.id, "node-b", seq)) is False
    assert run(b.renew_webhook(hook.id, "node-b", 60)) is False
    assert run(a.renew_webhook(hook.id, "node-a", 60)) is True
    assert run(a.advance_webhook(hook.id, "node-a", seq)) is True
    assert run(a.get_webhook(hook.public_id)).cursor == seq
    run(a.release_webhook(hook.id, "node-a"))
    _event(a)
    (taken,) = run(b.claim_webhooks("node-b", 60, 10))
    assert taken.lease_owner == "node-b"
    assert run(b.release_webhook_leases("node-b")) == 1


def test_failures_count_until_the_endpoint_is_disabled(store: Store) -> None:
    hook = _create(store)
    _event(store)
    run(store.claim_webhooks("node-a", 60, 10))
    failed = run(
        store.webhook_failed(
            hook.id, "node-a", error="answered 500", retry_at=2**40, disable_after=3600
        )
    )
    assert failed is not None
    assert (failed.attempts, failed.enabled, failed.last_error) == (1, True, "answered 500")
    assert failed.failing_since is not None
    assert failed.lease_owner is None
    assert run(store.claim_webhooks("node-a", 60, 10)) == []  # not due yet
    # Not held any more: another failure report changes nothing.
    assert (
        run(store.webhook_failed(hook.id, "node-a", error="x", retry_at=0, disable_after=0)) is None
    )
    run(store.update_webhook(hook.public_id, enabled=False))
    run(store.update_webhook(hook.public_id, enabled=True))
    # Re-enabled: failures forgotten, due now, starting after the newest event.
    newest = _event(store)
    run(store.update_webhook(hook.public_id, enabled=False))
    again = run(store.update_webhook(hook.public_id, enabled=True))
    assert (again.attempts, again.failing_since, again.cursor) == (0, None, newest)
    _event(store)
    run(store.claim_webhooks("node-a", 60, 10))
    gone = run(
        store.webhook_failed(hook.id, "node-a", error="timeout", retry_at=0, disable_after=0)
    )
    assert gone is not None
    assert gone.enabled is False
    assert gone.disabled_reason is not None
    assert "timeout" in gone.disabled_reason
    assert run(store.claim_webhooks("node-a", 60, 10)) == []  # disabled: never claimed


def test_filters_merge_and_keep_at_least_one(store: Store) -> None:
    hook = _create(store, inbox_ids=["a@example.test"])
    merged = run(
        store.update_webhook(
            hook.public_id, add_inbox_ids=["b@example.test", "a@example.test"], add_pod_ids=["p"]
        )
    )
    assert (merged.inbox_ids, merged.pod_ids) == (("a@example.test", "b@example.test"), ("p",))
    merged = run(store.update_webhook(hook.public_id, remove_inbox_ids=["a@example.test"]))
    assert merged.inbox_ids == ("b@example.test",)
    with pytest.raises(errors.CannotModify):
        run(
            store.update_webhook(
                hook.public_id, remove_inbox_ids=["b@example.test"], remove_pod_ids=["p"]
            )
        )
    with pytest.raises(errors.LimitExceeded):
        run(store.update_webhook(hook.public_id, add_pod_ids=["q", "r"], max_filters=3))
    # Every event: adding to it changes nothing.
    everything = _create(store, n=9)
    assert (
        run(store.update_webhook(everything.public_id, add_inbox_ids=["a@example.test"])).inbox_ids
        is None
    )


def test_headers_are_set_and_removed_without_regard_to_case(store: Store) -> None:
    hook = _create(store, headers={"X-Token": "1", "X-Other": "2"})
    changed = run(
        store.update_webhook_headers(
            hook.public_id, set_headers={"x-token": "3"}, remove=["X-OTHER"]
        )
    )
    assert changed.headers == (("x-token", "3"),)
    with pytest.raises(errors.WebhookNotFound):
        run(store.update_webhook_headers("wh_none", set_headers={}, remove=[]))
    run(store.delete_webhook(hook.public_id))
    with pytest.raises(errors.WebhookNotFound):
        run(store.get_webhook(hook.public_id))
