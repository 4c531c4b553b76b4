"""The API's doors for mail into a full inbox (IMAP QUOTA): a send to a full local recipient
is refused whole (403 MessageRejectedError, as SMTP's 552 5.2.2), and a draft that does not fit
is refused (422); nothing is stored either time."""

from __future__ import annotations

from collections.abc import Callable

from tests.harness import Account, Server
from tests.http.sdk import Api
from tests.smtp.helpers import mailbox_count


def test_a_send_to_a_full_inbox_is_rejected_and_nothing_is_stored(
    server: Server, apis: Callable[[str], Api]
) -> None:
    sender, full = server.account(), server.account()
    server.call(server.store.set_inbox_quota(full.address, 1))
    api = apis(sender.key)
    body = {"to": [full.address], "subject": "Hello", "text": "Hi."}
    first = api.raw("POST", f"/v0/inboxes/{sender.address}/messages/send", json=body)
    assert first.status_code == 200, first.text  # not full yet: the message fills it
    refused = api.raw("POST", f"/v0/inboxes/{sender.address}/messages/send", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["name"] == "MessageRejectedError"
    assert "mailbox full" in refused.json()["message"]
    assert full.address in refused.json()["message"]
    assert mailbox_count(server, full) == 1
    assert mailbox_count(server, sender, "Sent") == 1


def test_a_draft_that_does_not_fit_is_refused(server: Server, apis: Callable[[str], Api]) -> None:
    account: Account = server.account()
    server.call(server.store.set_inbox_quota(account.address, 4096))
    api = apis(account.key)
    path = f"/v0/inboxes/{account.address}/drafts"
    small = api.raw("POST", path, json={"subject": "small", "text": "Short."})
    assert small.status_code == 200, small.text
    big = api.raw("POST", path, json={"subject": "big", "text": "x" * 5000})
    assert big.status_code == 422, big.text
    assert big.json()["name"] == "UnprocessableError"
    assert "storage quota" in big.json()["message"]
    assert mailbox_count(server, account, "Drafts") == 1
