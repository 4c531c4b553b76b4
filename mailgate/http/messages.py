"""Messages: /v0/inboxes/{inbox_id}/messages (the SDK's `client.inboxes.messages`).

A message is one stored message of the inbox, in whichever of its mailboxes IMAP clients see
it (store/conversations.py), named by its Message-ID; its labels are those mailboxes and its
flags (delivery/labels.py), so a label set here is an IMAP flag or folder at once, and the
reverse. Lists leave out Spam and Trash unless asked (`include_spam`, `include_trash`), and
drafts always (they are the drafts resource). Sending, replying and forwarding go through the
one door SMTP submission uses too (http/outgoing.py). Deleting a message removes every copy
of it from the inbox for good (as IMAP's \\Deleted and EXPUNGE): to keep it, label it `trash`.
Search (store/search.py, http/search.py) leaves out Spam, Trash and drafts always.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field

from mailgate.delivery import labels
from mailgate.http import idempotency
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.downloads import link
from mailgate.http.errors import Invalid, NotFound
from mailgate.http.inboxes import visible_inbox
from mailgate.http.mail import Attachment, Message, MessageItem, item, message
from mailgate.http.outgoing import (
    Addresses,
    Outgoing,
    SendFields,
    SendMessageRequest,
    SendMessageResponse,
    addresses,
    attachments,
    build,
    check_fields,
    outgoing,
    send,
)
from mailgate.http.pagination import PageFields, PagingDep, Window, keyset
from mailgate.http.queries import listed
from mailgate.http.search import (
    MAX_QUERY,
    Highlighter,
    Highlights,
    bodies,
    fingerprint,
    off_the_loop_if_big,
    query_terms,
)
from mailgate.mime.apiview import attachments_from_json
from mailgate.mime.reply import forward as forwarded
from mailgate.mime.reply import forward_subject
from mailgate.mime.reply import reply as replied
from mailgate.store.conversations import Mail, Page
from mailgate.store.records import DELETED, DRAFTS, SPAM, TRASH, Inbox
from mailgate.store.search import Found, Search

router = APIRouter(prefix="/v0/inboxes/{inbox_id}/messages", tags=["messages"])

MAX_BATCH = 100


class ListMessagesResponse(PageFields):
    messages: list[MessageItem]


class SearchMessageItem(MessageItem):
    highlights: Highlights | None = None


class SearchMessagesResponse(PageFields):
    messages: list[SearchMessageItem]  # best first


class UpdateMessageRequest(BaseModel):
    add_labels: str | list[str] | None = None
    remove_labels: str | list[str] | None = None


class UpdateMessageResponse(BaseModel):
    message_id: str
    labels: list[str]


class BatchGetRequest(BaseModel):
    message_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class BatchGetResponse(BaseModel):
    limit: int
    count: int
    messages: list[Message]


class BatchUpdateRequest(UpdateMessageRequest):
    message_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class BatchUpdateResponse(BaseModel):
    limit: int
    count: int
    updates: list[UpdateMessageResponse]


class AttachmentResponse(Attachment):
    download_url: str
    expires_at: datetime


class RawMessageResponse(BaseModel):
    message_id: str
    size: int
    download_url: str
    expires_at: datetime


class ReplyRequest(SendFields):
    to: Addresses | None = None
    cc: Addresses | None = None
    bcc: Addresses | None = None
    reply_all: bool | None = None


class ForwardRequest(SendMessageRequest):
    pass


def mail_page(
    *,
    labels_filter: list[str] | None = None,
    include_spam: bool = False,
    include_trash: bool = False,
    before: datetime | None = None,
    after: datetime | None = None,
    ascending: bool = False,
    limit: int,
    start: tuple[int, int] | None = None,
    matching: tuple[tuple[str, str], ...] = (),
) -> Page:
    """The store's page for the SDK's list filters (messages and threads alike)."""
    exclude = {DRAFTS}
    if not include_spam:
        exclude.add(SPAM)
    if not include_trash:
        exclude.add(TRASH)
    # A label asking for Spam or Trash includes them, as the hosted service does.
    for label in labels_filter or ():
        exclude.discard(labels.MAILBOX_OF.get(label.casefold(), ""))
    return Page(
        exclude=frozenset(exclude),
        criteria=labels.criteria(labels_filter or ()),
        before=None if before is None else int(before.timestamp()),
        after=None if after is None else int(after.timestamp()),
        ascending=ascending,
        limit=limit,
        start=start,
        matching=matching,
    )


def substrings(
    sender: list[str] | None, recipients: list[str] | None, subject: list[str] | None
) -> tuple[tuple[str, str], ...]:
    """The store's substring filters for the list parameters that ask for them (named as the
    SDK names them); each value given must match."""
    given = (
        ("sender", "from", sender),
        ("recipients", "to", recipients),
        ("subject", "subject", subject),
    )
    return tuple(
        (field, value)
        for field, name, values in given
        for value in listed(name, values)
        if value.strip()
    )


@router.get("", response_model_exclude_none=True)
async def list_messages(
    inbox_id: str,
    caller: CallerDep,
    services: ServicesDep,
    paging: PagingDep,
    labels_filter: Annotated[list[str] | None, Query(alias="labels")] = None,
    before: datetime | None = None,
    after: datetime | None = None,
    ascending: bool = False,
    include_spam: bool = False,
    include_blocked: bool = False,
    include_unauthenticated: bool = False,
    include_trash: bool = False,
    sender: Annotated[list[str] | None, Query(alias="from")] = None,
    to: Annotated[list[str] | None, Query()] = None,
    subject: Annotated[list[str] | None, Query()] = None,
) -> ListMessagesResponse:
    """The inbox's messages, newest first (`ascending`: oldest first); `from`, `to` (any
    recipient) and `subject` keep those that hold each value given, in any case."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    labels_filter = listed("labels", labels_filter)
    matching = substrings(sender, to, subject)
    listing = (
        f"messages:{inbox.id}:{sorted(labels_filter or [])}:{before}:{after}:{ascending}:"
        f"{include_spam}:{include_trash}"
    )
    if matching:
        listing += f":{fingerprint(matching)}"
    window = await paging.window(listing)
    start = keyset(window)
    page = mail_page(
        labels_filter=labels_filter,
        include_spam=include_spam,
        include_trash=include_trash,
        before=before,
        after=after,
        ascending=ascending,
        limit=window.limit + 1,
        start=start,
        matching=matching,
    )
    found = await services.store.mail_page([inbox.id], page)
    shown = await paging.page(window, found, position, descending=not ascending)
    return ListMessagesResponse(**shown.fields(), messages=[item(m) for m in shown.items])


