"""Threads over the HTTP API, driven by the agentmail SDK: a conversation of sends and replies is
one thread in each inbox, listed at the inbox, pod and organization levels, read page by page,
relabelled and deleted as a whole. Every answer is checked against the SDK's own model."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from agentmail import NotFoundError
from agentmail.attachments import AttachmentResponse, SendAttachment
from agentmail.threads import ListThreadsResponse, Thread, UpdateThreadResponse

from tests.harness import DOMAIN, Account, Server
from tests.http.sdk import Api, username
from tests.smtp.helpers import read_mailbox


@pytest.fixture
def people(org: Api, pod: str, server: Server, apis: Callable[[str], Api]) -> tuple[str, str, Api]:
    """Two inboxes of a new pod, and a pod key's client."""
    a, b = (
        org.client.pods.inboxes.create(pod, username=username(), domain=DOMAIN).inbox_id
        for _ in range(2)
    )
    return a, b, apis(server.pod_key(pod))


def conversation(api: Api, a: str, b: str) -> tuple[str, list[str]]:
    """a writes to b, b answers, a answers again: (a's thread id, the message ids in order)."""
    messages = api.client.inboxes.messages
    first = messages.send(
        a,
        to=b,
        subject="Plan",
        text="Shall we?",
        attachments=[
            SendAttachment(
                filename="p.txt",
                content_type="text/plain",
                content=base64.b64encode(b"plan").decode(),
            )
        ],
    )
    second = messages.reply(b, first.message_id, text="Yes.")
    third = messages.reply(a, second.message_id, text="Good.")
    return first.thread_id, [first.message_id, second.message_id, third.message_id]


def test_a_conversation_is_one_thread_in_each_inbox(people: tuple[str, str, Api]) -> None:
    a, b, api = people
    thread_id, ids = conversation(api, a, b)
    threads = api.valid(ListThreadsResponse, api.client.inboxes.threads.list(a)).threads
    assert [t.thread_id for t in threads] == [thread_id]
    (listed,) = threads
    assert listed.message_count == 3
    assert listed.last_message_id == ids[2]
    assert listed.subject == "Plan"
    assert set(listed.senders) == {a, b}
    assert set(listed.labels) >= {"sent", "received"}
    assert listed.sent_timestamp is not None
    assert listed.received_timestamp is not None
    # In b's inbox it is a thread of its own, with b's own id.
    (b_thread,) = api.client.inboxes.threads.list(b).threads
    assert b_thread.thread_id != thread_id
    assert b_thread.message_count == 3
    # Every message names its thread.
    for message_id in ids:
        assert api.client.inboxes.messages.get(a, message_id).thread_id == thread_id


def test_reading_a_thread_page_by_page(people: tuple[str, str, Api]) -> None:
    a, b, api = people
    thread_id, ids = conversation(api, a, b)
    first = api.valid(Thread, api.client.inboxes.threads.get(a, thread_id, limit=2))
    # The newest messages first, each page in ascending time.
    assert [m.message_id for m in first.messages] == ids[1:]
    assert first.count == 2
    assert first.next_page_token is not None
    rest = api.client.inboxes.threads.get(a, thread_id, limit=2, page_token=first.next_page_token)
    assert [m.message_id for m in rest.messages] == ids[:1]
    assert rest.next_page_token is None
    assert rest.messages[0].text is not None


def test_threads_at_the_pod_and_organization_levels(
    people: tuple[str, str, Api], org: Api, pod: str, server: Server
) -> None:
    a, b, api = people
    thread_id, _ = conversation(api, a, b)
    in_pod = api.valid(ListThreadsResponse, api.client.pods.threads.list(pod)).threads
    assert thread_id in {t.thread_id for t in in_pod}
    assert len(in_pod) == 2  # a's and b's
    everywhere = org.valid(ListThreadsResponse, org.client.threads.list(limit=100))
    assert thread_id in {t.thread_id for t in everywhere.threads}
    assert org.valid(Thread, org.client.threads.get(thread_id)).thread_id == thread_id
    # Another pod's key sees none of it.
    other = f"pod-other-{username()}"
    org.client.pods.create(name=other)
    outsider = Api(server, server.pod_key(other))
    try:
        assert outsider.client.threads.list().threads == []
        with pytest.raises(NotFoundError):
            outsider.client.threads.get(thread_id)
    finally:
        outsider.close()


def test_labels_and_attachments_of_a_thread(people: tuple[str, str, Api], server: Server) -> None:
    a, b, api = people
    thread_id, _ = conversation(api, a, b)
    thread = api.client.inboxes.threads.get(a, thread_id)
    (attachment,) = thread.attachments or []
    link = api.valid(
        AttachmentResponse,
        api.client.inboxes.threads.get_attachment(a, thread_id, attachment.attachment_id),
    )
    assert link.filename == "p.txt"
    updated = api.valid(
        UpdateThreadResponse,
        api.client.inboxes.threads.update(a, thread_id, add_labels=["project-x", "read"]),
    )
    assert "project-x" in updated.labels
    assert "unread" not in updated.labels
    # Over IMAP (a pod key opens the pod's inboxes), every message of it has the keyword.
    for mailbox in ("INBOX", "Sent"):
        stored = read_mailbox(server, Account(a, api.key), mailbox, with_bodies=False)
        assert stored
        assert all("project-x" in m.flags for m in stored)
    api.client.inboxes.threads.delete(a, thread_id)
    with pytest.raises(NotFoundError):
        api.client.inboxes.threads.get(a, thread_id)
    assert api.client.inboxes.threads.list(a).threads == []
