"""What each MCP tool takes, named and described as agentmail-toolkit's schemas name them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mailgate.http.pagination import MAX_LIMIT

# Arguments, as agentmail-toolkit's schemas name and describe them.

InboxId = Field(description="Inbox ID: the inbox's email address, from list_inboxes")
ThreadId = Field(description="Thread ID, from list_threads or a message's thread_id")
MessageId = Field(description="Message ID with its angle brackets, from get_thread")
UTC_EXAMPLE = "ISO 8601 UTC ending in Z, e.g. 2026-04-01T09:00:00Z"


class Params(BaseModel):
    # A misspelt argument is an error the model can correct, not silently nothing.
    model_config = ConfigDict(extra="forbid")


class ListItems(Params):
    limit: int | None = Field(
        default=10, ge=1, le=MAX_LIMIT, description="Number of items per page"
    )
    page_token: str | None = Field(
        default=None,
        description="next_page_token from the previous page's result; omit for the first page",
    )


class GetInbox(Params):
    inbox_id: str = InboxId


class CreateInbox(Params):
    username: str | None = Field(
        default=None,
        description="Part of the address before the @; a random one is generated when omitted",
    )
    domain: str | None = Field(
        default=None,
        description="Domain of the address, one this server hosts; the server's own when omitted",
    )
    display_name: str | None = Field(default=None, description="Sender name recipients see")


class ListInboxItems(ListItems):
    inbox_id: str = InboxId
    labels: list[str] | None = Field(
        default=None, description="Only items carrying all of these labels, such as unread"
    )
    before: datetime | None = Field(
        default=None, description=f"Only items before this time, as {UTC_EXAMPLE}"
    )
    after: datetime | None = Field(
        default=None, description=f"Only items at or after this time, as {UTC_EXAMPLE}"
    )
    ascending: bool | None = Field(
        default=None, description="Sort by oldest first instead of most recent first"
    )
    include_spam: bool | None = Field(
        default=None, description="Also return items labeled spam, left out when omitted"
    )
    include_trash: bool | None = Field(
        default=None, description="Also return items labeled trash, left out when omitted"
    )
    include_blocked: bool | None = Field(
        default=None,
        description="Also return mail labeled blocked (its sender is on a block list), left out "
        "when omitted",
    )


class GetThread(Params):
    inbox_id: str = InboxId
    thread_id: str = ThreadId


class GetAttachment(Params):
    inbox_id: str = InboxId
    thread_id: str = ThreadId
    attachment_id: str = Field(
        description="Attachment ID, from a thread's attachments in list_threads or get_thread"
    )


class GetMessage(Params):
    inbox_id: str = InboxId
    message_id: str = MessageId


class SendAttachment(Params):
    filename: str | None = Field(default=None, description="File name recipients see")
    content_type: str | None = Field(default=None, description="MIME type, e.g. text/plain")
    content_id: str | None = Field(
        default=None, description="ID the HTML body references as cid:<content_id>"
    )
    content: str | None = Field(
        default=None, description="Base64-encoded file content: standard, padded, no data: prefix"
    )


class MessageFields(Params):
    inbox_id: str = InboxId
    text: str | None = Field(
        default=None,
        description="Plain-text body; include it even with html, since none is made from html",
    )
    html: str | None = Field(default=None, description="HTML body for formatted mail")
    labels: list[str] | None = Field(default=None, description="Your own labels for the message")
    attachments: list[SendAttachment] | None = Field(
        default=None, description="Attachments, each with base64 content"
    )


class SendMessage(MessageFields):
    to: list[str] = Field(
        description='Recipient addresses, each a bare address or "Name <address>"'
    )
    cc: list[str] | None = Field(default=None, description="Copied addresses")
    bcc: list[str] | None = Field(default=None, description="Blind-copied addresses")
    subject: str | None = Field(default=None, description="Subject line recipients see")


class ReplyToMessage(MessageFields):
    message_id: str = MessageId
    reply_all: bool | None = Field(
        default=None,
        description="Also reply to all original recipients; when omitted the reply goes to the "
        "original's Reply-To, else its sender",
    )


class ForwardMessage(SendMessage):
    message_id: str = Field(
        description="ID of the message to forward, with its angle brackets; its body and all "
        "attachments are included"
    )


class UpdateMessage(Params):
    inbox_id: str = InboxId
    message_id: str = MessageId
    add_labels: list[str] | None = Field(default=None, description="Labels to add, e.g. unread")
    remove_labels: list[str] | None = Field(
        default=None, description="Labels to remove, e.g. unread to mark it read"
    )


class Search(Params):
    query: str = Field(
        description='Words (or "quoted phrases") to find in senders, recipients, subjects and '
        "bodies; every one must match"
    )
    inbox_id: str | None = Field(
        default=None,
        description="Inbox to search; every inbox the key sees when omitted (threads only)",
    )
    type: Literal["threads", "messages"] = Field(
        default="threads", description="Find threads (default) or single messages"
    )
    limit: int | None = Field(
        default=10, ge=1, le=MAX_LIMIT, description="Number of results per page"
    )
    page_token: str | None = Field(
        default=None, description="next_page_token from the previous page's result"
    )


DraftId = Field(description="Draft ID, from create_draft or list_drafts")


class ListDrafts(ListItems):
    inbox_id: str = InboxId


class GetDraft(Params):
    inbox_id: str = InboxId
    draft_id: str = DraftId


class CreateDraft(MessageFields):
    to: list[str] | None = Field(default=None, description="Recipient addresses")
    cc: list[str] | None = Field(default=None, description="Copied addresses")
    bcc: list[str] | None = Field(default=None, description="Blind-copied addresses")
    subject: str | None = Field(default=None, description="Subject line")
    in_reply_to: str | None = Field(
        default=None,
        description="Message ID this draft answers: its recipients, subject and thread follow",
    )
    reply_all: bool | None = Field(
        default=None, description="With in_reply_to: answer all the original's recipients"
    )
    forward_of: str | None = Field(
        default=None, description="Message ID this draft forwards, its attachments included"
    )


class UpdateDraft(Params):
    inbox_id: str = InboxId
    draft_id: str = DraftId
    to: list[str] | None = Field(default=None, description="New recipient addresses")
    cc: list[str] | None = Field(default=None, description="New copied addresses")
    bcc: list[str] | None = Field(default=None, description="New blind-copied addresses")
    subject: str | None = Field(default=None, description="New subject line")
    text: str | None = Field(default=None, description="New plain-text body")
    html: str | None = Field(default=None, description="New HTML body")
    add_attachments: list[SendAttachment] | None = Field(
        default=None, description="Attachments to add, each with base64 content"
    )
    remove_attachments: list[str] | None = Field(
        default=None, description="Attachment IDs (from get_draft) to remove"
    )
    add_labels: list[str] | None = Field(default=None, description="Labels to add")
    remove_labels: list[str] | None = Field(default=None, description="Labels to remove")


class SendDraft(Params):
    inbox_id: str = InboxId
    draft_id: str = DraftId
    add_labels: list[str] | None = Field(
        default=None, description="Labels to add to the sent message"
    )
    remove_labels: list[str] | None = Field(
        default=None, description="Labels to remove from the sent message"
    )