@router.get("/search", response_model_exclude_none=True)
async def search_messages(
    inbox_id: str,
    caller: CallerDep,
    services: ServicesDep,
    paging: PagingDep,
    q: Annotated[str, Query(max_length=MAX_QUERY)],
    before: datetime | None = None,
    after: datetime | None = None,
) -> SearchMessagesResponse:
    """The inbox's messages that match `q`, best first, each with where it matched: every word
    (or "quoted phrase") must be part of the sender, a recipient or the subject, or be words of
    the body. Spam, Trash and drafts are left out."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    terms = query_terms(q)
    window = await paging.window(f"messages/search:{fingerprint(inbox.id, terms, before, after)}")
    search = searching(terms, before, after, window)
    found = await services.store.search_mail([inbox.id], search)
    shown = await paging.page(window, found, ranked, descending=True)
    texts = await bodies(services, shown.items)
    highlighter = Highlighter(terms)

    def results() -> list[SearchMessageItem]:
        return [
            SearchMessageItem(
                **item(f.item).model_dump(),
                highlights=highlighter.highlights(
                    [f.item.from_] if f.item.from_ else [],
                    [*f.item.to, *f.item.cc, *f.item.bcc],
                    [f.item.subject] if f.item.subject else [],
                    texts.get(f.body_of) if f.body_of else None,
                ),
            )
            for f in shown.items
        ]

    return SearchMessagesResponse(
        **shown.fields(), messages=await off_the_loop_if_big(texts, results)
    )


def searching(
    terms: tuple[str, ...], before: datetime | None, after: datetime | None, window: Window
) -> Search:
    """The store's search for a page of results (messages and threads alike): never in Spam,
    Trash or Drafts."""
    start = window.after
    if start is not None and (len(start) != 3 or not all(isinstance(v, int) for v in start)):
        raise Invalid.field("page_token", "not a valid page token: it pages another list")
    return Search(
        terms=terms,
        exclude=frozenset({DRAFTS, SPAM, TRASH}),
        before=None if before is None else int(before.timestamp()),
        after=None if after is None else int(after.timestamp()),
        limit=window.limit + 1,
        start=None if start is None else (int(start[0]), int(start[1]), int(start[2])),
    )


def ranked(found: Found[object]) -> tuple[int, int, int]:
    """Where a result is in a search's pages: the store's rank."""
    return found.position


@router.post("/batch-get", response_model_exclude_none=True)
async def batch_get(
    inbox_id: str, caller: CallerDep, services: ServicesDep, request: BatchGetRequest
) -> BatchGetResponse:
    """Up to 100 messages by id, in the order asked, without their bodies; unknown ids are
    left out."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    found = await services.store.mail_by_ids([inbox.id], request.message_ids, _everywhere())
    return BatchGetResponse(
        limit=len(request.message_ids),
        count=len(found),
        messages=[Message(**item(m).model_dump()) for m in found],
    )


