"""API keys over the HTTP API, driven by the agentmail SDK: create (the token shown once), list,
get, rename and delete (revoke), at the top level, under a pod and under an inbox. A key made
over the API opens its inbox over IMAP, and deleted over the API it stops at once. Scopes: an
organization key manages every key, a pod key those of its pod, an inbox key only sees its own
inbox's keys; permissions, public-key credentials and expiring keys answer 501."""

from __future__ import annotations

import imaplib
import uuid
from collections.abc import Callable

import pytest
from agentmail import NotFoundError, ValidationError
from agentmail.api_keys import (
    ApiKeyPermissions,
    BearerApiKey,
    CreateApiKeyResponse,
    CreateBearerApiKeyRequest,
    CreatePublicKeyRequest,
    ListApiKeysResponse,
    PublicJwk,
)
from agentmail.core.api_error import ApiError

from mailgate.http.api_keys import PERMISSIONS
from tests.harness import Account, Server
from tests.http.sdk import NO_RETRIES, Api, username


def _new(name: str = "") -> CreateBearerApiKeyRequest:
    return CreateBearerApiKeyRequest(name=name or f"key-{uuid.uuid4().hex[:8]}")


def _ids(listed: ListApiKeysResponse) -> list[str]:
    return [k.api_key_id for k in listed.api_keys]


def _status(call: Callable[[], object]) -> int:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status_code


def test_create_get_list_rename_delete(org: Api, apis: Callable[[str], Api]) -> None:
    created = org.valid(CreateApiKeyResponse, org.client.api_keys.create(request=_new("ci")))
    assert created.name == "ci"
    assert created.api_key.startswith(f"{created.prefix}_")
    assert created.prefix == f"mgk_{created.api_key_id}"
    # Made at the top by an organization key: an organization key (no pod, no inbox).
    assert (created.pod_id, created.inbox_id) == (None, None)
    assert "api_key" not in org.raw("GET", f"/v0/api-keys/{created.api_key_id}").json()

    got = org.valid(BearerApiKey, org.client.api_keys.get(created.api_key_id))
    assert (got.type, got.api_key_id, got.name) == ("bearer", created.api_key_id, "ci")
    assert got.created_at == created.created_at
    listed = org.valid(ListApiKeysResponse, org.client.api_keys.list())
    assert created.api_key_id in _ids(listed)
    assert listed.count == len(listed.api_keys)

    renamed = org.valid(BearerApiKey, org.client.api_keys.update(created.api_key_id, name="cd"))
    assert renamed.name == "cd"
    assert renamed.updated_at >= renamed.created_at
    assert org.client.api_keys.get(created.api_key_id).name == "cd"

    # The new key works, as an organization key; deleted, it stops at once.
    made = apis(created.api_key)
    assert made.client.pods.get("default").pod_id == "default"
    org.client.api_keys.delete(created.api_key_id)
    assert _status(lambda: made.client.pods.get("default")) == 401
    with pytest.raises(NotFoundError):
        org.client.api_keys.get(created.api_key_id)
    with pytest.raises(NotFoundError):
        org.client.api_keys.delete(created.api_key_id)
    assert created.api_key_id not in _ids(org.client.api_keys.list())


def test_list_order_and_type(org: Api) -> None:
    made = {org.client.api_keys.create(request=_new()).api_key_id for _ in range(2)}
    newest = _ids(org.valid(ListApiKeysResponse, org.client.api_keys.list()))
    assert made <= set(newest)
    # Creation times are in seconds; keys made in the same second are ordered by id.
    oldest = _ids(org.valid(ListApiKeysResponse, org.client.api_keys.list(ascending=True)))
    assert oldest == newest[::-1]
    assert _ids(org.client.api_keys.list(type="bearer")) == newest
    # mailgate has no public-key credentials.
    assert org.valid(ListApiKeysResponse, org.client.api_keys.list(type="public_key")).count == 0
    with pytest.raises(ApiError) as bad:
        org.client.api_keys.list(type="other")
    assert bad.value.status_code == 400
    paged = org.valid(ListApiKeysResponse, org.client.api_keys.list(limit=1))
    assert paged.count == 1
    following = org.client.api_keys.list(limit=1, page_token=paged.next_page_token)
    assert _ids(following) == newest[1:2]


