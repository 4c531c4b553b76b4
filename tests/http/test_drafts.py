"""Drafts over the HTTP API, driven by the agentmail SDK: create (plain, reply, forward,
idempotent), get, list (top level, pod, inbox), update, send and delete; and the same drafts in
the Drafts mailbox IMAP clients see, both ways. Every answer is checked against the SDK's model.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from agentmail import MessageRejectedError, NotFoundError, ValidationError
from agentmail.attachments import AttachmentResponse, SendAttachment
from agentmail.core.api_error import ApiError
from agentmail.drafts import Draft, ListDraftsResponse
from agentmail.inboxes.drafts.client import DraftsClient
from agentmail.messages import Message, SendMessageResponse

from tests.harness import DOMAIN, Account, Server
from tests.http.sdk import NO_RETRIES, Api, username
from tests.smtp.helpers import read_mailbox
from tests.transcript import Transcript

PDF = b"%PDF-1.4 not really\n"
CSV = b"a,b\n1,2\n"


@dataclass
class Inbox:
    address: str
    api: Api  # with a key for this inbox only

    @property
    def account(self) -> Account:
        return Account(self.address, self.api.key)

    @property
    def drafts(self) -> DraftsClient:
        return self.api.client.inboxes.drafts


@pytest.fixture
def inboxes(org: Api, pod: str, server: Server, apis: Callable[[str], Api]) -> list[Inbox]:
    """Three inboxes of one pod."""
    made = []
    for _ in range(3):
        address = org.client.pods.inboxes.create(pod, username=username(), domain=DOMAIN).inbox_id
        made.append(Inbox(address, apis(server.inbox_key(address))))
    return made


def attachment(name: str, data: bytes, content_type: str) -> SendAttachment:
    return SendAttachment(
        filename=name, content_type=content_type, content=base64.b64encode(data).decode()
    )


def create(inbox: Inbox, **fields: object) -> Draft:
    return inbox.api.valid(Draft, inbox.drafts.create(inbox.address, **fields))  # type: ignore[arg-type]


def get(inbox: Inbox, draft_id: str) -> Draft:
    return inbox.api.valid(Draft, inbox.drafts.get(inbox.address, draft_id))


def listed(api: Api, result: ListDraftsResponse) -> list[str]:
    return [d.draft_id for d in api.valid(ListDraftsResponse, result).drafts]


def test_create_get_list_update_and_delete(
    server: Server, org: Api, pod: str, inboxes: list[Inbox]
) -> None:
    a, b, c = inboxes
    draft = create(
        a,
        to=b.address,
        cc=[f"Carol <{c.address}>"],
        bcc=c.address,
        subject="Quarterly plan",
        text="Draft of the plan.",
        html="<p>Draft of the <b>plan</b>.</p>",
        attachments=[attachment("plan.pdf", PDF, "application/pdf")],
        labels=["todo"],
    )
    assert draft.draft_id.startswith("<")
    assert draft.inbox_id == a.address
    assert (draft.to, draft.cc, draft.bcc) == ([b.address], [f"Carol <{c.address}>"], [c.address])
    assert draft.subject == "Quarterly plan"
    assert draft.text is not None
    assert draft.text.strip() == "Draft of the plan."
    assert draft.html is not None
    assert "<b>plan</b>" in draft.html
    assert draft.preview == "Draft of the plan."
    assert set(draft.labels) >= {"draft", "todo"}
    (pdf,) = draft.attachments or []
    assert (pdf.filename, pdf.size) == ("plan.pdf", len(PDF))
    assert draft.send_status is None
    assert draft.send_at is None
    assert draft.created_at <= draft.updated_at

    # The same draft in the Drafts mailbox IMAP clients see.
    (stored,) = read_mailbox(server, a.account, "Drafts")
    assert {"\\Draft", "\\Seen", "todo"} <= stored.flags
    assert stored.header("Message-ID") == [draft.draft_id]
    assert stored.header("Bcc") == [c.address]
    assert get(a, draft.draft_id).subject == "Quarterly plan"

    # Listed at the inbox, in the pod and at the top, with each key that sees it; never
    # among the inbox's messages.
    assert listed(a.api, a.drafts.list(a.address)) == [draft.draft_id]
    assert draft.draft_id in listed(org, org.client.pods.drafts.list(pod))
    assert draft.draft_id in listed(org, org.client.drafts.list(limit=100))
    assert listed(a.api, a.api.client.drafts.list()) == [draft.draft_id]
    assert listed(a.api, a.drafts.list(a.address, labels=["todo"])) == [draft.draft_id]
    assert listed(a.api, a.drafts.list(a.address, labels=["urgent"])) == []
    assert a.api.client.inboxes.messages.list(a.address).messages == []
    assert org.valid(Draft, org.client.pods.drafts.get(pod, draft.draft_id)).subject
    assert a.api.valid(Draft, a.api.client.drafts.get(draft.draft_id)).draft_id == draft.draft_id
    link = a.api.valid(
        AttachmentResponse,
        a.drafts.get_attachment(a.address, draft.draft_id, pdf.attachment_id),
    )
    assert httpx.get(link.download_url).content == PDF
    top = a.api.client.drafts.get_attachment(draft.draft_id, pdf.attachment_id)
    assert httpx.get(top.download_url).content == PDF

    # Update: the subject, the recipients, an attachment swapped, the labels; same id.
    updated = a.api.valid(
        Draft,
        a.drafts.update(
            a.address,
            draft.draft_id,
            subject="Quarterly plan, v2",
            to=[c.address],
            bcc=[],
            remove_attachments=[pdf.attachment_id],
            add_attachments=[attachment("numbers.csv", CSV, "text/csv")],
            add_labels=["urgent"],
            remove_labels=["todo"],
        ),
    )
    assert updated.draft_id == draft.draft_id
    assert (updated.subject, updated.to, updated.bcc) == ("Quarterly plan, v2", [c.address], None)
    assert updated.cc == draft.cc  # not given: unchanged
    assert updated.text == draft.text
    assert [x.filename for x in updated.attachments or []] == ["numbers.csv"]
    assert "urgent" in updated.labels
    assert "todo" not in updated.labels
    assert updated.created_at == draft.created_at
    assert updated.updated_at >= draft.updated_at
    (stored,) = read_mailbox(server, a.account, "Drafts")  # one version, the new one
    assert stored.header("Subject") == ["Quarterly plan, v2"]
    assert stored.header("Bcc") == []
    assert {"\\Draft", "urgent"} <= stored.flags
    assert "todo" not in stored.flags
    # Null clears a field; labels alone change flags, not the message.
    cleared = a.api.valid(Draft, a.drafts.update(a.address, draft.draft_id, cc=None, html=None))
    assert (cleared.cc, cleared.html) == (None, None)
    (before,) = read_mailbox(server, a.account, "Drafts")
    a.drafts.update(a.address, draft.draft_id, add_labels=["starred"])
    (flagged,) = read_mailbox(server, a.account, "Drafts")
    assert (flagged.uid, flagged.raw) == (before.uid, before.raw)
    assert "\\Flagged" in flagged.flags
    assert "starred" in get(a, draft.draft_id).labels

    a.drafts.delete(a.address, draft.draft_id)
    with pytest.raises(NotFoundError):
        a.drafts.get(a.address, draft.draft_id)
    assert read_mailbox(server, a.account, "Drafts") == []


def test_send_leaves_drafts_and_arrives(server: Server, inboxes: list[Inbox]) -> None:
    a, b, c = inboxes
    draft = create(a, to=b.address, bcc=c.address, subject="Almost", text="Sent from a draft.")
    assert a.drafts.update(a.address, draft.draft_id, subject="Ready").bcc == [c.address]
    with Transcript.login(server, a.account) as imap:
        assert b"* 1 EXISTS" in imap.ok("SELECT Drafts").untagged
        sent = a.api.valid(
            SendMessageResponse,
            a.drafts.send(a.address, draft.draft_id, add_labels=["from-draft"]),
        )
        # The IMAP session watching Drafts sees the draft leave.
        assert imap.ok("NOOP").lines(b"EXPUNGE") == [b"* 1 EXPUNGE"]
    assert sent.message_id == draft.draft_id
    with pytest.raises(NotFoundError):
        a.drafts.get(a.address, draft.draft_id)
    # In the recipients' INBOX (the Bcc recipient too, without a Bcc field), and in Sent.
    for recipient in (b, c):
        (arrived,) = read_mailbox(server, recipient.account)
        assert arrived.header("Message-ID") == [sent.message_id]
        assert arrived.header("Bcc") == []
    (copy,) = read_mailbox(server, a.account, "Sent")
    assert copy.header("Subject") == ["Ready"]
    got = a.api.valid(Message, a.api.client.inboxes.messages.get(a.address, sent.message_id))
    assert got.thread_id == sent.thread_id
    assert {"sent", "from-draft"} <= set(got.labels)
    assert got.text is not None
    assert got.text.strip() == "Sent from a draft."


def test_a_draft_an_imap_client_saved_is_listed_and_sent(
    server: Server, inboxes: list[Inbox]
) -> None:
    a, b, _ = inboxes
    message_id = f"<{uuid.uuid4().hex}@{DOMAIN}>"
    saved = (
        f"From: {a.address}\r\nTo: {b.address}\r\nSubject: Written in Thunderbird\r\n"
        f"Date: Tue, 01 Dec 2020 08:00:00 +0000\r\nMessage-ID: {message_id}\r\n"
        "X-Mozilla-Draft-Info: internal/draft; vcard=0\r\n\r\nHello from a mail client.\r\n"
    ).encode()
    not_a_draft = saved.replace(message_id.encode(), b"<other." + message_id[1:].encode())
    with Transcript.login(server, a.account) as imap:
        imap.ok("APPEND Drafts (\\Draft \\Seen) \x00", saved)
        imap.ok("APPEND Drafts (\\Seen) \x00", not_a_draft)  # no \Draft: not a draft
    assert listed(a.api, a.drafts.list(a.address)) == [message_id]
    draft = get(a, message_id)
    assert (draft.subject, draft.to) == ("Written in Thunderbird", [b.address])
    assert draft.created_at == datetime(2020, 12, 1, 8, 0, tzinfo=UTC)
    assert draft.text is not None
    assert draft.text.strip() == "Hello from a mail client."

    sent = a.api.valid(SendMessageResponse, a.drafts.send(a.address, message_id))
    (arrived,) = read_mailbox(server, b.account)
    assert arrived.header("Message-ID") == [sent.message_id] == [message_id]
    assert arrived.header("X-Mozilla-Draft-Info") == []
    assert b"Hello from a mail client." in arrived.raw
    # Only the message that was no draft is left in Drafts.
    (left,) = read_mailbox(server, a.account, "Drafts")
    assert "\\Draft" not in left.flags


def test_reply_and_forward_drafts(server: Server, inboxes: list[Inbox]) -> None:
    a, b, c = inboxes
    first = a.api.client.inboxes.messages.send(
        a.address,
        to=b.address,
        cc=c.address,
        subject="Lunch?",
        text="Tuesday?",
        attachments=[attachment("menu.pdf", PDF, "application/pdf")],
    )
    reply = create(b, in_reply_to=first.message_id, text="Maybe")
    assert (reply.to, reply.cc, reply.subject) == ([a.address], None, "Re: Lunch?")
    reply = b.api.valid(Draft, b.drafts.update(b.address, reply.draft_id, text="Yes!"))
    assert reply.in_reply_to == first.message_id
    assert reply.references == [first.message_id]
    everyone = create(b, in_reply_to=first.message_id, reply_all=True, text="All in")
    assert (everyone.to, everyone.cc) == ([a.address], [c.address])

    sent = b.api.valid(SendMessageResponse, b.drafts.send(b.address, reply.draft_id))
    in_a = a.api.client.inboxes.messages.get(a.address, sent.message_id)
    assert in_a.thread_id == first.thread_id  # threaded with the original
    assert in_a.in_reply_to == first.message_id
    mine = b.api.client.inboxes.messages.get(b.address, first.message_id)
    assert sent.thread_id == mine.thread_id

    forward = create(c, forward_of=first.message_id, to=a.address, text="FYI")
    forward = c.api.valid(Draft, c.drafts.update(c.address, forward.draft_id, to=b.address))
    assert forward.forward_of == first.message_id
    assert forward.in_reply_to is None
    assert forward.subject == "Fwd: Lunch?"
    assert forward.text is not None
    assert "FYI" in forward.text
    assert "Forwarded message" in forward.text
    assert [x.filename for x in forward.attachments or []] == ["menu.pdf"]
    (item,) = c.api.valid(ListDraftsResponse, c.drafts.list(c.address)).drafts
    assert item.forward_of == first.message_id
    forwarded = c.api.valid(SendMessageResponse, c.drafts.send(c.address, forward.draft_id))
    got = b.api.client.inboxes.messages.get(b.address, forwarded.message_id)
    assert got.subject == "Fwd: Lunch?"
    assert [x.filename for x in got.attachments or []] == ["menu.pdf"]
    assert not any(k.lower().startswith("x-mailgate") for k in got.headers or {})


def test_paging_through_drafts(org: Api, pod: str, inboxes: list[Inbox]) -> None:
    a, b, c = inboxes
    made = [create(x, subject=f"n{n}").draft_id for n, x in enumerate([a, b, c, a, b])]
    seen: list[str] = []
    token = None
    while True:
        page = org.valid(
            ListDraftsResponse, org.client.pods.drafts.list(pod, limit=2, page_token=token)
        )
        seen += [d.draft_id for d in page.drafts]
        token = page.next_page_token
        if token is None:
            break
    assert sorted(seen) == sorted(made)
    first = org.client.pods.drafts.list(pod, limit=2)
    assert first.next_page_token is not None
    # A token pages the list it came from, not another.
    with pytest.raises(ApiError) as other:
        org.client.drafts.list(limit=2, page_token=first.next_page_token)
    assert other.value.status_code == 400


def test_client_id_makes_creating_idempotent(inboxes: list[Inbox]) -> None:
    a, b, _ = inboxes
    first = create(a, to=b.address, subject="Once", client_id="job-17")
    again = create(a, to=b.address, subject="Once more", client_id="job-17")
    assert again.draft_id == first.draft_id
    assert (again.subject, again.client_id) == ("Once", "job-17")
    assert listed(a.api, a.drafts.list(a.address)) == [first.draft_id]
    other = create(a, to=b.address, subject="Other", client_id="job-18")
    assert other.draft_id != first.draft_id
    a.drafts.send(a.address, first.draft_id)
    with pytest.raises(ValidationError) as sent:
        a.drafts.create(a.address, to=b.address, client_id="job-17")
    assert [e["path"] for e in sent.value.body.errors] == [["client_id"]]


def test_refusals(server: Server, org: Api, inboxes: list[Inbox]) -> None:
    a, b, _ = inboxes
    drafts = a.drafts
    received = b.api.client.inboxes.messages.send(b.address, to=a.address, text="hi")

    def refused(**fields: object) -> list[list[str | int]]:
        with pytest.raises(ValidationError) as bad:
            drafts.create(a.address, **fields)  # type: ignore[arg-type]
        return [e["path"] for e in bad.value.body.errors]

    assert refused(in_reply_to=received.message_id, forward_of=received.message_id) == [
        ["forward_of"]
    ]
    assert refused(in_reply_to=received.message_id, reply_all=True, to=b.address) == [["to"]]
    assert refused(reply_all=True) == [["reply_all"]]
    assert refused(to="not an address") == [["to"]]
    assert refused(labels=["draft"]) == [["labels"]]
    assert refused(labels=["trash"]) == [["labels"]]
    with pytest.raises(NotFoundError):
        drafts.create(a.address, in_reply_to="<nope@example.test>")
    with pytest.raises(ApiError) as scheduled:
        drafts.create(
            a.address, to=b.address, send_at=datetime.now(UTC), request_options=NO_RETRIES
        )
    assert scheduled.value.status_code == 501
    assert "send_at" in scheduled.value.body["message"]
    assert read_mailbox(server, a.account, "Drafts") == []

    draft = create(a, subject="No one yet")
    with pytest.raises(ApiError) as later:
        drafts.update(
            a.address, draft.draft_id, send_at=datetime.now(UTC), request_options=NO_RETRIES
        )
    assert later.value.status_code == 501
    with pytest.raises(ValidationError) as unknown:
        drafts.update(a.address, draft.draft_id, remove_attachments=["9"])
    assert [e["path"] for e in unknown.value.body.errors] == [["remove_attachments", 0]]
    with pytest.raises(ValidationError):
        drafts.update(a.address, draft.draft_id)
    # A draft that cannot be sent stays, and the error is a send's.
    with pytest.raises(ValidationError) as nobody:
        drafts.send(a.address, draft.draft_id)
    assert [e["path"] for e in nobody.value.body.errors] == [["to"]]
    drafts.update(a.address, draft.draft_id, to=f"nobody-{username()}@{DOMAIN}")
    with pytest.raises(MessageRejectedError):
        drafts.send(a.address, draft.draft_id)
    assert get(a, draft.draft_id).subject == "No one yet"
    assert read_mailbox(server, a.account, "Sent") == []

    # Out of a key's scope is 404, as if it did not exist.
    with pytest.raises(NotFoundError):
        b.drafts.get(a.address, draft.draft_id)
    with pytest.raises(NotFoundError):
        b.api.client.drafts.get(draft.draft_id)
    assert listed(b.api, b.api.client.drafts.list()) == []
    other_pod = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=other_pod)
    with pytest.raises(NotFoundError):
        org.client.pods.drafts.get(other_pod, draft.draft_id)
    other = Api(server, server.pod_key(other_pod))
    try:
        with pytest.raises(NotFoundError):
            other.client.drafts.get(draft.draft_id)
        with pytest.raises(NotFoundError):
            other.client.drafts.get_attachment(draft.draft_id, "2")
        assert listed(other, other.client.drafts.list()) == []
    finally:
        other.close()
