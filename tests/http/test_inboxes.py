"""Inboxes over the HTTP API, driven by the agentmail SDK: create, get, list, search, update and
delete, at the top level and under a pod; every answer checked against the SDK's own model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from agentmail import NotFoundError, ValidationError
from agentmail.core.api_error import ApiError
from agentmail.inboxes import (
    CreateInboxRequest,
    Inbox,
    ListInboxesResponse,
    SearchInboxesResponse,
)

from tests.harness import DOMAIN, Server
from tests.http.sdk import NO_RETRIES, Api, username


def _paths(error: ApiError) -> list[list[object]]:
    return [e["path"] for e in error.body.errors]


def test_create_get_update_delete_in_a_pod(org: Api, pod: str) -> None:
    name = username()
    inboxes = org.client.pods.inboxes
    created = org.valid(
        Inbox,
        inboxes.create(pod, username=name, domain=DOMAIN, display_name="Support Agent"),
    )
    address = f"{name}@{DOMAIN}"
    assert (created.inbox_id, created.email, created.pod_id) == (address, address, pod)
    assert created.display_name == "Support Agent"
    assert created.created_at.tzinfo is not None
    assert created.updated_at >= created.created_at

    got = org.valid(Inbox, inboxes.get(pod, address))
    assert got.inbox_id == address
    # The top level sees it too (an organization key sees every pod).
    assert org.valid(Inbox, org.client.inboxes.get(address)).pod_id == pod

    updated = org.valid(Inbox, inboxes.update(pod, address, display_name="Renamed"))
    assert updated.display_name == "Renamed"

    inboxes.delete(pod, address)
    with pytest.raises(NotFoundError) as missing:
        inboxes.get(pod, address)
    assert missing.value.body.name == "NotFoundError"
    assert address in missing.value.body.message


def test_create_at_the_top_level_with_nothing_given(server: Server, org: Api) -> None:
    created = org.valid(Inbox, org.client.inboxes.create())
    # A random user name, at the hostname's parent domain (mail.example.test -> example.test),
    # in the default pod.
    assert created.email.endswith(f"@{DOMAIN}")
    assert created.pod_id == "default"
    assert created.inbox_id in {i.address for i in server.call(server.store.list_inboxes())}


def test_client_id_makes_create_idempotent(org: Api, pod: str) -> None:
    first = org.valid(Inbox, org.client.pods.inboxes.create(pod, client_id="agent-7"))
    again = org.valid(
        Inbox, org.client.pods.inboxes.create(pod, client_id="agent-7", username=username())
    )
    assert again.inbox_id == first.inbox_id
    assert again.client_id == "agent-7"
    listed = org.client.pods.inboxes.list(pod)
    assert [i.inbox_id for i in listed.inboxes] == [first.inbox_id]


def test_an_address_taken_is_a_conflict(org: Api, pod: str) -> None:
    name = username()
    org.client.pods.inboxes.create(pod, username=name, domain=DOMAIN)
    with pytest.raises(ApiError) as taken:
        org.client.inboxes.create(
            request=CreateInboxRequest(username=name, domain=DOMAIN), request_options=NO_RETRIES
        )
    assert taken.value.status_code == 409
    assert taken.value.body["name"] == "ConflictError"


def test_bad_fields_are_validation_errors_naming_them(org: Api, pod: str) -> None:
    create = org.client.pods.inboxes.create
    with pytest.raises(ValidationError) as bad_name:
        create(pod, username="not valid", domain=DOMAIN)
    assert _paths(bad_name.value) == [["username"]]
    with pytest.raises(ValidationError) as foreign:
        create(pod, username=username(), domain="elsewhere.test")
    assert _paths(foreign.value) == [["domain"]]
    assert "hosts" in foreign.value.body.errors[0]["message"]
    with pytest.raises(ValidationError) as long_name:
        create(pod, display_name="x" * 300)
    assert _paths(long_name.value) == [["display_name"]]
    with pytest.raises(ValidationError) as nested:
        create(pod, metadata={"a": {"b": 1}})  # type: ignore[dict-item]
    assert ["metadata", "a"] in [p[:2] for p in _paths(nested.value)]
    # The request as a whole: no JSON object at all.
    raw = org.raw("POST", f"/v0/pods/{pod}/inboxes", json=["a list"])
    assert raw.status_code == 400
    assert raw.json()["name"] == "ValidationError"


def test_metadata_is_kept_and_merged(org: Api, pod: str) -> None:
    inboxes = org.client.pods.inboxes
    created = org.valid(
        Inbox,
        inboxes.create(pod, metadata={"team": "sales", "tier": 2, "vip": True, "score": 0.5}),
    )
    assert created.metadata == {"team": "sales", "tier": 2, "vip": True, "score": 0.5}
    merged = org.valid(
        Inbox, inboxes.update(pod, created.inbox_id, metadata={"tier": 3, "vip": None})
    )
    assert merged.metadata == {"team": "sales", "tier": 3, "score": 0.5}
    # Other fields are left alone by an update that does not name them.
    assert merged.display_name == created.display_name
    with pytest.raises(ValidationError) as empty:
        org.client.inboxes.update(created.inbox_id, metadata={})
    assert _paths(empty.value) == [["metadata"]]
    cleared = org.valid(Inbox, inboxes.update(pod, created.inbox_id, metadata=None))
    assert cleared.metadata is None
    with pytest.raises(ValidationError) as nothing:
        org.client.inboxes.update(created.inbox_id)
    assert _paths(nothing.value) == [[]]


def test_display_name_null_clears_it(org: Api, pod: str) -> None:
    created = org.client.pods.inboxes.create(pod, display_name="Temp")
    cleared = org.valid(Inbox, org.client.inboxes.update(created.inbox_id, display_name=None))
    assert cleared.display_name is None


def test_pausing_is_not_implemented(org: Api, pod: str) -> None:
    created = org.client.pods.inboxes.create(pod)
    for attempt in (
        lambda: org.client.inboxes.update(
            created.inbox_id, status="paused", request_options=NO_RETRIES
        ),
        lambda: org.client.pods.inboxes.create(pod, status="paused", request_options=NO_RETRIES),
    ):
        with pytest.raises(ApiError) as paused:
            attempt()
        assert paused.value.status_code == 501
        assert "paused" in paused.value.body["message"]
    # "active" is what every inbox is.
    assert org.valid(Inbox, org.client.inboxes.update(created.inbox_id, status="active"))


def test_list_is_newest_first(org: Api, pod: str) -> None:
    made = [org.client.pods.inboxes.create(pod).inbox_id for _ in range(3)]
    listed = org.valid(ListInboxesResponse, org.client.pods.inboxes.list(pod))
    assert listed.count == 3
    assert listed.next_page_token is None
    assert [i.inbox_id for i in listed.inboxes] == made[::-1]
    oldest_first = org.valid(ListInboxesResponse, org.client.pods.inboxes.list(pod, ascending=True))
    assert [i.inbox_id for i in oldest_first.inboxes] == made


def test_search_matches_word_prefixes(org: Api, pod: str) -> None:
    tag = username().replace("-", "")
    inboxes = org.client.pods.inboxes
    support = inboxes.create(pod, username=f"support{tag}", domain=DOMAIN)
    sales = inboxes.create(pod, username=f"sales{tag}", domain=DOMAIN, display_name="Deal Desk")
    found = org.valid(SearchInboxesResponse, inboxes.search(pod, q="sup"))
    assert [i.inbox_id for i in found.inboxes] == [support.inbox_id]
    # Words match from their start only.
    assert org.valid(SearchInboxesResponse, inboxes.search(pod, q="port")).inboxes == []
    by_name = org.valid(SearchInboxesResponse, inboxes.search(pod, q="deal"))
    assert [i.inbox_id for i in by_name.inboxes] == [sales.inbox_id]
    exact = org.valid(SearchInboxesResponse, org.client.inboxes.search(q=sales.inbox_id))
    assert exact.inboxes[0].inbox_id == sales.inbox_id
    with pytest.raises(ValidationError) as short:
        inboxes.search(pod, q="s")
    assert _paths(short.value) == [["q"]]


def test_a_missing_inbox_is_not_found(org: Api, pod: str) -> None:
    for call in (
        lambda: org.client.inboxes.get(f"nobody-{username()}@{DOMAIN}"),
        lambda: org.client.inboxes.delete(f"nobody-{username()}@{DOMAIN}"),
        lambda: org.client.inboxes.update("not an address", display_name="x"),
        lambda: org.client.pods.inboxes.list(f"no-such-pod-{username()}"),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_an_inbox_of_another_pod_is_not_found_under_this_pod(org: Api, pod: str) -> None:
    elsewhere = org.client.inboxes.create()  # the default pod
    with pytest.raises(NotFoundError):
        org.client.pods.inboxes.get(pod, elsewhere.inbox_id)
    with pytest.raises(NotFoundError):
        org.client.pods.inboxes.update(pod, elsewhere.inbox_id, display_name="x")


def test_pod_key_sees_only_its_pod(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    other = org.client.inboxes.create()  # in the default pod
    mine = apis(server.pod_key(pod))
    created = mine.valid(Inbox, mine.client.inboxes.create())  # top level: the key's pod
    assert created.pod_id == pod
    listed = mine.valid(ListInboxesResponse, mine.client.inboxes.list())
    assert [i.inbox_id for i in listed.inboxes] == [created.inbox_id]
    for call in (
        lambda: mine.client.inboxes.get(other.inbox_id),
        lambda: mine.client.inboxes.update(other.inbox_id, display_name="mine now"),
        lambda: mine.client.inboxes.delete(other.inbox_id),
        lambda: mine.client.pods.inboxes.list("default"),
        lambda: mine.client.pods.inboxes.create("default"),
    ):
        # NotFoundError where the SDK maps 404 (creating under a pod maps none).
        with pytest.raises(ApiError) as hidden:
            call()
        assert hidden.value.status_code == 404
    assert mine.client.inboxes.search(q=other.inbox_id).inboxes == []
    # The same answer as for an inbox that does not exist: nothing leaks.
    absent = f"absent-{username()}@{DOMAIN}"
    with pytest.raises(NotFoundError) as not_there:
        mine.client.inboxes.get(absent)
    with pytest.raises(NotFoundError) as not_mine:
        mine.client.inboxes.get(other.inbox_id)
    assert not_there.value.body.message == f"no inbox {absent}"
    assert not_mine.value.body.message == f"no inbox {other.inbox_id}"
    mine.client.inboxes.delete(created.inbox_id)


def test_inbox_key_sees_only_its_inbox(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    account = server.account(pod=pod)
    neighbour = org.client.pods.inboxes.create(pod)
    own = apis(account.key)
    listed = own.valid(ListInboxesResponse, own.client.inboxes.list())
    assert [i.inbox_id for i in listed.inboxes] == [account.address]
    assert own.valid(Inbox, own.client.inboxes.get(account.address)).pod_id == pod
    assert own.client.inboxes.update(account.address, display_name="Me").display_name == "Me"
    with pytest.raises(NotFoundError):
        own.client.inboxes.get(neighbour.inbox_id)
    with pytest.raises(NotFoundError):
        own.client.pods.inboxes.get(pod, neighbour.inbox_id)
    for call in (
        lambda: own.client.inboxes.create(),
        lambda: own.client.inboxes.delete(account.address),
    ):
        with pytest.raises(ApiError) as forbidden:
            call()
        assert forbidden.value.status_code == 403
        assert forbidden.value.body["name"] == "ForbiddenError"
