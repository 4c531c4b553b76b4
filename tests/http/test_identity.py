"""GET /v0/auth/me (`client.auth.me()`): the scope of the key a request was sent with."""

from __future__ import annotations

from collections.abc import Callable

from agentmail.auth import Identity

from tests.harness import Server
from tests.http.sdk import Api


def test_each_scope_tells_what_it_is_bound_to(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    organization = server.settings.server.hostname
    me = org.valid(Identity, org.client.auth.me())
    assert (me.scope_type, me.scope_id, me.organization_id) == (
        "organization",
        organization,
        organization,
    )
    assert me.pod_id is None
    assert me.inbox_id is None
    assert me.api_key_id

    pod_key = apis(server.pod_key(pod))
    me = pod_key.valid(Identity, pod_key.client.auth.me())
    assert (me.scope_type, me.scope_id, me.pod_id, me.inbox_id) == ("pod", pod, pod, None)
    assert pod_key.key.startswith(f"mgk_{me.api_key_id}_")

    account = server.account(pod=pod)
    inbox_key = apis(account.key)
    me = inbox_key.valid(Identity, inbox_key.client.auth.me())
    assert (me.scope_type, me.scope_id, me.pod_id, me.inbox_id) == (
        "inbox",
        account.address,
        pod,
        account.address,
    )
    assert me.organization_id == organization