@router.post("/batch-update", response_model_exclude_none=True)
async def batch_update(
    inbox_id: str, caller: CallerDep, services: ServicesDep, request: BatchUpdateRequest
) -> BatchUpdateResponse:
    inbox = await visible_inbox(caller, services, None, inbox_id)
    change = relabel_plan(request)
    found = await services.store.mail_by_ids([inbox.id], request.message_ids, _everywhere())
    updates = []
    for mail in found:
        updates.append(await _relabel(services, mail, change))
    return BatchUpdateResponse(limit=len(request.message_ids), count=len(updates), updates=updates)


@router.post("/send", response_model_exclude_none=True)
async def send_message(
    inbox_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: Request,
    body: Annotated[SendMessageRequest, Body()],
) -> SendMessageResponse:
    """Send as the inbox: to, cc and bcc, subject, text and/or html, attachments (base64)."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    check_fields(body)
    key = await idempotency.once(request)
    if (before := await idempotency.sent_before(services, inbox, key)) is not None:
        return SendMessageResponse(message_id=before.message_id, thread_id=before.thread)
    composed = build(services, inbox, outgoing(body))
    sent = await send(services, caller, request, inbox, composed, body.labels, key)
    return SendMessageResponse(message_id=sent.message_id, thread_id=sent.thread)


@router.get("/{message_id}", response_model_exclude_none=True)
async def get_message(
    inbox_id: str, message_id: str, caller: CallerDep, services: ServicesDep
) -> Message:
    inbox = await visible_inbox(caller, services, None, inbox_id)
    return await message(services, await _one(services, inbox, message_id))


@router.patch("/{message_id}", response_model_exclude_none=True)
async def update_message(
    inbox_id: str,
    message_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: UpdateMessageRequest,
) -> UpdateMessageResponse:
    """Add and remove labels: flags and folders, as IMAP clients see them at once."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    change = relabel_plan(request)
    return await _relabel(services, await _one(services, inbox, message_id), change)


@router.delete("/{message_id}", status_code=204)
async def delete_message(
    inbox_id: str, message_id: str, caller: CallerDep, services: ServicesDep
) -> Response:
    """The message, from every mailbox of the inbox, for good."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    await delete(services, await _one(services, inbox, message_id))
    return Response(status_code=204)


@router.get("/{message_id}/raw")
async def get_raw(
    inbox_id: str, message_id: str, caller: CallerDep, services: ServicesDep, request: Request
) -> RawMessageResponse:
    """A link to the message as it is stored (an .eml), valid for an hour without a key."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    mail = await _one(services, inbox, message_id)
    url, expires = link(request, await services.token_key(), mail, None)
    return RawMessageResponse(
        message_id=mail.message_id, size=mail.size, download_url=url, expires_at=expires
    )


@router.get("/{message_id}/attachments/{attachment_id}", response_model_exclude_none=True)
async def get_attachment(
    inbox_id: str,
    message_id: str,
    attachment_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: Request,
) -> AttachmentResponse:
    inbox = await visible_inbox(caller, services, None, inbox_id)
    mail = await _one(services, inbox, message_id)
    return await attachment_link(services, request, mail, attachment_id)


async def attachment_link(
    services: Services, request: Request, mail: Mail, attachment_id: str
) -> AttachmentResponse:
    """An attachment's metadata and a link to its bytes (messages, threads and drafts)."""
    for info in attachments_from_json(mail.attachments):
        if info.attachment_id == attachment_id:
            url, expires = link(request, await services.token_key(), mail, attachment_id)
            return AttachmentResponse(
                attachment_id=info.attachment_id,
                filename=info.filename,
                size=info.size,
                content_type=info.content_type,
                content_disposition=info.content_disposition,
                content_id=info.content_id,
                download_url=url,
                expires_at=expires,
            )
    raise NotFound(f"message {mail.message_id} has no attachment {attachment_id}")


@router.post("/{message_id}/reply", response_model_exclude_none=True)
async def reply(
    inbox_id: str,
    message_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: Request,
    body: Annotated[ReplyRequest, Body()],
) -> SendMessageResponse:
    """Answer the sender (`reply_all`: everyone), in the same thread."""
    return await _answer(inbox_id, message_id, caller, services, request, body, body.reply_all)


