"""A message as the API shows it: the SDK's MessageItem (in lists), Message (one message, with
its body), and the attachments' metadata; built from the store's Mail (store/conversations.py),
its labels (delivery/labels.py) and, for one message, its bytes (mime/apiview.py).

Bodies are decoded on request, never stored twice: a big message's in a worker thread, so that
no request holds the event loop while it decodes megabytes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailgate.delivery.labels import labels_of
from mailgate.http.context import Services
from mailgate.mime.apiview import attachments_from_json, body
from mailgate.store.conversations import Mail

# Above this size a message's body is decoded off the event loop.
BIG_MESSAGE = 256 * 1024


class Attachment(BaseModel):
    attachment_id: str
    filename: str | None = None
    size: int
    content_type: str | None = None
    content_disposition: str | None = None
    content_id: str | None = None


class MessageItem(BaseModel):
    """What a list shows of a message (the SDK's MessageItem)."""

    model_config = ConfigDict(populate_by_name=True)

    inbox_id: str
    thread_id: str
    message_id: str
    labels: list[str]
    timestamp: datetime
    from_: str = Field(alias="from")
    reply_to: list[str] | None = None
    to: list[str]
    cc: list[str] | None = None
    bcc: list[str] | None = None
    subject: str | None = None
    preview: str | None = None
    attachments: list[Attachment] | None = None
    in_reply_to: str | None = None
    references: list[str] | None = None
    size: int
    updated_at: datetime
    created_at: datetime


class Message(MessageItem):
    """One message, with its body (the SDK's Message)."""

    text: str | None = None
    html: str | None = None
    extracted_text: str | None = None
    extracted_html: str | None = None
    headers: dict[str, str] | None = None


def when(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def item(mail: Mail) -> MessageItem:
    return MessageItem(**_fields(mail))


async def message(services: Services, mail: Mail, raw: bytes | None = None) -> Message:
    """The message with its body, decoded from its stored bytes (`raw`, if read already)."""
    if raw is None:
        raw = await services.store.blob(mail.blob_id)
    if len(raw) > BIG_MESSAGE:
        decoded = await asyncio.to_thread(body, raw)
    else:
        decoded = body(raw)
    return Message(
        **_fields(mail),
        text=decoded.text,
        html=decoded.html,
        extracted_text=decoded.extracted_text,
        extracted_html=decoded.extracted_html,
        headers=decoded.headers,
    )


def _fields(mail: Mail) -> dict[str, Any]:
    attachments = [
        Attachment(
            attachment_id=a.attachment_id,
            filename=a.filename,
            size=a.size,
            content_type=a.content_type,
            content_disposition=a.content_disposition,
            content_id=a.content_id,
        )
        for a in attachments_from_json(mail.attachments)
    ]
    return {
        "inbox_id": mail.inbox,
        "thread_id": mail.thread,
        "message_id": mail.message_id,
        "labels": labels_of(mail),
        "timestamp": when(mail.timestamp),
        # The SDK requires a sender; a message without a From has an unknown one.
        "from_": mail.from_ or "unknown",
        "reply_to": list(mail.reply_to) or None,
        "to": list(mail.to),
        "cc": list(mail.cc) or None,
        "bcc": list(mail.bcc) or None,
        "subject": mail.subject,
        "preview": mail.preview or None,
        "attachments": attachments or None,
        "in_reply_to": mail.in_reply_to,
        "references": list(mail.references) or None,
        "size": mail.size,
        "updated_at": when(mail.updated),
        "created_at": when(mail.timestamp),
    }
