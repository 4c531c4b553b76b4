"""Provisioning: creating and deleting what this server hosts (pods, inboxes, domains with
their DKIM keys, API keys, allow and block lists), and checking that DNS publishes what a
domain needs. The CLI and the HTTP API both call these functions, so a change made either way
does the same work.

Creating a domain's first inbox adds the domain (with an RSA-2048 and an Ed25519 key,
RFC 8463), so that mail from a new inbox can be signed at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from mailgate.auth import hash_secret, new_token
from mailgate.delivery.dns import Resolver, TemporaryDNSError
from mailgate.delivery.domains import (
    DEFAULT_DMARC_POLICY,
    DEFAULT_SPF,
    Record,
    default_dmarc,
    dns_records,
    new_keys,
)
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


# -------------------------------------------------------------------- a domain's DNS

# What DNS shows for one of the records a domain's owner is to publish (`dns_records`).
VALID = "valid"  # published, as expected
MISSING = "missing"  # nothing of its kind at that name
INVALID = "invalid"  # published with another value, or beside others of its kind
UNKNOWN = "unknown"  # the lookup failed for now (a timeout, a server failure): never a pass
# Why a record is INVALID.
MISMATCH = "value_mismatch"
DUPLICATE = "duplicate_records"


@dataclass(frozen=True, slots=True)
class RecordCheck:
    record: Record
    status: str  # VALID, MISSING, INVALID or UNKNOWN
    detail: str = ""  # INVALID: MISMATCH or DUPLICATE; UNKNOWN: the lookup that failed


@dataclass(frozen=True, slots=True)
class DomainCheck:
    domain: Domain
    records: tuple[RecordCheck, ...]

    @property
    def status(self) -> str:
        """VALID when every record is; otherwise INVALID, MISSING or UNKNOWN, the first of
        these that a record has: what DNS does answer outweighs a lookup that failed."""
        found = {check.status for check in self.records}
        return next((s for s in (INVALID, MISSING, UNKNOWN) if s in found), VALID)


async def check_domain(store: Store, resolver: Resolver, name: str, hostname: str) -> DomainCheck:
    """Whether DNS publishes the records `mailgate domain dns` prints for the domain, each
    looked up now (answers are cached for their TTL, as every lookup of mailgate's is)."""
    domain = await store.get_domain(name)
    records = dns_records(domain, hostname)
    checks = await asyncio.gather(*(_check_record(resolver, r) for r in records))
    check = DomainCheck(domain, tuple(checks))
    if check.status == VALID and domain.verified_at is None:
        await store.mark_domain_verified(domain.name)
    return check


async def _check_record(resolver: Resolver, record: Record) -> RecordCheck:
    kind, same = _comparison(record)
    try:
        if record.type == "MX":
            found = [r.to_text() for r in await resolver.query(record.name, "MX")]
        else:
            found = [t.decode("utf-8", "replace") for t in await resolver.txt(record.name)]
    except TemporaryDNSError as exc:
        return RecordCheck(record, UNKNOWN, str(exc))
    published = [value for value in found if kind(value)]
    if not published:
        return RecordCheck(record, MISSING)
    if not any(same(value) for value in published):
        return RecordCheck(record, INVALID, MISMATCH)
    if len(published) > 1:
        return RecordCheck(record, INVALID, DUPLICATE)
    return RecordCheck(record, VALID)


Predicate = Callable[[str], bool]


def _comparison(record: Record) -> tuple[Predicate, Predicate]:
    """(is a published value of this record's kind, is it this record's value)."""
    if record.type == "MX":
        host = _host(record.value)
        return (lambda _: True), (lambda value: _host(value) == host)
    if record.name.startswith("_dmarc."):
        # Tags the owner adds (rua=, pct=…) keep it valid; ours must be there as they are.
        expected = _tags(record.value, fold=True)
        return (
            lambda value: _tags(value, fold=True).get("v") == "dmarc1",
            lambda value: expected.items() <= _tags(value, fold=True).items(),
        )
    if "._domainkey." in record.name:
        expected = _tags(record.value, fold=False)
        return (lambda _: True), (
            lambda value: expected.items() <= _tags(value, fold=False).items()
        )
    # SPF: one record per domain (RFC 7208 §3.2), compared term by term.
    terms = record.value.lower().split()
    return (
        lambda value: value.lower().split()[:1] == ["v=spf1"],
        lambda value: value.lower().split() == terms,
    )


def _host(mx: str) -> str:
    """The host of an MX value "PREFERENCE HOST"."""
    return mx.split()[-1].rstrip(".").lower()


def _tags(text: str, *, fold: bool) -> dict[str, str]:
    """The tag=value list of a DKIM or DMARC record, whitespace removed (RFC 6376 §3.2);
    `fold`: values compare case-insensitively (DMARC's do; a DKIM key's base64 does not)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if name.strip():
            value = "".join(value.split())
            tags[name.strip().lower()] = value.lower() if fold else value
    return tags


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


async def rename_key(store: Store, key_id: str, label: str) -> ApiKey:
    return await store.rename_key(key_id, label)


async def revoke_key(store: Store, key_id: str) -> ApiKey:
    """The key stops opening anything at once; revoking twice is no error."""
    return await store.revoke_key(key_id)


# -------------------------------------------------------------------- allow and block lists


async def add_sender_rule(
    store: Store,
    action: str,
    entry: str,
    *,
    inbox: str | None = None,
    pod: str | None = None,
    reason: str | None = None,
) -> SenderRule:
    """Allow or block (`action`) an address or domain for one inbox or a whole pod; `reason`
    is kept with it. An entry already listed stays as it is."""
    return await store.add_sender_rule(action, entry, inbox=inbox, pod=pod, reason=reason)


async def remove_sender_rule(
    store: Store, action: str, entry: str, *, inbox: str | None = None, pod: str | None = None
) -> None:
    await store.remove_sender_rule(action, entry, inbox=inbox, pod=pod)