@router.post("/{message_id}/reply-all", response_model_exclude_none=True)
async def reply_all(
    inbox_id: str,
    message_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: Request,
    body: Annotated[SendFields, Body()],
) -> SendMessageResponse:
    return await _answer(
        inbox_id, message_id, caller, services, request, ReplyRequest(**body.model_dump()), True
    )


@router.post("/{message_id}/forward", response_model_exclude_none=True)
async def forward(
    inbox_id: str,
    message_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: Request,
    body: Annotated[ForwardRequest, Body()],
) -> SendMessageResponse:
    """Forward the message, its attachments included, below the request's text and html."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    check_fields(body)
    key = await idempotency.once(request)
    if (before := await idempotency.sent_before(services, inbox, key)) is not None:
        return SendMessageResponse(message_id=before.message_id, thread_id=before.thread)
    original = await _one(services, inbox, message_id)
    quoted = forwarded(await services.store.blob(original.blob_id), text=body.text, html=body.html)
    fields = outgoing(body)
    composed = build(
        services,
        inbox,
        dataclasses.replace(
            fields,
            subject=body.subject or forward_subject(original.subject),
            text=quoted.text,
            html=quoted.html,
            attachments=quoted.attachments + fields.attachments,
        ),
    )
    sent = await send(services, caller, request, inbox, composed, body.labels, key)
    return SendMessageResponse(message_id=sent.message_id, thread_id=sent.thread)


async def _answer(
    inbox_id: str,
    message_id: str,
    caller: Caller,
    services: Services,
    request: Request,
    body: ReplyRequest,
    everyone: bool | None,
) -> SendMessageResponse:
    inbox = await visible_inbox(caller, services, None, inbox_id)
    check_fields(body)
    key = await idempotency.once(request)
    if (before := await idempotency.sent_before(services, inbox, key)) is not None:
        return SendMessageResponse(message_id=before.message_id, thread_id=before.thread)
    original = await _one(services, inbox, message_id)
    raw = await services.store.blob(original.blob_id)
    answer = replied(raw, inbox.address, reply_all=bool(everyone))
    given = body.model_fields_set
    composed = build(
        services,
        inbox,
        Outgoing(
            to=addresses(body.to, "to") if "to" in given else answer.to,
            cc=addresses(body.cc, "cc") if "cc" in given else answer.cc,
            bcc=addresses(body.bcc, "bcc"),
            reply_to=addresses(body.reply_to, "reply_to"),
            subject=answer.subject,
            text=body.text,
            html=body.html,
            attachments=attachments(body.attachments),
            headers=dict(body.headers or {}),
            in_reply_to=answer.in_reply_to,
            references=answer.references,
        ),
    )
    sent = await send(services, caller, request, inbox, composed, body.labels, key)
    return SendMessageResponse(message_id=sent.message_id, thread_id=sent.thread)


async def delete(services: Services, mail: Mail) -> None:
    """Every copy of `mail`, for good: \\Deleted, then expunged (only those UIDs)."""
    for copy in mail.copies:
        uids = [(copy.uid, copy.uid)]
        await services.store.store_flags(copy.mailbox_id, uids, "+", [DELETED])
        await services.store.expunge(copy.mailbox_id, uids)


async def _one(services: Services, inbox: Inbox, message_id: str) -> Mail:
    found = await services.store.mail_by_ids([inbox.id], [message_id], _everywhere())
    if not found:
        raise NotFound(f"no message {message_id} in {inbox.address}")
    return found[0]


def _everywhere() -> Page:
    """Where a message named by its id is looked for: every mailbox but Drafts."""
    return Page(exclude=frozenset({DRAFTS}))


def relabel_plan(request: UpdateMessageRequest) -> labels.LabelChange:
    add = [request.add_labels] if isinstance(request.add_labels, str) else request.add_labels
    remove = (
        [request.remove_labels] if isinstance(request.remove_labels, str) else request.remove_labels
    )
    if not add and not remove:
        raise Invalid.field("add_labels", "give add_labels or remove_labels")
    try:
        return labels.plan(add or [], remove or [])
    except labels.InvalidLabel as exc:
        raise Invalid.field("add_labels" if add else "remove_labels", str(exc)) from None


async def _relabel(
    services: Services, mail: Mail, change: labels.LabelChange
) -> UpdateMessageResponse:
    await labels.apply(services.store, mail, change)
    (now,) = await services.store.mail_by_ids([mail.inbox_id], [mail.message_id], _everywhere())
    return UpdateMessageResponse(message_id=now.message_id, labels=labels.labels_of(now))


def position(mail: Mail) -> tuple[int, int]:
    """Where a message is in a list of mail (messages, drafts): the store's page key."""
    return (mail.timestamp, mail.blob_id)
