"""Pods over the HTTP API, driven by the agentmail SDK: list, get, create (name generated,
client_id idempotent) and delete (empty pods only, never the default); only an organization
key creates or deletes them, and a pod key sees its own pod and no other."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from agentmail import NotFoundError, ValidationError
from agentmail.core.api_error import ApiError
from agentmail.pods import ListPodsResponse, Pod

from tests.harness import Server
from tests.http.sdk import NO_RETRIES, Api


def _name() -> str:
    return f"team-{uuid.uuid4().hex[:10]}"


def test_create_get_list_delete(org: Api) -> None:
    name = _name()
    created = org.valid(Pod, org.client.pods.create(name=name))
    assert (created.pod_id, created.name) == (name, name)
    assert created.created_at.tzinfo is not None
    assert created.updated_at >= created.created_at
    assert org.valid(Pod, org.client.pods.get(name)).pod_id == name
    listed = org.valid(ListPodsResponse, org.client.pods.list())
    assert name in [p.pod_id for p in listed.pods]
    assert listed.count == len(listed.pods)
    # Newest first: the pod just made comes before the default one.
    ids = [p.pod_id for p in listed.pods]
    assert "default" not in ids or ids.index(name) < ids.index("default")
    org.client.pods.delete(name)
    with pytest.raises(NotFoundError):
        org.client.pods.get(name)
    with pytest.raises(NotFoundError):
        org.client.pods.delete(name)


def test_name_is_generated_and_client_id_makes_create_idempotent(org: Api) -> None:
    client_id = f"tenant-{uuid.uuid4().hex[:8]}"
    first = org.valid(Pod, org.client.pods.create(client_id=client_id))
    assert first.name
    assert first.client_id == client_id
    again = org.valid(Pod, org.client.pods.create(client_id=client_id))
    assert again.pod_id == first.pod_id
    nameless = org.valid(Pod, org.client.pods.create())
    assert nameless.pod_id not in (first.pod_id, "default")


def test_a_taken_name_is_a_conflict_and_a_bad_one_invalid(org: Api) -> None:
    name = _name()
    org.client.pods.create(name=name)
    with pytest.raises(ApiError) as taken:
        org.client.pods.create(name=name, request_options=NO_RETRIES)
    assert taken.value.status_code == 409
    assert taken.value.body["name"] == "ConflictError"
    with pytest.raises(ValidationError) as bad:
        org.client.pods.create(name="two words")
    assert [e["path"] for e in bad.value.body.errors] == [["name"]]


def test_only_empty_pods_and_never_the_default_are_deleted(org: Api) -> None:
    name = _name()
    org.client.pods.create(name=name)
    inbox = org.client.pods.inboxes.create(name)
    for pod in (name, "default"):
        with pytest.raises(ApiError) as refused:
            org.client.pods.delete(pod)
        assert refused.value.status_code == 403
        assert refused.value.body["name"] == "ForbiddenError"
    org.client.pods.inboxes.delete(name, inbox.inbox_id)
    org.client.pods.delete(name)


def test_pod_key_sees_its_pod_only_and_creates_none(
    server: Server, org: Api, apis: Callable[[str], Api]
) -> None:
    mine, theirs = _name(), _name()
    org.client.pods.create(name=mine)
    org.client.pods.create(name=theirs)
    key = apis(server.pod_key(mine))
    listed = key.valid(ListPodsResponse, key.client.pods.list())
    assert [p.pod_id for p in listed.pods] == [mine]
    assert key.valid(Pod, key.client.pods.get(mine)).pod_id == mine
    # Another pod does not exist for this key: the same 404 as a pod that is not there.
    with pytest.raises(NotFoundError) as hidden:
        key.client.pods.get(theirs)
    assert hidden.value.body.message == f"no pod {theirs}"
    with pytest.raises(NotFoundError):
        key.client.pods.delete(theirs)
    for call in (
        lambda: key.client.pods.create(name=_name()),
        lambda: key.client.pods.delete(mine),
    ):
        with pytest.raises(ApiError) as forbidden:
            call()
        assert forbidden.value.status_code == 403
    assert org.client.pods.get(mine).pod_id == mine