def test_an_inbox_key_made_over_the_api_opens_imap_until_deleted(
    server: Server, org: Api, pod: str
) -> None:
    inbox = org.client.pods.inboxes.create(pod, username=username())
    created = org.valid(
        CreateApiKeyResponse, org.client.inboxes.api_keys.create(inbox.inbox_id, request=_new())
    )
    assert (created.pod_id, created.inbox_id) == (pod, inbox.inbox_id)
    account = Account(inbox.inbox_id, created.api_key)
    imap = server.imap_client(account)
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    listed = org.valid(ListApiKeysResponse, org.client.inboxes.api_keys.list(inbox.inbox_id))
    assert _ids(listed) == [created.api_key_id]

    org.client.inboxes.api_keys.delete(inbox.inbox_id, created.api_key_id)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        server.imap_client(account)
    assert org.client.inboxes.api_keys.list(inbox.inbox_id).count == 0


def test_under_a_pod_and_an_inbox(server: Server, org: Api, pod: str) -> None:
    inbox = org.client.pods.inboxes.create(pod, username=username())
    pod_key = org.valid(
        CreateApiKeyResponse, org.client.pods.api_keys.create(pod, request=_new("pod"))
    )
    assert (pod_key.pod_id, pod_key.inbox_id) == (pod, None)
    inbox_key = org.client.inboxes.api_keys.create(inbox.inbox_id, request=_new("inbox"))
    # A pod's keys are its own and its inboxes'; an inbox's, its own.
    listed = org.valid(ListApiKeysResponse, org.client.pods.api_keys.list(pod))
    assert set(_ids(listed)) == {pod_key.api_key_id, inbox_key.api_key_id}
    assert _ids(org.client.inboxes.api_keys.list(inbox.inbox_id)) == [inbox_key.api_key_id]
    renamed = org.valid(
        BearerApiKey, org.client.pods.api_keys.update(pod, pod_key.api_key_id, name="renamed")
    )
    assert renamed.name == "renamed"
    renamed = org.valid(
        BearerApiKey,
        org.client.inboxes.api_keys.update(inbox.inbox_id, inbox_key.api_key_id, name="mine"),
    )
    assert renamed.name == "mine"
    # Not under another inbox of the pod, nor under another pod.
    other = org.client.pods.inboxes.create(pod, username=username())
    with pytest.raises(NotFoundError):
        org.client.inboxes.api_keys.delete(other.inbox_id, inbox_key.api_key_id)
    with pytest.raises(NotFoundError):
        org.client.pods.api_keys.delete("default", pod_key.api_key_id)
    org.client.pods.api_keys.delete(pod, inbox_key.api_key_id)
    org.client.pods.api_keys.delete(pod, pod_key.api_key_id)
    assert org.client.pods.api_keys.list(pod).count == 0
    with pytest.raises(NotFoundError):
        org.client.pods.api_keys.list(f"no-such-pod-{uuid.uuid4().hex[:6]}")


