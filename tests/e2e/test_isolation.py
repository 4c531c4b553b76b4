"""Tenancy: a pod key opens every inbox of its pod and nothing else, an inbox key opens its
inbox only, a revoked key opens nothing, over IMAP and SMTP alike."""

from __future__ import annotations

import uuid

import pytest

from mailgate.auth import split_token
from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, imap_login, plain, read_mailbox, smtp_login
from tests.transcript import Transcript


def _pod() -> str:
    return f"pod-{uuid.uuid4().hex[:8]}"


def _imap_login_ok(server: Server, account: Account) -> bool:
    with Transcript.connect(server) as t:
        r = t.command(f'LOGIN "{account.address}" "{account.key}"')
    assert r.status == "OK" or r.code == "AUTHENTICATIONFAILED", r.tagged
    return r.status == "OK"


def _smtp_login_ok(server: Server, account: Account) -> bool:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        reply = s.cmd(f"AUTH PLAIN {plain(account.address, account.key)}")
        assert reply.line.startswith(("235 2.7.0", "535 5.7.8")), reply.text
        return reply.code == 235


def _can_log_in(server: Server, account: Account) -> bool:
    imap, smtp = _imap_login_ok(server, account), _smtp_login_ok(server, account)
    assert imap == smtp, "IMAP and SMTP disagree about this login"
    return imap


def _revoke(server: Server, key: str) -> None:
    parts = split_token(key)
    assert parts is not None
    server.call(server.store.revoke_key(parts[0]))


def test_pod_key_opens_its_pod_only(server: Server) -> None:
    pod_a, pod_b = _pod(), _pod()
    a1, a2 = server.account(pod=pod_a), server.account(pod=pod_a)
    b1 = server.account(pod=pod_b)
    key_a = server.pod_key(pod_a)
    assert _can_log_in(server, Account(a1.address, key_a))
    assert _can_log_in(server, Account(a2.address, key_a))
    assert not _can_log_in(server, Account(b1.address, key_a))
    # Nor does another pod's key (here the default pod's) reach into this one.
    server.account()  # the default pod exists once it holds an inbox
    assert not _can_log_in(server, Account(a1.address, server.pod_key("default")))


def test_inbox_key_opens_its_inbox_only(server: Server) -> None:
    pod = _pod()
    a1, a2 = server.account(pod=pod), server.account(pod=pod)
    assert _can_log_in(server, a1)
    assert not _can_log_in(server, Account(a2.address, a1.key))


def test_pod_key_sees_only_the_inbox_it_logged_in_to(server: Server) -> None:
    pod = _pod()
    a1, a2 = server.account(pod=pod), server.account(pod=pod)
    with smtp_login(server, a2) as smtp:
        smtp.sendmail(
            a2.address, [a2.address], make_message(a2.address, a2.address, subject="a2's own")
        )
    as_a1 = Account(a1.address, server.pod_key(pod))
    assert read_mailbox(server, as_a1) == []
    assert read_mailbox(server, as_a1, "Sent") == []
    client = imap_login(server, as_a1)
    try:
        status, listing = client.list()
        assert status == "OK"
        assert not any(a2.address.encode() in line for line in listing if isinstance(line, bytes))
    finally:
        client.logout()


def test_revoked_key_is_refused_and_others_keep_working(server: Server) -> None:
    account = server.account()
    second = Account(account.address, server.pod_key("default"))
    assert _can_log_in(server, account)
    _revoke(server, account.key)
    assert not _can_log_in(server, account)
    assert _can_log_in(server, second)


def test_revoked_pod_key_is_refused_everywhere_in_the_pod(server: Server) -> None:
    pod = _pod()
    a1, a2 = server.account(pod=pod), server.account(pod=pod)
    key = server.pod_key(pod)
    _revoke(server, key)
    for inbox in (a1, a2):
        assert not _can_log_in(server, Account(inbox.address, key))
        assert _can_log_in(server, inbox)


@pytest.mark.parametrize("tamper", ["secret", "id", "prefix"])
def test_tampered_key_is_refused(server: Server, tamper: str) -> None:
    account = server.account()
    prefix, key_id, secret = account.key.split("_", 2)
    forged = {
        "secret": f"{prefix}_{key_id}_{secret[::-1]}",
        "id": f"{prefix}_{key_id[::-1]}_{secret}",
        "prefix": f"xyz_{key_id}_{secret}",
    }[tamper]
    assert not _can_log_in(server, Account(account.address, forged))


def test_deleted_inbox_cannot_log_in(server: Server) -> None:
    pod = _pod()
    gone = server.account(pod=pod)
    pod_key = Account(gone.address, server.pod_key(pod))
    server.call(server.store.delete_inbox(gone.address))
    assert not _can_log_in(server, gone)
    assert not _can_log_in(server, pod_key)
