"""Polling webhooks in the store: at most `limit` per owner even when two nodes create at once, a
repeated client_id re-issues the token, a consumer's place (its commit, its lease), a commit
past the newest event refused, and everything gone with the owning inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.outbox import Pending
from mailgate.store.records import Inbox, PollingWebhook
from tests.store.conftest import count, run


def _create(store: Store, **given: Any) -> tuple[PollingWebhook, bool]:
    values: dict[str, Any] = {
        "public_id": f"wh_{given.get('client_id', 'a')}",
        "pod_id": None,
        "inbox_id": None,
        "client_id": "a",
        "event_types": ["domain.verified"],
        "pod_ids": None,
        "inbox_ids": None,
        "token_hash": "0" * 64,
        "limit": 10,
    }
    values.update(given)
    return run(store.create_polling_webhook(**values))


def _event(store: Store) -> int:
    run(store.record_events([Pending("domain.verified", detail={"domain": "example.test"})]))
    return run(store.last_event_seq())


def test_a_repeated_client_id_reissues_the_token(store: Store) -> None:
    first, made = _create(store, token_hash="1" * 64)
    again, made_again = _create(store, public_id="wh_other", token_hash="2" * 64)
    assert (made, made_again) == (True, False)
    assert again.public_id == first.public_id
    assert (first.token_hash, again.token_hash) == ("1" * 64, "2" * 64)


def test_at_most_limit_per_owner_even_created_at_once(
    store: Store, open_store: Callable[..., Store], inbox: Inbox
) -> None:
    other = open_store()

    async def both() -> list[Any]:
        return await asyncio.gather(
            *(
                (store if i % 2 else other).create_polling_webhook(
                    public_id=f"wh_{i}",
                    pod_id=None,
                    inbox_id=None,
                    client_id=f"c{i}",
                    event_types=None,
                    pod_ids=None,
                    inbox_ids=None,
                    token_hash="0" * 64,
                    limit=3,
                )
                for i in range(6)
            ),
            return_exceptions=True,
        )

    results = run(both())
    assert sum(isinstance(r, tuple) for r in results) == 3
    assert all(isinstance(r, tuple | errors.LimitExceeded) for r in results), results
    # Another owner has room of its own.
    _create(store, client_id="c0", inbox_id=inbox.id, pod_id=inbox.pod_id, limit=3)


def test_a_consumers_place_its_commit_and_its_lease(store: Store) -> None:
    before = _event(store)
    hook, _ = _create(store)
    assert hook.start_seq == before
    first, second = _event(store), _event(store)

    place = run(store.polling_position(hook, "w", latest=False, now_ms=1000))
    assert (place.after, place.committed) == (before, before)
    # A lease: the next poll within it reads after what was given; after it, from the commit.
    run(store.lease_polling(hook, "w", through=second, until_ms=2000))
    assert run(store.polling_position(hook, "w", latest=False, now_ms=1999)).after == second
    assert run(store.polling_position(hook, "w", latest=False, now_ms=2000)).after == before
    assert run(store.commit_polling(hook, "w", first))
    assert run(store.polling_position(hook, "w", latest=False, now_ms=3000)).after == first
    # No further than the newest event; never before the webhook's start.
    assert not run(store.commit_polling(hook, "w", second + 1))
    assert run(store.commit_polling(hook, "w", 0))
    assert run(store.polling_position(hook, "w", latest=False, now_ms=3000)).after == before
    # Each consumer has its own place; "latest" starts after the newest event.
    assert run(store.polling_position(hook, "new", latest=True, now_ms=0)).after == second


def test_deleting_the_owner_deletes_its_polling_webhooks(store: Store, inbox: Inbox) -> None:
    hook, _ = _create(store, inbox_id=inbox.id, pod_id=inbox.pod_id)
    run(store.polling_position(hook, "w", latest=False, now_ms=0))
    assert (count(store, "polling_webhooks"), count(store, "polling_consumers")) == (1, 1)
    run(store.delete_inbox(inbox.address))
    assert (count(store, "polling_webhooks"), count(store, "polling_consumers")) == (0, 0)
    with pytest.raises(errors.PollingWebhookNotFound):
        run(store.get_polling_webhook(hook.public_id))
