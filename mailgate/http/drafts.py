"""Drafts: /v0/inboxes/{inbox_id}/drafts, and to read them /v0/drafts and /v0/pods/{pod_id}/drafts
(the SDK's `client.inboxes.drafts`, `client.drafts` and `client.pods.drafts`).

A draft is a message in the inbox's Drafts mailbox flagged \\Draft, as Thunderbird and Apple
Mail keep theirs: one made here is in an IMAP client's Drafts at once, and one an IMAP client
saved there is listed, edited and sent here. Its id is its Message-ID, the same across updates:
an update composes the new version and puts it in place of the old one in one transaction
(Store.replace). Its Date is when it was first written (`created_at`), its arrival in Drafts
when its current version was saved (`updated_at`, which lists are ordered by); its labels are
its flags, as a message's are (delivery/labels.py), and it always has `draft`.

A reply draft (`in_reply_to`) takes its recipients, subject and threading from the message it
answers; a forward draft (`forward_of`) its subject and threading, and the source's body and
attachments are merged in when the draft is made (not when it is sent), so that an IMAP client
shows what will go out and attachments can be removed one by one. Bcc is kept in the draft's
header, as mail clients keep it. Two headers of mailgate's own keep what the SDK shows:
X-Mailgate-Forward-Of (`forward_of`) and X-Mailgate-Client-Id (`client_id`, which makes
creating idempotent: the draft's Message-ID is derived from it). Neither, nor Bcc, is sent.

Sending composes the draft again, as the inbox, with its Message-ID, and submits it through the
one door (http/outgoing.py, with a send's checks and errors); only then does it leave Drafts,
so a draft that cannot be sent stays. Scheduled sending (`send_at`) answers 501.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.policy
import hashlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel

from mailgate.delivery import labels
from mailgate.http import idempotency
from mailgate.http.caller import CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import FieldError, Invalid, NotFound, NotImplementedHere
from mailgate.http.fields import ClientId
from mailgate.http.inboxes import visible_inbox, visible_inboxes
from mailgate.http.mail import BIG_MESSAGE, Attachment, item, message, when
from mailgate.http.messages import AttachmentResponse, attachment_link, delete, position
from mailgate.http.outgoing import (
    Addresses,
    Outgoing,
    Recipients,
    SendAttachment,
    SendMessageResponse,
    addresses,
    attachments,
    build,
    send,
    write,
)
from mailgate.http.pagination import PageFields, PagingDep, keyset
from mailgate.http.pods import visible_pod
from mailgate.http.queries import listed
from mailgate.mime.addresses import domain_of
from mailgate.mime.apiview import attachments as attached
from mailgate.mime.apiview import texts
from mailgate.mime.compose import NamedAddress
from mailgate.mime.decoding import decode_words
from mailgate.mime.headers import first_fields, split_header
from mailgate.mime.reply import forward as forwarded
from mailgate.mime.reply import forward_subject, reattach
from mailgate.mime.reply import reply as replied
from mailgate.store.conversations import Criterion, Mail, Page, blob_message_id
from mailgate.store.records import DRAFT, DRAFTS, SEEN
from mailgate.store.records import Inbox as InboxRecord

FORWARD_OF = "X-Mailgate-Forward-Of"
CLIENT_ID = "X-Mailgate-Client-Id"
_OWN_FIELDS = {name.lower().encode(): name for name in (FORWARD_OF, CLIENT_ID)}
# What a draft is, for the store: a copy in Drafts flagged \Draft.
IS_DRAFT = Criterion("flag", DRAFT)
# What an update may change in a draft's content (labels change only its flags).
CONTENT = frozenset(
    {
        "to",
        "cc",
        "bcc",
        "reply_to",
        "subject",
        "text",
        "html",
        "add_attachments",
        "remove_attachments",
    }
)

Labels = str | list[str]


class DraftItem(BaseModel):
    """What a list shows of a draft (the SDK's DraftItem)."""

    inbox_id: str
    draft_id: str
    labels: list[str]
    to: list[str] | None = None
    cc: list[str] | None = None
    bcc: list[str] | None = None
    subject: str | None = None
    preview: str | None = None
    attachments: list[Attachment] | None = None
    in_reply_to: str | None = None
    forward_of: str | None = None
    updated_at: datetime


class Draft(DraftItem):
    """One draft, with its body (the SDK's Draft)."""

    client_id: str | None = None
    reply_to: list[str] | None = None
    text: str | None = None
    html: str | None = None
    references: list[str] | None = None
    created_at: datetime


class ListDraftsResponse(PageFields):
    drafts: list[DraftItem]


class CreateDraftRequest(Recipients):
    labels: Labels | None = None
    reply_to: Addresses | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[SendAttachment] | None = None
    in_reply_to: str | None = None
    forward_of: str | None = None
    reply_all: bool | None = None
    send_at: datetime | None = None
    client_id: ClientId | None = None


class UpdateDraftRequest(Recipients):
    reply_to: Addresses | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    add_attachments: list[SendAttachment] | None = None
    remove_attachments: list[str] | None = None
    add_labels: Labels | None = None
    remove_labels: Labels | None = None
    send_at: datetime | None = None


class SendDraftRequest(BaseModel):
    add_labels: Labels | None = None
    remove_labels: Labels | None = None


# ---------------------------------------------------------------------------------------------
# Reading: the same three routes under every tree


@dataclass(frozen=True, slots=True)
class Scope:
    """The inboxes a route reads drafts of, and the name its pages are tied to."""

    name: str
    inboxes: list[InboxRecord]

    @property
    def ids(self) -> list[int]:
        return [inbox.id for inbox in self.inboxes]


async def _everywhere(caller: CallerDep, services: ServicesDep) -> Scope:
    return Scope("drafts", await visible_inboxes(caller, services, None))


async def _in_pod(pod_id: str, caller: CallerDep, services: ServicesDep) -> Scope:
    pod = await visible_pod(caller, services, pod_id)
    return Scope(f"drafts:pod={pod.name}", await visible_inboxes(caller, services, pod))


async def _in_inbox(inbox_id: str, caller: CallerDep, services: ServicesDep) -> Scope:
    inbox = await visible_inbox(caller, services, None, inbox_id)
    return Scope(f"drafts:inbox={inbox.address}", [inbox])


def _reading(prefix: str, scope_of: Callable[..., Awaitable[Scope]]) -> APIRouter:
    routes = APIRouter(prefix=prefix, tags=["drafts"])
    # A default value, not an Annotated alias: FastAPI resolves string annotations in the
    # module's globals, where this function's `scope_of` is not.
    route_scope: Any = Depends(scope_of)

    @routes.get("", response_model_exclude_none=True)
    async def list_drafts(
        services: ServicesDep,
        paging: PagingDep,
        labels_filter: Annotated[list[str] | None, Query(alias="labels")] = None,
        before: datetime | None = None,
        after: datetime | None = None,
        ascending: bool = False,
        scope: Scope = route_scope,
    ) -> ListDraftsResponse:
        """Drafts, most recently saved first (`ascending`: oldest first)."""
        labels_filter = listed("labels", labels_filter)
        filters = f"{sorted(labels_filter)}:{before}:{after}:{ascending}"
        window = await paging.window(f"{scope.name}:{filters}")
        page = Page(
            mailboxes=frozenset({DRAFTS}),
            criteria=(IS_DRAFT, *labels.criteria(labels_filter)),
            before=None if before is None else int(before.timestamp()),
            after=None if after is None else int(after.timestamp()),
            ascending=ascending,
            limit=window.limit + 1,
            start=keyset(window),
        )
        found = await services.store.mail_page(scope.ids, page)
        shown = await paging.page(window, found, position, descending=not ascending)
        forwards = await _forwards(services, shown.items)
        return ListDraftsResponse(
            **shown.fields(),
            drafts=[_item(m, forwards.get(_place(m))) for m in shown.items],
        )

    @routes.get("/{draft_id}", response_model_exclude_none=True)
    async def get_draft(draft_id: str, services: ServicesDep, scope: Scope = route_scope) -> Draft:
        return await _draft(services, await _find(services, scope.ids, draft_id))

    @routes.get("/{draft_id}/attachments/{attachment_id}", response_model_exclude_none=True)
    async def get_attachment(
        draft_id: str,
        attachment_id: str,
        services: ServicesDep,
        request: Request,
        scope: Scope = route_scope,
    ) -> AttachmentResponse:
        mail = await _find(services, scope.ids, draft_id)
        return await attachment_link(services, request, mail, attachment_id)

    return routes


# ---------------------------------------------------------------------------------------------
# Writing: an inbox's drafts

writing = APIRouter(prefix="/v0/inboxes/{inbox_id}/drafts", tags=["drafts"])


@writing.post("", response_model_exclude_none=True)
async def create_draft(
    inbox_id: str,
    caller: CallerDep,
    services: ServicesDep,
    body: Annotated[CreateDraftRequest | None, Body()] = None,
) -> Draft:
    """A plain draft; a reply (`in_reply_to`, `reply_all`) or a forward (`forward_of`) of a
    message of the inbox. Given the `client_id` of an earlier create, the draft it made."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    body = body or CreateDraftRequest()
    _unscheduled(body.send_at)
    flags = _flags((SEEN,), _change(body.labels, None, fields=("labels", "labels")))
    message_id = None
    if body.client_id is not None:
        message_id = _client_message_id(inbox, body.client_id)
        earlier = await services.store.mail_by_ids([inbox.id], [message_id], _drafts())
        if earlier:
            return await _draft(services, earlier[0])
        if await services.store.mail_by_ids([inbox.id], [message_id]):
            raise Invalid.field("client_id", "the draft made with this client_id was sent")
    fields = dataclasses.replace(await _composition(services, inbox, body), message_id=message_id)
    composed = write(services, inbox, fields)
    drafts = await services.store.get_mailbox(inbox.id, DRAFTS)
    await services.store.append(drafts.id, _with_bcc(composed.raw, fields.bcc), flags=flags)
    return await _draft(services, await _find(services, [inbox.id], composed.message_id))


@writing.patch("/{draft_id}", response_model_exclude_none=True)
async def update_draft(
    inbox_id: str,
    draft_id: str,
    caller: CallerDep,
    services: ServicesDep,
    body: Annotated[UpdateDraftRequest, Body()],
) -> Draft:
    """Change what is given: a field given as null (or [] for recipients) is cleared;
    attachments are added and removed (by id), labels too."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    given = body.model_fields_set
    _unscheduled(body.send_at)
    change = _change(body.add_labels, body.remove_labels)
    # `send_at: null` un-schedules: nothing is ever scheduled here.
    if not given & CONTENT and change is None and "send_at" not in given:
        raise Invalid([FieldError((), "give a field to change")])
    mail = await _find(services, [inbox.id], draft_id)
    if given & CONTENT:
        raw = await services.store.blob(mail.blob_id)
        kept = await _off_loop(raw, _kept, mail, raw, given, body.remove_attachments or ())
        fields = _edited(kept, body)
        composed = write(services, inbox, fields)
        await services.store.replace(
            mail.copies[0].mailbox_id,
            [copy.uid for copy in mail.copies],
            _with_bcc(composed.raw, fields.bcc),
            flags=_flags(mail.copies[0].flags, change),
        )
        draft_id = composed.message_id
    elif change is not None:
        await labels.apply(services.store, mail, change)
    return await _draft(services, await _find(services, [inbox.id], draft_id))


@writing.delete("/{draft_id}", status_code=204)
async def delete_draft(
    inbox_id: str, draft_id: str, caller: CallerDep, services: ServicesDep
) -> Response:
    """The draft, for good."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    await delete(services, await _find(services, [inbox.id], draft_id))
    return Response(status_code=204)


@writing.post("/{draft_id}/send", response_model_exclude_none=True)
async def send_draft(
    inbox_id: str,
    draft_id: str,
    caller: CallerDep,
    services: ServicesDep,
    request: Request,
    body: Annotated[SendDraftRequest | None, Body()] = None,
) -> SendMessageResponse:
    """Send the draft as the inbox; it leaves Drafts once sent. `add_labels` and
    `remove_labels` label the message sent."""
    inbox = await visible_inbox(caller, services, None, inbox_id)
    body = body or SendDraftRequest()
    change = _change(body.add_labels, body.remove_labels, in_drafts=False)
    key = await idempotency.once(request)
    if (before := await idempotency.sent_before(services, inbox, key)) is not None:
        # Sent already; if the server stopped before the draft left Drafts, it leaves now.
        with contextlib.suppress(NotFound):
            await delete(services, await _find(services, [inbox.id], draft_id))
        return SendMessageResponse(message_id=before.message_id, thread_id=before.thread)
    mail = await _find(services, [inbox.id], draft_id)
    raw = await services.store.blob(mail.blob_id)
    kept = await _off_loop(raw, _kept, mail, raw, frozenset(), ())
    # Composed anew: now, and without mailgate's own headers.
    composed = build(services, inbox, dataclasses.replace(kept, headers={}, date=None))
    sent = await send(services, caller, request, inbox, composed, None, key)
    if change is not None:
        await labels.apply(services.store, sent, change)
    await delete(services, mail)
    return SendMessageResponse(message_id=sent.message_id, thread_id=sent.thread)


# An inbox's reading routes by name too: the MCP tools (http/mcp/tools.py) call their handlers.
inbox_reading = _reading("/v0/inboxes/{inbox_id}/drafts", _in_inbox)
router = APIRouter()
router.include_router(_reading("/v0/drafts", _everywhere))
router.include_router(_reading("/v0/pods/{pod_id}/drafts", _in_pod))
router.include_router(inbox_reading)
router.include_router(writing)


# ---------------------------------------------------------------------------------------------
# Drafts as the API shows them


def _drafts() -> Page:
    return Page(mailboxes=frozenset({DRAFTS}), criteria=(IS_DRAFT,))


async def _find(services: Services, inbox_ids: Sequence[int], draft_id: str) -> Mail:
    found = await services.store.mail_by_ids(inbox_ids, [draft_id], _drafts())
    if not found:
        raise NotFound(f"no draft {draft_id}")
    return found[0]


def _item(mail: Mail, forward_of: str | None) -> DraftItem:
    shown = item(mail)
    return DraftItem(
        inbox_id=shown.inbox_id,
        draft_id=shown.message_id,
        labels=shown.labels,
        to=shown.to or None,
        cc=shown.cc,
        bcc=shown.bcc,
        subject=shown.subject,
        preview=shown.preview,
        attachments=shown.attachments,
        in_reply_to=shown.in_reply_to,
        forward_of=forward_of,
        updated_at=shown.timestamp,
    )


async def _draft(services: Services, mail: Mail) -> Draft:
    shown = await message(services, mail)
    own = {name.lower(): value for name, value in (shown.headers or {}).items()}
    # A Date later than the draft's arrival is a client's clock, not its creation.
    created = mail.timestamp if mail.sent_date is None else min(mail.sent_date, mail.timestamp)
    return Draft(
        **_item(mail, own.get(FORWARD_OF.lower())).model_dump(),
        client_id=own.get(CLIENT_ID.lower()),
        reply_to=shown.reply_to,
        text=shown.text,
        html=shown.html,
        references=shown.references,
        created_at=when(created),
    )


def _place(mail: Mail) -> tuple[int, int]:
    return (mail.copies[0].mailbox_id, mail.copies[0].uid)


async def _forwards(services: Services, drafts: Iterable[Mail]) -> dict[tuple[int, int], str]:
    """The `forward_of` of the drafts of a list, by place: their headers, one query for each
    Drafts mailbox."""
    uids: dict[int, list[int]] = {}
    for mail in drafts:
        mailbox_id, uid = _place(mail)
        uids.setdefault(mailbox_id, []).append(uid)
    found = {}
    for mailbox_id, wanted in uids.items():
        rows = await services.store.fetch(mailbox_id, [(u, u) for u in wanted], ["header"])
        for row in rows:
            if value := _own_fields(row.header or b"").get(FORWARD_OF):
                found[(mailbox_id, row.uid)] = value
    return found


def _own_fields(header: bytes) -> dict[str, str]:
    """The values of mailgate's own fields (FORWARD_OF, CLIENT_ID) in a draft's header."""
    found = first_fields(header, frozenset(_OWN_FIELDS))
    return {_OWN_FIELDS[name]: decode_words(value) for name, value in found.items()}


# ---------------------------------------------------------------------------------------------
# Composing drafts


def _unscheduled(send_at: datetime | None) -> None:
    if send_at is not None:
        raise NotImplementedHere("scheduled sending (send_at) is not offered by mailgate")


def _change(
    add: Labels | None,
    remove: Labels | None,
    *,
    fields: tuple[str, str] = ("add_labels", "remove_labels"),
    in_drafts: bool = True,
) -> labels.LabelChange | None:
    """The label change asked for, if any; 400 naming a label that cannot be set (on a draft,
    spam and trash too: it stays in Drafts)."""
    adding = [add] if isinstance(add, str) else add or []
    removing = [remove] if isinstance(remove, str) else remove or []
    if not adding and not removing:
        return None
    field = fields[0] if adding else fields[1]
    try:
        change = labels.plan(adding, removing)
    except labels.InvalidLabel as exc:
        raise Invalid.field(field, str(exc)) from None
    if in_drafts and change.move_to is not None:
        raise Invalid.field(field, "a draft stays in Drafts: delete it, or send it")
    return change


def _flags(current: Iterable[str], change: labels.LabelChange | None) -> tuple[str, ...]:
    """A draft's flags: `current` with `change` made, and always \\Draft."""
    flags = dict.fromkeys([*current, DRAFT])
    if change is not None:
        flags.update(dict.fromkeys(change.add_flags))
        for flag in change.remove_flags:
            flags.pop(flag, None)
    return tuple(flags)


def _client_message_id(inbox: InboxRecord, client_id: str) -> str:
    """The Message-ID of the inbox's draft made with `client_id`: the same for every repeat."""
    digest = hashlib.sha256(f"{inbox.address}\n{client_id}".encode()).hexdigest()[:32]
    return f"<draft.{digest}@{domain_of(inbox.address)}>"


async def _composition(
    services: Services, inbox: InboxRecord, body: CreateDraftRequest
) -> Outgoing:
    """The new draft's fields: the request's, and a reply's or a forward's."""
    if body.in_reply_to is not None and body.forward_of is not None:
        raise Invalid.field("forward_of", "a draft replies (in_reply_to) or forwards, not both")
    if body.reply_all and body.in_reply_to is None:
        raise Invalid.field("reply_all", "reply_all needs the message replied to (in_reply_to)")
    own = Outgoing(
        to=addresses(body.to, "to"),
        cc=addresses(body.cc, "cc"),
        bcc=addresses(body.bcc, "bcc"),
        reply_to=addresses(body.reply_to, "reply_to"),
        subject=body.subject,
        text=body.text,
        html=body.html,
        attachments=attachments(body.attachments),
        headers={} if body.client_id is None else {CLIENT_ID: body.client_id},
    )
    if body.in_reply_to is not None:
        if body.reply_all:
            given = [name for name in ("to", "cc", "bcc") if getattr(body, name) is not None]
            if given:
                why = "a reply_all draft is addressed to the whole thread"
                raise Invalid([FieldError((name,), why) for name in given])
        original = await _source(services, inbox, body.in_reply_to)
        raw = await services.store.blob(original.blob_id)
        answer = replied(raw, inbox.address, reply_all=bool(body.reply_all))
        return dataclasses.replace(
            own,
            to=own.to if body.to is not None else answer.to,
            cc=own.cc if body.cc is not None else answer.cc,
            subject=body.subject if body.subject is not None else answer.subject,
            in_reply_to=answer.in_reply_to,
            references=answer.references,
        )
    if body.forward_of is not None:
        original = await _source(services, inbox, body.forward_of)
        raw = await services.store.blob(original.blob_id)
        quoted = forwarded(raw, text=body.text, html=body.html)
        return dataclasses.replace(
            own,
            subject=body.subject or forward_subject(original.subject),
            text=quoted.text,
            html=quoted.html,
            attachments=quoted.attachments + own.attachments,
            # A forward is threaded with its source, and is no reply (no In-Reply-To).
            references=replied(raw, inbox.address).references,
            headers={**own.headers, FORWARD_OF: original.message_id},
        )
    return own


async def _source(services: Services, inbox: InboxRecord, message_id: str) -> Mail:
    """The message a draft replies to or forwards: one of the inbox's, not a draft."""
    found = await services.store.mail_by_ids(
        [inbox.id], [message_id], Page(exclude=frozenset({DRAFTS}))
    )
    if not found:
        raise NotFound(f"no message {message_id} in {inbox.address}")
    return found[0]


async def _off_loop(raw: bytes, work: Callable[..., Outgoing], *args: Any) -> Outgoing:
    """`work(*args)`, in a worker thread when it decodes a big message."""
    if len(raw) > BIG_MESSAGE:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _kept(mail: Mail, raw: bytes, replaced: Collection[str], drop: Sequence[str]) -> Outgoing:
    """The stored draft as fields to compose it again, but for the attachments in `drop` and
    the addresses in `replaced` (given anew: not read, so that a draft an IMAP client wrote
    with a bad address can be mended)."""

    def read(field: str, values: tuple[str, ...]) -> tuple[NamedAddress, ...]:
        return () if field in replaced else addresses(list(values), field)

    found = attached(raw)
    known = {info.attachment_id for info, _ in found}
    unknown = [
        FieldError(("remove_attachments", i), f"no attachment {a}")
        for i, a in enumerate(drop)
        if a not in known
    ]
    if unknown:
        raise Invalid(unknown)
    text, html = texts(raw)
    return Outgoing(
        to=read("to", mail.to),
        cc=read("cc", mail.cc),
        bcc=read("bcc", mail.bcc),
        reply_to=read("reply_to", mail.reply_to),
        subject=mail.subject,
        text=text,
        html=html,
        attachments=tuple(
            reattach(info, data) for info, data in found if info.attachment_id not in drop
        ),
        headers=_own_fields(split_header(raw)[0]),
        in_reply_to=mail.in_reply_to,
        references=mail.references,
        # A draft without a Message-ID of its own (named by its blob) is given one.
        message_id=None if mail.message_id == blob_message_id(mail.blob_id) else mail.message_id,
        date=None if mail.sent_date is None else when(mail.sent_date),
    )


def _edited(kept: Outgoing, body: UpdateDraftRequest) -> Outgoing:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for field in ("to", "cc", "bcc", "reply_to"):
        if field in given:
            changes[field] = addresses(getattr(body, field), field)
    for field in ("subject", "text", "html"):
        if field in given:
            changes[field] = getattr(body, field)
    added = attachments(body.add_attachments)
    return dataclasses.replace(kept, **changes, attachments=kept.attachments + added)


def _with_bcc(raw: bytes, bcc: Sequence[NamedAddress]) -> bytes:
    """A draft's bytes with its Bcc field, which compose() leaves out (it writes what is sent)
    and a draft keeps, as mail clients keep it. compose() has checked the addresses."""
    if not bcc:
        return raw
    field = EmailMessage(policy=email.policy.SMTP)
    field["Bcc"] = [Address(display_name=a.name or "", addr_spec=a.address) for a in bcc]
    return field.as_bytes().partition(b"\r\n\r\n")[0] + b"\r\n" + raw
