"""Inbox events (`client.inboxes.events.list`): each label a message gains or loses, whichever
door the change came through: an IMAP client's STORE, COPY, MOVE and EXPUNGE, a label set over
the API, a bounce."""

from __future__ import annotations

from typing import Any

import pytest
from agentmail import NotFoundError
from agentmail.inbox_events.types.list_inbox_events_response import ListInboxEventsResponse

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.http.sdk import Api


def _changes(api: Api, address: str, **kwargs: Any) -> list[tuple[str, str]]:
    listed = api.valid(ListInboxEventsResponse, api.client.inboxes.events.list(address, **kwargs))
    return [(e.event_type, e.label) for e in listed.events]


def _delivered(server: Server, account: Account, subject: str) -> str:
    """A message delivered to the account's INBOX; its API message_id."""
    sender = server.account()
    with server.smtp_client(sender) as smtp:
        smtp.sendmail(
            sender.address,
            [account.address],
            make_message(sender.address, account.address, subject=subject),
        )
    api = Api(server, account.key)
    try:
        (found,) = api.client.inboxes.messages.list(account.address).messages
        return found.message_id
    finally:
        api.close()


def test_imap_changes_are_label_events(server: Server, apis: Any) -> None:
    account = server.account()
    message_id = _delivered(server, account, "Over IMAP")
    api: Api = apis(account.key)
    # Arriving is not a label change.
    assert _changes(api, account.address) == []
    imap = server.imap_client(account)
    try:
        imap.select("INBOX")
        assert imap.store("1", "+FLAGS", "(\\Seen \\Flagged)")[0] == "OK"
        assert imap.store("1", "+FLAGS", "(\\Seen)")[0] == "OK"  # no change: no event
        assert imap.store("1", "+FLAGS", "(urgent)")[0] == "OK"
        assert imap.create("Projects")[0] == "OK"
        assert imap.copy("1", "Projects")[0] == "OK"
        # The INBOX copy goes; the message stays, in Projects.
        assert imap.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert imap.expunge()[0] == "OK"
    finally:
        imap.logout()
    assert _changes(api, account.address, ascending=True) == [
        ("label.added", "read"),
        ("label.added", "starred"),
        ("label.removed", "unread"),
        ("label.added", "urgent"),
        ("label.added", "Projects"),
        ("label.removed", "received"),
    ]
    listed = api.client.inboxes.events.list(account.address)
    newest = listed.events[0]
    assert (newest.event_type, newest.label) == ("label.removed", "received")
    assert newest.message_id == message_id
    assert newest.inbox_id == account.address
    assert newest.pod_id == "default"
    # Ordered by event_id, newest first.
    ids = [e.event_id for e in listed.events]
    assert ids == sorted(ids, reverse=True)


def test_api_labels_and_moves_are_label_events(server: Server, apis: Any) -> None:
    account = server.account()
    message_id = _delivered(server, account, "Over the API")
    api: Api = apis(account.key)
    messages = api.client.inboxes.messages
    messages.update(account.address, message_id, add_labels=["invoice"], remove_labels=["unread"])
    messages.update(account.address, message_id, add_labels=["trash"])
    changes = _changes(api, account.address, ascending=True)
    # One change, one transaction: what it added, then what it removed.
    assert changes == [
        ("label.added", "read"),
        ("label.added", "invoice"),
        ("label.removed", "unread"),
        ("label.added", "trash"),
        ("label.removed", "received"),
    ]


def test_pages_and_scope(server: Server, apis: Any) -> None:
    account = server.account()
    _delivered(server, account, "Paged")
    imap = server.imap_client(account)
    try:
        imap.select("INBOX")
        for n in range(5):
            assert imap.store("1", "+FLAGS", f"(tag{n})")[0] == "OK"
    finally:
        imap.logout()
    api: Api = apis(account.key)
    seen: list[str] = []
    token = None
    while True:
        page = api.client.inboxes.events.list(account.address, limit=2, page_token=token)
        assert page.count == len(page.events) <= 2
        seen += [e.label for e in page.events]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [f"tag{n}" for n in reversed(range(5))]
    # Another inbox's key sees no such inbox.
    other: Api = apis(server.account().key)
    with pytest.raises(NotFoundError):
        other.client.inboxes.events.list(account.address)
