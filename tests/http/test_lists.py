"""Allow and block lists over the HTTP API, driven by the agentmail SDK: a pod's and an inbox's
receive lists (create, get, list, delete, with the reason kept), what answers 501 (send and
reply lists, organization-wide lists), the keys' scopes, and a block made over the API refusing
that sender at the MX."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

import pytest
from agentmail import NotFoundError, ValidationError
from agentmail.core.api_error import ApiError
from agentmail.lists import PodListEntry, PodListListEntriesResponse

from tests.harness import Server
from tests.http.sdk import NO_RETRIES, Api
from tests.smtp.helpers import SMTPSession

BLOCKED = "550 5.7.1 Sender blocked"


def _spam_domain() -> str:
    return f"spam-{uuid.uuid4().hex[:8]}.test"


def _status(call: Callable[[], object]) -> int:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status_code


def _entries(listed: PodListListEntriesResponse) -> list[str]:
    return [e.entry for e in listed.entries]


def test_a_pods_block_list(server: Server, org: Api, pod: str) -> None:
    lists = org.client.pods.lists
    domain = _spam_domain()
    created = org.valid(
        PodListEntry,
        lists.create(pod, "receive", "block", entry=f" {domain.upper()} ", reason="phishing"),
    )
    assert (created.entry, created.entry_type) == (domain, "domain")
    assert (created.direction, created.list_type, created.reason) == (
        "receive",
        "block",
        "phishing",
    )
    assert (created.pod_id, created.inbox_id) == (pod, None)
    assert created.organization_id == server.settings.server.hostname
    assert created.read_only is False
    person = org.valid(PodListEntry, lists.create(pod, "receive", "block", entry=f"eve@{domain}"))
    assert (person.entry_type, person.reason) == ("email", None)
    # Adding it again changes nothing, its reason included.
    again = org.valid(PodListEntry, lists.create(pod, "receive", "block", entry=domain, reason="x"))
    assert again == created

    got = org.valid(PodListEntry, lists.get(pod, "receive", "block", domain.upper()))
    assert got == created
    listed = org.valid(PodListListEntriesResponse, lists.list(pod, "receive", "block"))
    assert _entries(listed) == sorted([domain, f"eve@{domain}"])
    assert listed.count == 2
    first = lists.list(pod, "receive", "block", limit=1)
    rest = lists.list(pod, "receive", "block", limit=1, page_token=first.next_page_token)
    assert _entries(first) + _entries(rest) == _entries(listed)
    assert rest.next_page_token is None
    assert lists.list(pod, "receive", "allow").count == 0
    with pytest.raises(NotFoundError):
        lists.get(pod, "receive", "allow", domain)

    lists.delete(pod, "receive", "block", domain)
    with pytest.raises(NotFoundError):
        lists.get(pod, "receive", "block", domain)
    with pytest.raises(NotFoundError):
        lists.delete(pod, "receive", "block", domain)
    assert _entries(lists.list(pod, "receive", "block")) == [f"eve@{domain}"]


def test_an_inboxs_allow_list_is_its_own(org: Api, pod: str) -> None:
    inbox = org.client.pods.inboxes.create(pod).inbox_id
    domain = _spam_domain()
    lists = org.client.inboxes.lists
    created = org.valid(PodListEntry, lists.create(inbox, "receive", "allow", entry=domain))
    assert (created.pod_id, created.inbox_id, created.list_type) == (pod, inbox, "allow")
    org.client.pods.lists.create(pod, "receive", "allow", entry=f"friend@{domain}")
    listed = org.valid(PodListListEntriesResponse, lists.list(inbox, "receive", "allow"))
    assert _entries(listed) == [domain]
    assert _entries(org.client.pods.lists.list(pod, "receive", "allow")) == [f"friend@{domain}"]
    assert org.valid(PodListEntry, lists.get(inbox, "receive", "allow", domain)) == created
    lists.delete(inbox, "receive", "allow", domain)
    assert lists.list(inbox, "receive", "allow").count == 0


def test_what_mailgate_does_not_enforce_answers_501(org: Api, pod: str) -> None:
    for direction in ("send", "reply"):
        with pytest.raises(ApiError) as refused:
            org.client.pods.lists.list(pod, direction, "block", request_options=NO_RETRIES)
        assert refused.value.status_code == 501
        assert f"{direction} lists" in refused.value.body["message"]
    for organization_wide in (
        lambda: org.client.lists.list("receive", "block", request_options=NO_RETRIES),
        lambda: org.client.lists.get("receive", "block", "a.test", request_options=NO_RETRIES),
        lambda: org.client.lists.delete("receive", "block", "a.test", request_options=NO_RETRIES),
        lambda: org.client.lists.create(
            "receive", "block", entry="a.test", request_options=NO_RETRIES
        ),
    ):
        with pytest.raises(ApiError) as refused:
            organization_wide()
        assert refused.value.status_code == 501
        assert "organization-wide" in refused.value.body["message"]


def test_bad_requests_name_their_field(org: Api, pod: str) -> None:
    lists = org.client.pods.lists
    with pytest.raises(ValidationError) as bad:
        lists.create(pod, "receive", "block", entry="not an address")
    assert [e["path"] for e in bad.value.body.errors] == [["entry"]]
    with pytest.raises(ValidationError) as bad:
        lists.create(pod, "receive", "block", entry="a.test", reason="x" * 256)
    assert [e["path"] for e in bad.value.body.errors] == [["reason"]]
    for direction, kind in (("sideways", "block"), ("receive", "maybe")):
        response = org.raw("GET", f"/v0/pods/{pod}/lists/{direction}/{kind}")
        assert response.status_code == 400
    with pytest.raises(NotFoundError):
        lists.get(pod, "receive", "block", "not an address")


def test_keys_reach_the_lists_of_their_scope(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    theirs = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=theirs)
    org.client.pods.lists.create(theirs, "receive", "block", entry=_spam_domain())
    account = server.account(pod=pod)
    neighbour = server.account(pod=pod)

    pod_key = apis(server.pod_key(pod))
    pod_key.client.pods.lists.create(pod, "receive", "block", entry=_spam_domain())
    pod_key.client.inboxes.lists.create(neighbour.address, "receive", "allow", entry="a.test")
    # (The SDK raises NotFoundError for some of these 404s, a plain ApiError for others.)
    for hidden in (
        lambda: pod_key.client.pods.lists.list(theirs, "receive", "block"),
        lambda: pod_key.client.pods.lists.create(theirs, "receive", "block", entry="b.test"),
    ):
        assert _status(hidden) == 404

    inbox_key = apis(account.key)
    made = inbox_key.client.inboxes.lists.create(
        account.address, "receive", "block", entry="c.test"
    )
    assert made.inbox_id == account.address
    # Its pod's lists it reads, and may not change.
    assert inbox_key.client.pods.lists.list(pod, "receive", "block").count == 1
    with pytest.raises(ApiError) as refused:
        inbox_key.client.pods.lists.create(pod, "receive", "block", entry="d.test")
    assert refused.value.status_code == 403
    assert (
        _status(lambda: inbox_key.client.inboxes.lists.list(neighbour.address, "receive", "allow"))
        == 404
    )
    assert _status(lambda: inbox_key.client.pods.lists.list(theirs, "receive", "block")) == 404


def test_a_block_made_over_the_api_refuses_the_sender_at_the_mx(
    server: Server, org: Api, pod: str
) -> None:
    bob = server.account(pod=pod)
    other = server.account(pod=pod)
    domain = _spam_domain()
    mallory = f"mallory@{domain}"
    org.client.inboxes.lists.create(bob.address, "receive", "block", entry=mallory)
    with _mx(server) as s:
        s.expect(f"MAIL FROM:<{mallory}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", BLOCKED)
        s.expect(f"RCPT TO:<{other.address}>", "250 2.1.5")
    # The pod's list covers every inbox of the pod.
    org.client.pods.lists.create(pod, "receive", "block", entry=domain)
    org.client.inboxes.lists.delete(bob.address, "receive", "block", mallory)
    with _mx(server) as s:
        s.expect(f"MAIL FROM:<alice@{domain}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", BLOCKED)
        s.expect(f"RCPT TO:<{other.address}>", BLOCKED)
    org.client.pods.lists.delete(pod, "receive", "block", domain)
    with _mx(server) as s:
        s.expect(f"MAIL FROM:<{mallory}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{bob.address}>", "250 2.1.5")


def _mx(server: Server) -> SMTPSession:
    """A session with the MX, as another mail server opens one."""
    sock = socket.create_connection((server.host, server.port("mx")), timeout=30)
    session = SMTPSession(sock)
    session.ehlo("relay.elsewhere.test")
    return session
