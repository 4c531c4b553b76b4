"""Paging through lists: `limit` and `page_token` in, `count`, `limit` and `next_page_token`
out; every item seen exactly once, and a page token that was edited, or made for another key
scope or another list, refused with a 400 naming `page_token`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from agentmail.core.api_error import ApiError
from agentmail.inboxes import ListInboxesResponse

from tests.harness import Server
from tests.http.sdk import Api


def _pages(api: Api, pod: str, **options: Any) -> list[ListInboxesResponse]:
    pages = []
    token = None
    while True:
        page = api.valid(
            ListInboxesResponse, api.client.pods.inboxes.list(pod, page_token=token, **options)
        )
        pages.append(page)
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) < 50, "paging does not end"


def _refused(call: Callable[[], object], field: str) -> None:
    with pytest.raises(ApiError) as refused:
        call()
    assert refused.value.status_code == 400
    assert refused.value.body["name"] == "ValidationError"
    assert [e["path"] for e in refused.value.body["errors"]] == [[field]]


def test_thirty_inboxes_seven_at_a_time(org: Api, pod: str) -> None:
    made = [org.client.pods.inboxes.create(pod).inbox_id for _ in range(30)]
    pages = _pages(org, pod, limit=7)
    assert [p.count for p in pages] == [7, 7, 7, 7, 2]
    assert all(p.limit == 7 for p in pages)
    seen = [i.inbox_id for p in pages for i in p.inboxes]
    assert seen == made[::-1]  # newest first, each exactly once
    oldest_first = [
        i.inbox_id for p in _pages(org, pod, limit=7, ascending=True) for i in p.inboxes
    ]
    assert oldest_first == made


def test_a_cursor_is_a_position_not_an_offset(org: Api, pod: str) -> None:
    made = [org.client.pods.inboxes.create(pod).inbox_id for _ in range(6)]
    first = org.client.pods.inboxes.list(pod, limit=3)
    # Changes between two pages shift nothing: a new inbox lands before the cursor, and a
    # deleted one is simply not there.
    org.client.pods.inboxes.create(pod)
    org.client.pods.inboxes.delete(pod, made[1])
    second = org.client.pods.inboxes.list(pod, limit=3, page_token=first.next_page_token)
    assert [i.inbox_id for i in first.inboxes] == made[:2:-1]
    assert [i.inbox_id for i in second.inboxes] == [made[2], made[0]]
    assert second.next_page_token is None


def test_edited_and_foreign_tokens_are_refused(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    for _ in range(3):
        org.client.pods.inboxes.create(pod)
    token = org.client.pods.inboxes.list(pod, limit=1).next_page_token
    assert token is not None
    data, _, mac = token.partition(".")
    flipped = data[:-1] + ("A" if data[-1] != "A" else "B")
    for edited in (f"{flipped}.{mac}", f"{data}.{mac[::-1]}", "garbage", f"{data}."):
        _refused(lambda t=edited: org.client.pods.inboxes.list(pod, page_token=t), "page_token")
    # Another list: the same pod in the other order, or the top-level list.
    _refused(
        lambda: org.client.pods.inboxes.list(pod, page_token=token, ascending=True), "page_token"
    )
    _refused(lambda: org.client.inboxes.list(page_token=token), "page_token")
    # Another scope: a pod key of the same pod may not use the organization key's token.
    pod_key = apis(server.pod_key(pod))
    _refused(lambda: pod_key.client.pods.inboxes.list(pod, page_token=token), "page_token")
    # The token still works for what it was made for.
    assert org.client.pods.inboxes.list(pod, limit=1, page_token=token).count == 1


def test_limit_is_one_to_a_hundred(org: Api, pod: str) -> None:
    for limit in (0, 101):
        _refused(lambda n=limit: org.client.pods.inboxes.list(pod, limit=n), "limit")
