"""Provisioning: creating and deleting what this server hosts (pods, inboxes, domains with
their DKIM keys, API keys, allow and block lists). The CLI and the HTTP API both call these
functions, so a change made either way does the same work.

Creating a domain's first inbox adds the domain (with an RSA-2048 and an Ed25519 key,
RFC 8463), so that mail from a new inbox can be signed at once.
"""

from __future__ import annotations

from mailgate.auth import hash_secret, new_token
from mailgate.delivery.domains import DEFAULT_DMARC_POLICY, DEFAULT_SPF, default_dmarc, new_keys
from mailgate.mime.addresses import domain_of
from mailgate.store.api import Store
from mailgate.store.errors import DomainExists, DomainNotFound
from mailgate.store.records import ApiKey, Domain, Inbox, Pod, SenderRule
from mailgate.store.tenancy import DEFAULT_POD

# -------------------------------------------------------------------- pods


async def create_pod(store: Store, name: str, *, client_id: str | None = None) -> Pod:
    """A new pod; with a `client_id` that a pod already has, that pod."""
    return await store.create_pod(name, client_id=client_id)


async def delete_pod(store: Store, name: str) -> None:
    """Only an empty pod, never the default one."""
    await store.delete_pod(name)


# -------------------------------------------------------------------- inboxes


async def create_inbox(
    store: Store,
    address: str,
    pod: str = DEFAULT_POD,
    *,
    display_name: str | None = None,
    client_id: str | None = None,
    metadata: str | None = None,
) -> Inbox:
    """An inbox (in `pod`, created if new), and its domain with DKIM keys if this is the
    domain's first inbox. With a `client_id` that an inbox of the pod already has, that inbox
    (the API's idempotent create); `metadata` is a JSON object."""
    inbox = await store.create_inbox(
        address, pod, display_name=display_name, client_id=client_id, metadata=metadata
    )
    await _ensure_domain(store, domain_of(inbox.address))
    return inbox


async def delete_inbox(store: Store, address: str) -> None:
    """The inbox, all its mail and its keys; its domain stays."""
    await store.delete_inbox(address)


# -------------------------------------------------------------------- domains


async def add_domain(
    store: Store, name: str, *, spf: str = DEFAULT_SPF, dmarc_policy: str = DEFAULT_DMARC_POLICY
) -> Domain:
    return await store.add_domain(
        name, spf=spf, dmarc=default_dmarc(name.lower(), dmarc_policy), keys=await new_keys()
    )


async def delete_domain(store: Store, name: str) -> None:
    """Only a domain no inbox uses."""
    await store.delete_domain(name)


async def rotate_dkim(store: Store, name: str) -> Domain:
    """New selectors sign from now on; the old public keys stay published until removed."""
    return await store.add_dkim_keys(name, await new_keys())


async def remove_dkim(store: Store, name: str, selector: str) -> Domain:
    """Stop publishing a retired key (one that no longer signs)."""
    return await store.remove_dkim_key(name, selector)


async def backfill_domains(store: Store) -> None:
    """Give a domain (and keys) to every inbox domain that has none: inboxes created before
    mailgate managed domains, by an older version."""
    known = {d.name for d in await store.list_domains()}
    for name in sorted({domain_of(i.address) for i in await store.list_inboxes()} - known):
        await _ensure_domain(store, name)


async def _ensure_domain(store: Store, name: str) -> Domain:
    try:
        return await store.get_domain(name)
    except DomainNotFound:
        pass
    try:
        return await add_domain(store, name)
    except DomainExists:
        # Another node (or command) created it meanwhile.
        return await store.get_domain(name)


# -------------------------------------------------------------------- API keys


async def issue_key(
    store: Store,
    *,
    inbox: str | None = None,
    pod: str | None = None,
    organization: bool = False,
    label: str = "",
) -> tuple[ApiKey, str]:
    """Create a key scoped to `inbox`, `pod` or the whole organization; returns it with the
    token, shown only now."""
    key_id, secret, token = new_token()
    key = await store.add_key(
        key_id, hash_secret(secret), inbox=inbox, pod=pod, organization=organization, label=label
    )
    return key, token


async def revoke_key(store: Store, key_id: str) -> ApiKey:
    """The key stops opening anything at once; revoking twice is no error."""
    return await store.revoke_key(key_id)


# -------------------------------------------------------------------- allow and block lists


async def add_sender_rule(
    store: Store, action: str, entry: str, *, inbox: str | None = None, pod: str | None = None
) -> SenderRule:
    """Allow or block (`action`) an address or domain for one inbox or a whole pod."""
    return await store.add_sender_rule(action, entry, inbox=inbox, pod=pod)


async def remove_sender_rule(
    store: Store, action: str, entry: str, *, inbox: str | None = None, pod: str | None = None
) -> None:
    await store.remove_sender_rule(action, entry, inbox=inbox, pod=pod)
