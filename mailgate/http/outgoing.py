"""Sending over the API: the SDK's send fields (to, cc, bcc, reply_to, subject, text, html,
attachments, headers, labels) made into a message by mime/compose.py and submitted through the
one door every protocol sends by (delivery/submission.py), as the logged-in inbox: the same
checks, trace headers, Sent copy, local delivery and outbound queue as SMTP submission.
An attachment without a content type gets its filename's (`type_of`).

What mailgate does not do answers 501 naming it: attachments by URL (the server would fetch
what a client names, and has no business reaching the internet for it) and open tracking.
Everything else wrong is a 400 naming the field, a sender that is not the inbox or a recipient
at one of our domains that does not exist a 403 (the SDK's MessageRejectedError), a message
over `[smtp] max_message_size` a 413; nothing is stored then.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from fastapi import Request
from pydantic import BaseModel

from mailgate.auth import Principal
from mailgate.delivery import labels
from mailgate.delivery.submission import (
    SenderNotAuthorized,
    SendingRateExceeded,
    UnknownRecipients,
)
from mailgate.delivery.trace import Origin
from mailgate.http import idempotency
from mailgate.http.caller import Caller
from mailgate.http.context import Services
from mailgate.http.errors import (
    ContentTooLarge,
    FieldError,
    Forbidden,
    Invalid,
    NotImplementedHere,
    RateLimited,
)
from mailgate.http.idempotency import Once
from mailgate.mime.addresses import InvalidAddress, address_list, normalize_address
from mailgate.mime.compose import Attachment, Composed, NamedAddress, compose
from mailgate.store.conversations import Mail
from mailgate.store.errors import AlreadySent, OverQuota
from mailgate.store.records import Inbox


class MessageRejected(Forbidden):
    name = "MessageRejectedError"


Addresses = str | list[str]


class SendAttachment(BaseModel):
    filename: str | None = None
    content_type: str | None = None
    content_disposition: str | None = None
    content_id: str | None = None
    content: str | None = None  # base64
    url: str | None = None


class SendFields(BaseModel):
    """What every way of sending shares (send, reply, reply-all, forward, a draft)."""

    labels: list[str] | None = None
    reply_to: Addresses | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[SendAttachment] | None = None
    headers: dict[str, str] | None = None
    track_opens: bool | None = None


class Recipients(BaseModel):
    to: Addresses | None = None
    cc: Addresses | None = None
    bcc: Addresses | None = None


class SendMessageRequest(SendFields, Recipients):
    subject: str | None = None


class SendMessageResponse(BaseModel):
    message_id: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to compose: the request's fields, with what a reply or forward adds."""

    to: tuple[NamedAddress, ...]
    cc: tuple[NamedAddress, ...]
    bcc: tuple[NamedAddress, ...]
    reply_to: tuple[NamedAddress, ...]
    subject: str | None
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    headers: dict[str, str]
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    message_id: str | None = None  # a draft's own, kept when it is saved again or sent
    date: datetime.datetime | None = None  # None: now


def addresses(value: Addresses | None, field: str) -> tuple[NamedAddress, ...]:
    """`value` ("Name <addr>", "addr", or a list of them) as addresses; 400 naming `field`."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    found: list[NamedAddress] = []
    for index, text in enumerate(items):
        if "\r" in text or "\n" in text:
            raise Invalid.field(field, f"address {index} holds a line break")
        parsed = address_list(f"To: {text}\r\n".encode(), "To")
        if len(parsed) != 1:
            raise Invalid.field(field, f"{text!r} is not one address")
        name, address = parsed[0]
        try:
            # A recipient is not an inbox: a UTF-8 local part is read, for compose to refuse
            # with the API's reason.
            address = normalize_address(address, utf8=True)
        except InvalidAddress as exc:
            raise Invalid.field(field, str(exc)) from None
        found.append(NamedAddress(address, name or None))
    return tuple(found)


# The type of an attachment sent without one, by its filename's extension: Python's own table,
# not the machine's /etc/mime.types, so that every installation agrees, with the Office formats
# that table has only from Python 3.13. Anything else is application/octet-stream.
_TYPES = mimetypes.MimeTypes()
for _extension, _type in (
    (".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
):
    _TYPES.add_type(_type, _extension)


def type_of(filename: str | None) -> str:
    """The content type a file named `filename` has, as far as its extension says."""
    extension = PurePosixPath(filename or "").suffix.lower()
    strict, loose = _TYPES.types_map
    return strict.get(extension) or loose.get(extension) or "application/octet-stream"


def attachments(items: Sequence[SendAttachment] | None) -> tuple[Attachment, ...]:
    found = []
    for index, item in enumerate(items or ()):
        field = f"attachments.{index}"
        if item.url is not None:
            raise NotImplementedHere(
                "attachments by url: mailgate does not fetch them; send `content` (base64)"
            )
        if item.content is None:
            raise Invalid.field(f"{field}.content", "give the attachment's content, in base64")
        try:
            data = base64.b64decode(item.content, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid.field(f"{field}.content", "not valid base64") from None
        inline = item.content_disposition == "inline"
        found.append(
            Attachment(
                filename=item.filename or "",
                content_type=item.content_type or type_of(item.filename),
                data=data,
                content_id=item.content_id,
                inline=inline and item.content_id is not None,
            )
        )
    return tuple(found)


def outgoing(request: SendMessageRequest) -> Outgoing:
    """The message a send request describes."""
    return Outgoing(
        to=addresses(request.to, "to"),
        cc=addresses(request.cc, "cc"),
        bcc=addresses(request.bcc, "bcc"),
        reply_to=addresses(request.reply_to, "reply_to"),
        subject=request.subject,
        text=request.text,
        html=request.html,
        attachments=attachments(request.attachments),
        headers=dict(request.headers or {}),
    )


def check_fields(fields: SendFields) -> None:
    if fields.track_opens:
        raise NotImplementedHere("open tracking (track_opens) is not offered by mailgate")
    if fields.labels:
        try:
            labels.plan(fields.labels, [])
        except labels.InvalidLabel as exc:
            raise Invalid.field("labels", str(exc)) from None


def build(services: Services, inbox: Inbox, message: Outgoing) -> Composed:
    """The message's bytes, as `inbox` sends it; 400 naming what compose() refuses."""
    if not (message.to or message.cc or message.bcc):
        raise Invalid.field("to", "give at least one recipient (to, cc or bcc)")
    limit = services.settings.smtp.max_recipients
    if len(message.to) + len(message.cc) + len(message.bcc) > limit:
        raise Invalid.field("to", f"at most {limit} recipients (to, cc and bcc together)")
    return write(services, inbox, message)


