"""mailgate/provision.py, the door the CLI and the HTTP API make changes through, where the CLI
tests (test_cli.py, test_cli_world.py) do not reach: pods, a domain's first inbox adding the
domain once, the start-up backfill, and keys that stop opening an inbox over IMAP at once."""

from __future__ import annotations

import imaplib
import uuid

import pytest

from mailgate import provision
from mailgate.store import errors
from tests.harness import Account, Server


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _imap_login_ok(server: Server, address: str, token: str) -> bool:
    try:
        server.imap_client(Account(address, token)).logout()
    except imaplib.IMAP4.error:
        return False
    return True


def test_pod_lifecycle(server: Server) -> None:
    pod = _name("pod")
    assert server.call(provision.create_pod(server.store, pod)).name == pod
    with pytest.raises(errors.PodExists):
        server.call(provision.create_pod(server.store, pod))
    inbox = server.call(provision.create_inbox(server.store, f"{_name('a')}@{pod}.test", pod))
    assert inbox.pod == pod
    _, token = server.call(provision.issue_key(server.store, pod=pod))
    assert _imap_login_ok(server, inbox.address, token)

    with pytest.raises(errors.CannotModify, match="inbox"):
        server.call(provision.delete_pod(server.store, pod))
    server.call(provision.delete_inbox(server.store, inbox.address))
    server.call(provision.delete_pod(server.store, pod))
    with pytest.raises(errors.PodNotFound):
        server.call(server.store.get_pod(pod))
    with pytest.raises(errors.CannotModify):
        server.call(provision.delete_pod(server.store, "default"))


def test_a_domains_first_inbox_adds_it_once(server: Server) -> None:
    domain = f"{_name('first')}.test"
    server.call(provision.create_inbox(server.store, f"a@{domain}"))
    first = server.call(server.store.get_domain(domain))
    assert sorted(k.algorithm for k in first.keys if k.active) == ["ed25519-sha256", "rsa-sha256"]
    # A second inbox neither adds the domain again nor changes its keys.
    server.call(provision.create_inbox(server.store, f"b@{domain}"))
    assert server.call(server.store.get_domain(domain)) == first
    # Deleting its inboxes leaves the domain (and what its owner published) in place.
    for local in ("a", "b"):
        server.call(provision.delete_inbox(server.store, f"{local}@{domain}"))
    assert server.call(server.store.get_domain(domain)) == first


def test_backfill_gives_a_domain_to_inboxes_made_without_one(server: Server) -> None:
    domain = f"{_name('old')}.test"
    # As an older version, which managed no domains, left it.
    server.call(server.store.create_inbox(f"a@{domain}"))
    with pytest.raises(errors.DomainNotFound):
        server.call(server.store.get_domain(domain))
    server.call(provision.backfill_domains(server.store))
    added = server.call(server.store.get_domain(domain))
    assert len(added.keys) == 2
    server.call(provision.backfill_domains(server.store))
    assert server.call(server.store.get_domain(domain)) == added


def test_a_revoked_key_stops_opening_the_inbox(server: Server, account: Account) -> None:
    key, token = server.call(provision.issue_key(server.store, inbox=account.address))
    assert token.startswith(f"mgk_{key.id}_")
    assert token not in repr(key)
    assert _imap_login_ok(server, account.address, token)
    assert not server.call(provision.revoke_key(server.store, key.id)).active
    assert not _imap_login_ok(server, account.address, token)
    # Revoking twice is no error; the inbox's other key still opens it.
    assert not server.call(provision.revoke_key(server.store, key.id)).active
    assert _imap_login_ok(server, account.address, account.key)
