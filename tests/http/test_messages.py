"""Messages over the HTTP API, driven by the agentmail SDK: send, list, get, labels, raw and
attachments through their download links, reply, reply-all and forward; and the same mail seen
over IMAP, live, both ways. Every answer is checked against the SDK's own model."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import httpx
import pytest
from agentmail import MessageRejectedError, NotFoundError, ValidationError
from agentmail.attachments import AttachmentResponse, SendAttachment
from agentmail.core.api_error import ApiError
from agentmail.messages import (
    ListMessagesResponse,
    Message,
    RawMessageResponse,
    SendMessageResponse,
    UpdateMessageResponse,
)

from mailgate.http.downloads import PURPOSE as DOWNLOAD_PURPOSE
from mailgate.http.signing import seal
from mailgate.store.records import Parcel, Target
from tests.harness import DOMAIN, Account, Server
from tests.http.sdk import NO_RETRIES, Api, username
from tests.smtp.helpers import read_mailbox
from tests.transcript import Transcript

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def pair(org: Api, pod: str, server: Server, apis: Callable[[str], Api]) -> tuple[Api, Api]:
    """Two inboxes of one pod, each with a client holding a key for that inbox only."""
    clients = []
    for _ in range(2):
        inbox = org.client.pods.inboxes.create(pod, username=username(), domain=DOMAIN)
        clients.append((inbox.inbox_id, apis(server.inbox_key(inbox.inbox_id))))
    (a, api_a), (b, api_b) = clients
    api_a.address, api_b.address = a, b  # type: ignore[attr-defined]
    return api_a, api_b


def address(api: Api) -> str:
    return str(api.address)  # type: ignore[attr-defined]


def account(api: Api) -> Account:
    return Account(address(api), api.key)


def send(api: Api, to: str | list[str], **fields: object) -> SendMessageResponse:
    sent = api.client.inboxes.messages.send(address(api), to=to, **fields)  # type: ignore[arg-type]
    return api.valid(SendMessageResponse, sent)


def test_send_to_another_inbox_and_read_it_over_the_api_and_imap(
    server: Server, pair: tuple[Api, Api]
) -> None:
    a, b = pair
    sent = send(
        a,
        address(b),
        subject="Quarterly numbers",
        text="Numbers attached.",
        html="<p>Numbers <b>attached</b>.</p>",
        attachments=[
            SendAttachment(
                filename="chart.png",
                content_type="image/png",
                content=base64.b64encode(PNG).decode(),
            )
        ],
    )
    assert sent.message_id.startswith("<")
    assert sent.thread_id

    listed = b.valid(ListMessagesResponse, b.client.inboxes.messages.list(address(b)))
    (first,) = listed.messages
    assert first.message_id == sent.message_id
    assert first.from_ == address(a)
    assert first.to == [address(b)]
    assert first.subject == "Quarterly numbers"
    assert set(first.labels) >= {"received", "unread"}
    assert first.preview == "Numbers attached."

    got = b.valid(Message, b.client.inboxes.messages.get(address(b), sent.message_id))
    assert got.text is not None
    assert got.text.strip() == "Numbers attached."
    assert got.html is not None
    assert "<b>attached</b>" in got.html
    (attachment,) = got.attachments or []
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "chart.png",
        "image/png",
        len(PNG),
    )
    # The same mail over IMAP: in b's INBOX, and the sender's copy in a's Sent.
    (stored,) = read_mailbox(server, account(b))
    assert stored.header("Message-ID") == [sent.message_id]
    assert any("with HTTP" in r for r in stored.header("Received"))
    (sent_copy,) = read_mailbox(server, account(a), "Sent")
    assert "\\Seen" in sent_copy.flags
    a_view = a.client.inboxes.messages.get(address(a), sent.message_id)
    assert "sent" in a_view.labels
    assert "read" in a_view.labels


def test_an_attachment_without_a_content_type_gets_its_filenames(
    server: Server, pair: tuple[Api, Api]
) -> None:
    """As agentmail-toolkit sends every attachment: its schema has no content_type."""
    a, b = pair
    names = ["invoice.pdf", "Order.DOCX", "notes.txt", "blob", "archive.tar.gz"]
    sent = send(
        a,
        address(b),
        subject="Files",
        text="Files.",
        attachments=[{"filename": n, "content": base64.b64encode(b"x").decode()} for n in names],
    )
    got = b.client.inboxes.messages.get(address(b), sent.message_id)
    assert [(x.filename, x.content_type) for x in got.attachments or []] == [
        ("invoice.pdf", "application/pdf"),
        ("Order.DOCX", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("notes.txt", "text/plain"),
        ("blob", "application/octet-stream"),
        ("archive.tar.gz", "application/octet-stream"),
    ]
    (stored,) = read_mailbox(server, account(b))
    assert b"Content-Type: application/pdf" in stored.raw


def test_download_links_for_the_raw_message_and_an_attachment(
    server: Server, pair: tuple[Api, Api]
) -> None:
    a, b = pair
    sent = send(
        a,
        address(b),
        subject="With a file",
        text="see file",
        attachments=[
            SendAttachment(
                filename="a.png", content_type="image/png", content=base64.b64encode(PNG).decode()
            )
        ],
    )
    message = b.client.inboxes.messages.get(address(b), sent.message_id)
    (attachment,) = message.attachments or []
    raw = b.valid(
        RawMessageResponse, b.client.inboxes.messages.get_raw(address(b), sent.message_id)
    )
    body = httpx.get(raw.download_url)  # no API key
    assert body.status_code == 200
    assert b"Subject: With a file" in body.content
    assert raw.size == len(body.content)
    link = b.valid(
        AttachmentResponse,
        b.client.inboxes.messages.get_attachment(
            address(b), sent.message_id, attachment.attachment_id
        ),
    )
    got = httpx.get(link.download_url)
    assert (got.status_code, got.content) == (200, PNG)
    assert got.headers["content-type"] == "image/png"
    assert link.expires_at.timestamp() > time.time()
    # An edited link opens nothing, and an expired one is gone.
    token = link.download_url.rsplit("/", 1)[1]
    edited = link.download_url[: -len(token)] + token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert httpx.get(edited).status_code == 404
    key = server.call(server.store.secret("tokens"))
    (mail,) = server.call(
        server.store.mail_by_ids(
            [server.call(server.store.get_inbox(address(b))).id], [sent.message_id]
        )
    )
    old = seal(key, DOWNLOAD_PURPOSE, {"i": mail.inbox_id, "b": mail.blob_id, "a": None, "e": 1})
    assert httpx.get(f"{server.api_url}/v0/downloads/{old}").status_code == 410


def test_reply_reply_all_and_forward_stay_in_the_thread(
    server: Server, pair: tuple[Api, Api], org: Api, pod: str
) -> None:
    a, b = pair
    third = org.client.pods.inboxes.create(pod, username=username(), domain=DOMAIN).inbox_id
    first = send(a, address(b), cc=third, subject="Lunch?", text="Tuesday?")
    answer = b.valid(
        SendMessageResponse,
        b.client.inboxes.messages.reply(address(b), first.message_id, text="Yes!"),
    )
    in_a = a.valid(Message, a.client.inboxes.messages.get(address(a), answer.message_id))
    assert in_a.subject == "Re: Lunch?"
    assert in_a.in_reply_to == first.message_id
    assert in_a.thread_id == first.thread_id  # a's thread: its own message and the reply
    assert in_a.extracted_text is not None
    assert in_a.extracted_text.strip() == "Yes!"
    everyone = b.client.inboxes.messages.reply_all(address(b), first.message_id, text="All in")
    to_all = a.client.inboxes.messages.get(address(a), everyone.message_id)
    assert to_all.to == [address(a)]
    assert to_all.cc == [third]

    forwarded = a.valid(
        SendMessageResponse,
        a.client.inboxes.messages.forward(
            address(a), answer.message_id, to=third, text="FYI, see below."
        ),
    )
    got = org.client.inboxes.messages.get(third, forwarded.message_id)
    assert got.subject == "Fwd: Re: Lunch?"
    assert got.text is not None
    assert "Forwarded message" in got.text
    assert "Yes!" in got.text


def test_labels_are_imap_flags_and_folders_both_ways(server: Server, pair: tuple[Api, Api]) -> None:
    a, b = pair
    sent = send(a, address(b), subject="Invoice", text="Pay me.")
    messages = b.client.inboxes.messages
    updated = b.valid(
        UpdateMessageResponse,
        messages.update(
            address(b),
            sent.message_id,
            add_labels=["starred", "invoices"],
            remove_labels=["unread"],
        ),
    )
    assert set(updated.labels) >= {"received", "read", "starred", "invoices"}
    (stored,) = read_mailbox(server, account(b), with_bodies=False)
    assert {"\\Seen", "\\Flagged", "invoices"} <= stored.flags
    # And back: an IMAP client marks it unread and removes the star.
    with Transcript.login(server, account(b)) as imap:
        imap.ok("SELECT INBOX")
        imap.ok("STORE 1 -FLAGS (\\Seen \\Flagged)")
    labels = messages.get(address(b), sent.message_id).labels
    assert "unread" in labels
    assert "starred" not in labels
    # Trash is a folder: the message moves, and lists leave it out unless asked.
    messages.update(address(b), sent.message_id, add_labels="trash")
    assert read_mailbox(server, account(b), with_bodies=False) == []
    assert len(read_mailbox(server, account(b), "Trash", with_bodies=False)) == 1
    assert messages.list(address(b)).messages == []
    assert len(messages.list(address(b), include_trash=True).messages) == 1
    with pytest.raises(ValidationError):
        messages.update(address(b), sent.message_id, add_labels=["sent"])
    with pytest.raises(ValidationError):
        messages.update(address(b), sent.message_id, add_labels=["two words"])


def test_lists_filtered_by_labels(pair: tuple[Api, Api]) -> None:
    a, b = pair
    plain = send(a, address(b), subject="Plain", text="1")
    marked = send(a, address(b), subject="Marked", text="2")
    messages = b.client.inboxes.messages
    messages.update(
        address(b), marked.message_id, add_labels=["starred", "invoices"], remove_labels=["unread"]
    )

    def ids(**filters: object) -> set[str]:
        return {m.message_id for m in messages.list(address(b), **filters).messages}

    # The SDK sends the list as one JSON array; every label given must be there.
    assert ids(labels=["starred"]) == {marked.message_id}
    assert ids(labels=["starred", "invoices"]) == {marked.message_id}
    assert ids(labels=["unread"]) == {plain.message_id}
    assert ids(labels=["received"]) == {plain.message_id, marked.message_id}
    assert ids(labels=["starred", "nothing-here"]) == set()
    # Other clients repeat the parameter: the same filter.
    repeated = b.raw(
        "GET", f"/v0/inboxes/{address(b)}/messages", params=[("labels", "starred")] * 2
    )
    assert [m["message_id"] for m in repeated.json()["messages"]] == [marked.message_id]
    assert b.raw("GET", f"/v0/inboxes/{address(b)}/messages?labels=[1]").status_code == 400
    # Threads filter the same way.
    threads = b.client.inboxes.threads.list(address(b), labels=["invoices"]).threads
    assert [t.subject for t in threads] == ["Marked"]


def test_paging_through_250_messages(server: Server, pair: tuple[Api, Api]) -> None:
    _, b = pair

    async def fill() -> None:
        inbox = await server.store.get_inbox(address(b))
        box = await server.store.get_mailbox(inbox.id, "INBOX")
        await server.store.deliver(
            [
                Parcel(
                    f"From: x@elsewhere.test\r\nSubject: n{n}\r\n"
                    f"Message-ID: <p{n}.{inbox.id}@elsewhere.test>\r\n\r\nhi\r\n".encode(),
                    (Target(box.id),),
                )
                for n in range(250)
            ]
        )

    server.call(fill())
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = b.valid(
            ListMessagesResponse,
            b.client.inboxes.messages.list(address(b), limit=50, page_token=token),
        )
        pages += 1
        seen += [m.message_id for m in page.messages]
        token = page.next_page_token
        if token is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)) == 250
    # The SDK maps no 400 on this list to ValidationError: the body still says what was wrong.
    with pytest.raises(ApiError) as refused:
        b.client.inboxes.messages.list(address(b), limit=50, page_token="x.y")
    assert refused.value.status_code == 400
    assert refused.value.body["errors"][0]["path"] == ["page_token"]


def test_send_to_an_idn_by_its_u_labels(server: Server, pair: tuple[Api, Api]) -> None:
    """An IDN recipient domain is the domain of its A-labels: the mail reaches the inbox
    there, addressed by them (the API writes ASCII header fields)."""
    a, _ = pair
    there = server.account(f"{username()}@例え.jp")
    assert there.address.endswith("@xn--r8jz45g.jp")
    send(a, there.address.replace("xn--r8jz45g.jp", "例え.jp"), subject="IDN", text="x")
    [stored] = read_mailbox(server, there)
    assert f"To: {there.address}\r\n".encode() in stored.raw


def test_refusals(server: Server, pair: tuple[Api, Api], org: Api) -> None:
    a, b = pair
    messages = a.client.inboxes.messages
    with pytest.raises(NotFoundError):
        messages.get(address(a), "<nope@example.test>")
    with pytest.raises(NotFoundError):  # an inbox key sees only its inbox
        messages.list(address(b))
    with pytest.raises(ValidationError) as bad:
        messages.send(address(a), to="not an address", text="x")
    assert [e["path"] for e in bad.value.body.errors] == [["to"]]
    # SMTP with SMTPUTF8 sends to UTF-8 addresses; the API does not, and says so.
    with pytest.raises(ValidationError) as bad:
        messages.send(address(a), to=f"δοκιμή@{DOMAIN}", text="x")
    [error] = bad.value.body.errors
    assert error["path"] == ["to[0]"]
    assert "the API sends to ASCII addresses only" in error["message"]
    with pytest.raises(MessageRejectedError):
        messages.send(address(a), to=f"nobody-{username()}@{DOMAIN}", text="x")
    with pytest.raises(ValidationError):
        messages.send(
            address(a),
            to=address(b),
            attachments=[SendAttachment(filename="x", content="%%% not base64")],
        )
    with pytest.raises(ApiError) as unauthorized:
        Api(server, "mgk_nope_nope").client.inboxes.messages.list(address(a))
    assert unauthorized.value.status_code == 401
    # Nothing was stored by the refused sends.
    assert read_mailbox(server, account(a), "Sent", with_bodies=False) == []
    too_big = "x" * (server.settings.smtp.max_message_size + 1)
    with pytest.raises(ApiError) as large:
        messages.send(address(a), to=address(b), text=too_big, request_options=NO_RETRIES)
    assert large.value.status_code == 413