def write(services: Services, inbox: Inbox, message: Outgoing) -> Composed:
    """The message's bytes as `inbox` writes it, to send or to keep as a draft (which may have
    no recipient yet); 400 naming what compose() refuses, 413 over the size limit."""
    try:
        composed = compose(
            sender=NamedAddress(inbox.address, inbox.display_name),
            hostname=services.settings.server.hostname,
            to=message.to,
            cc=message.cc,
            bcc=message.bcc,
            reply_to=message.reply_to,
            subject=message.subject,
            text=message.text,
            html=message.html,
            attachments=message.attachments,
            headers=message.headers,
            in_reply_to=message.in_reply_to,
            references=message.references,
            message_id=message.message_id,
            date=message.date,
        )
    except ValueError as exc:
        raise Invalid([_compose_error(exc)]) from None
    size = services.settings.smtp.max_message_size
    if len(composed.raw) > size:
        raise ContentTooLarge(f"the message is {len(composed.raw)} bytes; at most {size}")
    return composed


async def send(
    services: Services,
    caller: Caller,
    request: Request,
    inbox: Inbox,
    composed: Composed,
    label_names: Sequence[str] | None,
    key: Once | None,
) -> Mail:
    """Submit the message as `inbox` and label its Sent copy; the message as the inbox sees it.
    With an idempotency `key` already used, the message it sent (idempotency.py)."""
    principal = Principal(inbox, caller.key.id)
    tls = request.scope.get("extensions", {}).get("tls")
    client = request.client.host if request.client is not None else "unknown"
    origin = Origin.http(ip=client, tls="TLS" if tls or request.url.scheme == "https" else None)
    try:
        await services.submission.submit(
            principal,
            composed.raw,
            composed.recipients,
            origin,
            idempotency=None if key is None else (key.key, key.fingerprint),
        )
    except AlreadySent as exc:  # the same key, sent a moment ago by a request running beside
        assert key is not None
        return await idempotency.replay(services, inbox, key, exc.message_id, exc.fingerprint)
    except SenderNotAuthorized as exc:
        raise MessageRejected(f"sender not authorized: {exc}") from None
    except SendingRateExceeded as exc:
        raise RateLimited(str(exc), exc.retry_after) from None
    except UnknownRecipients as exc:
        raise MessageRejected(f"no such recipient here: {', '.join(exc.addresses)}") from None
    except OverQuota as exc:
        # As SMTP's 552 5.2.2, for the whole message: an API send has one answer.
        raise MessageRejected(
            f"mailbox full: {', '.join(exc.addresses)} over its storage quota"
        ) from None
    except InvalidAddress as exc:
        raise Invalid.field("to", str(exc)) from None
    (sent,) = await services.store.mail_by_ids([inbox.id], [composed.message_id])
    if label_names:
        await labels.apply(services.store, sent, labels.plan(label_names, []))
    return sent


def _compose_error(exc: ValueError) -> FieldError:
    # compose() names the field first: "subject: ...", "attachments[1]: ...".
    field, sep, rest = str(exc).partition(": ")
    if sep and " " not in field:
        return FieldError((field,), rest)
    return FieldError((), str(exc))
