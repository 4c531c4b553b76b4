"""delivery/submission.py, the one door for sending, called directly as the HTTP API will:
it routes every recipient itself (no RCPT-time routing first), refuses an unknown address at
our domains with nothing stored, and traces the origin it is given. Checked on a real server,
reading the mailboxes back over IMAP."""

from __future__ import annotations

import uuid

import pytest

from mailgate.auth import Principal, split_token
from mailgate.delivery.routing import Router
from mailgate.delivery.submission import (
    Accepted,
    SenderNotAuthorized,
    Submission,
    UnknownRecipients,
)
from mailgate.delivery.trace import Origin
from tests.conftest import make_message
from tests.harness import DOMAIN, Account, Server
from tests.smtp.helpers import read_mailbox

API = Origin.http(ip="192.0.2.7", tls="TLSv1.3 TLS_AES_256_GCM_SHA384")


def submit(
    server: Server,
    sender: Account,
    recipients: list[str],
    data: bytes | None = None,
    **options: str,
) -> Accepted:
    submission = Submission(server.store, Router(server.store), server.settings.server.hostname)
    key_id = split_token(sender.key)
    assert key_id is not None
    principal = Principal(server.call(server.store.get_inbox(sender.address)), key_id[0])
    message = data or make_message(sender.address, recipients)
    return server.call(submission.submit(principal, message, recipients, API, **options))


def queued_from(server: Server, account: Account) -> list[str]:
    items = server.call(server.store.list_outbound())
    return sorted(i.recipient for i in items if i.mail_from == account.address)


def test_plus_addressed_recipient_reaches_the_base_inbox(
    server: Server, account: Account, other: Account
) -> None:
    local, _, domain = other.address.partition("@")
    tagged = f"{local.upper()}+Orders@{domain}"
    accepted = submit(server, account, [tagged])
    assert accepted.local == [other.address]
    assert accepted.queued == []
    [stored] = read_mailbox(server, other)
    assert stored.header("To") == [tagged]
    assert f"for <{other.address}>;" in stored.header("Received")[0]
    assert len(read_mailbox(server, account, "Sent")) == 1
    assert queued_from(server, account) == []


def test_tagged_address_that_is_an_inbox_itself_wins(server: Server, account: Account) -> None:
    base = server.account()
    local, _, domain = base.address.partition("@")
    tagged = server.account(f"{local}+own@{domain}")
    submit(server, account, [tagged.address])
    assert len(read_mailbox(server, tagged)) == 1
    assert read_mailbox(server, base) == []


def test_base_and_tagged_address_get_one_copy(
    server: Server, account: Account, other: Account
) -> None:
    local, _, domain = other.address.partition("@")
    accepted = submit(server, account, [other.address, f"{local}+x@{domain}"])
    assert accepted.local == [other.address]
    assert [m.uid for m in read_mailbox(server, other)] == [1]


def test_unknown_address_at_our_domain_stores_nothing(
    server: Server, account: Account, other: Account
) -> None:
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@{DOMAIN}"
    with pytest.raises(UnknownRecipients) as refused:
        submit(server, account, [other.address, nobody, "friend@example.com"])
    assert refused.value.addresses == [nobody]
    assert nobody in str(refused.value)
    assert read_mailbox(server, account, "Sent") == []
    assert read_mailbox(server, other) == []
    assert queued_from(server, account) == []


def test_unknown_tagged_address_names_the_recipient(server: Server, account: Account) -> None:
    nobody = f"nobody-{uuid.uuid4().hex[:8]}+tag@{DOMAIN}"
    with pytest.raises(UnknownRecipients) as refused:
        submit(server, account, [nobody.upper()])
    assert refused.value.addresses == [nobody]


def test_remote_recipient_is_queued_and_traced_with_the_origin(
    server: Server, account: Account
) -> None:
    accepted = submit(server, account, ["Friend@Example.com"])
    assert accepted.queued == ["friend@example.com"]
    assert queued_from(server, account) == ["friend@example.com"]
    [sent] = read_mailbox(server, account, "Sent")
    received = " ".join(sent.header("Received")[0].split())
    assert received.startswith("from [192.0.2.7] by mail.example.test (mailgate)"), received
    assert f"with HTTPS id {accepted.trace_id}" in received


def test_sender_is_checked_without_a_protocol_checking_first(
    server: Server, account: Account, other: Account
) -> None:
    with pytest.raises(SenderNotAuthorized):
        submit(server, account, [other.address], mail_from=other.address)
    forged = make_message(other.address, account.address)
    with pytest.raises(SenderNotAuthorized):
        submit(server, account, [other.address], forged)
    assert read_mailbox(server, other) == []
    assert read_mailbox(server, account, "Sent") == []