def test_a_pod_key_manages_its_pods_keys_only(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    inbox = org.client.pods.inboxes.create(pod, username=username())
    theirs = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=theirs)
    their_key = org.client.pods.api_keys.create(theirs, request=_new()).api_key_id
    org_key = org.client.api_keys.create(request=_new()).api_key_id

    key = apis(server.pod_key(pod))
    # At the top, a pod key makes keys for its own pod.
    made = key.valid(CreateApiKeyResponse, key.client.api_keys.create(request=_new()))
    assert (made.pod_id, made.inbox_id) == (pod, None)
    for_inbox = key.client.inboxes.api_keys.create(inbox.inbox_id, request=_new())
    assert for_inbox.inbox_id == inbox.inbox_id
    seen = set(_ids(key.valid(ListApiKeysResponse, key.client.api_keys.list())))
    assert {made.api_key_id, for_inbox.api_key_id} <= seen
    assert not {their_key, org_key} & seen
    # Another pod's keys, and organization keys, do not exist for it.
    for hidden in (
        lambda: key.client.api_keys.get(their_key),
        lambda: key.client.api_keys.get(org_key),
        lambda: key.client.api_keys.update(org_key, name="mine now"),
        lambda: key.client.api_keys.delete(org_key),
        lambda: key.client.api_keys.delete(their_key),
        lambda: key.client.pods.api_keys.list(theirs),
        lambda: key.client.pods.api_keys.create(theirs, request=_new()),
    ):
        with pytest.raises(NotFoundError):
            hidden()
    assert org.client.api_keys.get(org_key).api_key_id == org_key
    key.client.api_keys.update(made.api_key_id, name="renamed")
    key.client.pods.api_keys.delete(pod, made.api_key_id)


def test_an_inbox_key_sees_its_inboxs_keys_and_changes_none(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    account = server.account(pod=pod)
    neighbour = server.account(pod=pod)
    own = org.client.inboxes.api_keys.create(account.address, request=_new()).api_key_id
    key = apis(account.key)
    listed = key.valid(ListApiKeysResponse, key.client.api_keys.list())
    assert own in _ids(listed)
    assert all(k.inbox_id == account.address for k in listed.api_keys)
    assert key.valid(BearerApiKey, key.client.api_keys.get(own)).inbox_id == account.address
    assert own in _ids(key.client.inboxes.api_keys.list(account.address))
    assert set(_ids(key.client.pods.api_keys.list(pod))) == set(_ids(listed))
    with pytest.raises(NotFoundError):
        key.client.inboxes.api_keys.list(neighbour.address)
    for forbidden in (
        lambda: key.client.api_keys.create(request=_new()),
        lambda: key.client.inboxes.api_keys.create(account.address, request=_new()),
        lambda: key.client.pods.api_keys.create(pod, request=_new()),
        lambda: key.client.api_keys.update(own, name="x"),
        lambda: key.client.api_keys.delete(own),
    ):
        assert _status(forbidden) == 403


def test_what_mailgate_keys_cannot_be_answers_501(org: Api) -> None:
    # The permissions the server knows are the SDK's.
    assert list(PERMISSIONS) == list(ApiKeyPermissions.model_fields)
    limited = CreateBearerApiKeyRequest(permissions=ApiKeyPermissions(inbox_read=True))
    with pytest.raises(ApiError) as refused:
        org.client.api_keys.create(request=limited, request_options=NO_RETRIES)
    assert refused.value.status_code == 501
    assert "inbox_create" in refused.value.body["message"]
    everything = ApiKeyPermissions(**dict.fromkeys(PERMISSIONS, True))
    full = org.valid(
        CreateApiKeyResponse,
        org.client.api_keys.create(request=CreateBearerApiKeyRequest(permissions=everything)),
    )
    assert full.permissions is None  # all of them
    for unsupported in (
        CreatePublicKeyRequest(public_key=PublicJwk(x="eA", y="eQ")),
        CreateBearerApiKeyRequest(expires_at="2030-01-01T00:00:00Z"),
    ):
        with pytest.raises(ApiError) as refused:
            org.client.api_keys.create(request=unsupported, request_options=NO_RETRIES)
        assert refused.value.status_code == 501
    with pytest.raises(ApiError) as refused:
        org.client.api_keys.update(
            full.api_key_id,
            permissions=ApiKeyPermissions(message_send=False),
            request_options=NO_RETRIES,
        )
    assert refused.value.status_code == 501
    assert "message_send" in refused.value.body["message"]
    assert org.client.api_keys.update(full.api_key_id, permissions=everything).name == ""
    with pytest.raises(ValidationError):
        org.client.api_keys.update(full.api_key_id)
    with pytest.raises(ValidationError) as bad:
        org.client.api_keys.create(request=_new("x" * 256))
    assert [e["path"] for e in bad.value.body.errors] == [["name"]]
