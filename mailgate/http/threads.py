"""Threads: /v0/threads, /v0/pods/{pod_id}/threads and /v0/inboxes/{inbox_id}/threads (the
SDK's `client.threads`, `client.pods.threads`, `client.inboxes.threads`).

A thread is a conversation of one inbox (store/threads.py groups messages by Message-ID,
In-Reply-To, References and subject); its id is what IMAP shows as THREADID. What a thread
shows is made from the messages a list admits (Spam, Trash and Drafts left out unless asked):
its senders and recipients, labels (every message's), newest and first messages. Getting a
thread pages its messages newest first, each page in ascending time. Changing a thread's labels
changes every message's; deleting a thread deletes every message of it. Searching finds the
threads where, for each term, a message matches (Spam, Trash and drafts left out).

A thread's attachments are named "<n>.<part>": the n-th message of the thread (in time) and
the attachment's part in it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from mailgate.delivery import labels
from mailgate.http.caller import CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import NotFound
from mailgate.http.inboxes import visible_inbox, visible_inboxes
from mailgate.http.mail import Attachment, Message, message, when
from mailgate.http.messages import (
    AttachmentResponse,
    UpdateMessageRequest,
    attachment_link,
    delete,
    mail_page,
    position,
    ranked,
    relabel_plan,
    searching,
    substrings,
)
from mailgate.http.pagination import PageFields, PagingDep, keyset
from mailgate.http.pods import visible_pod
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
from mailgate.store.conversations import Mail, Page, Thread
from mailgate.store.records import SENT

# The messages of a thread read at once to describe it.
MAX_THREAD_MESSAGES = 10_000


class ThreadItem(BaseModel):
    inbox_id: str
    thread_id: str
    labels: list[str]
    timestamp: datetime
    received_timestamp: datetime | None = None
    sent_timestamp: datetime | None = None
    senders: list[str]
    recipients: list[str]
    subject: str | None = None
    preview: str | None = None
    attachments: list[Attachment] | None = None
    last_message_id: str
    message_count: int
    size: int
    updated_at: datetime
    created_at: datetime


class ThreadResponse(ThreadItem, PageFields):
    messages: list[Message]


class ListThreadsResponse(PageFields):
    threads: list[ThreadItem]


class SearchThreadItem(ThreadItem):
    highlights: Highlights | None = None


class SearchThreadsResponse(PageFields):
    threads: list[SearchThreadItem]  # best first


class UpdateThreadResponse(BaseModel):
    thread_id: str
    labels: list[str]


InboxIds = Sequence[int]


async def _all(caller: CallerDep, services: ServicesDep) -> list[int]:
    return [i.id for i in await visible_inboxes(caller, services, None)]


async def _pod(pod_id: str, caller: CallerDep, services: ServicesDep) -> list[int]:
    pod = await visible_pod(caller, services, pod_id)
    return [i.id for i in await visible_inboxes(caller, services, pod)]


async def _inbox(inbox_id: str, caller: CallerDep, services: ServicesDep) -> list[int]:
    return [(await visible_inbox(caller, services, None, inbox_id)).id]


def _routes(prefix: str, scope: Any) -> APIRouter:
    routes = APIRouter(prefix=prefix, tags=["threads"])
    # A default value, not an Annotated alias, as in inboxes.py: the dependency is this tree's.
    inboxes: Any = Depends(scope)

    @routes.get("", response_model_exclude_none=True)
    async def list_threads(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        request: Request,
        labels_filter: Annotated[list[str] | None, Query(alias="labels")] = None,
        before: datetime | None = None,
        after: datetime | None = None,
        ascending: bool = False,
        include_spam: bool = False,
        include_blocked: bool = False,
        include_unauthenticated: bool = False,
        include_trash: bool = False,
        senders: Annotated[list[str] | None, Query()] = None,
        recipients: Annotated[list[str] | None, Query()] = None,
        subject: Annotated[list[str] | None, Query()] = None,
        inbox_ids: list[int] = inboxes,
    ) -> ListThreadsResponse:
        """Threads with a message the filters admit, newest first; `senders`, `recipients` and
        `subject` keep those with, for each value given, a message that holds it, in any
        case."""
        labels_filter = listed("labels", labels_filter)
        matching = substrings(senders, recipients, subject)
        listing = (
            # The path names the pod or inbox; the scope is in the token already, so a page
            # token stays good when inboxes are added to the pod.
            f"threads:{request.url.path}:{sorted(labels_filter or [])}:{before}:"
            f"{after}:{ascending}:{include_spam}:{include_trash}"
        )
        if matching:
            listing += f":{fingerprint(matching)}"
        window = await paging.window(listing)
        page = mail_page(
            labels_filter=labels_filter,
            include_spam=include_spam,
            include_trash=include_trash,
            before=before,
            after=after,
            ascending=ascending,
            limit=window.limit + 1,
            start=keyset(window),
            matching=matching,
        )
        found = await services.store.thread_page(inbox_ids, page)
        shown = await paging.page(window, found, _position, descending=not ascending)
        described = await _describe(services, shown.items, include_spam, include_trash)
        return ListThreadsResponse(**shown.fields(), threads=described)

    @routes.get("/search", response_model_exclude_none=True)
    async def search_threads(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        request: Request,
        q: Annotated[str, Query(max_length=MAX_QUERY)],
        before: datetime | None = None,
        after: datetime | None = None,
        inbox_ids: list[int] = inboxes,
    ) -> SearchThreadsResponse:
        """Threads that match `q`, best first, each with where it matched: for every word (or
        "quoted phrase"), a message whose sender, recipients or subject holds it, or whose body
        has its words. Spam, Trash and drafts are left out."""
        terms = query_terms(q)
        # Bound to the path (the scope searched), not to the inboxes in it, which may change.
        window = await paging.window(
            f"threads/search:{fingerprint(request.url.path, terms, before, after)}"
        )
        found = await services.store.search_threads(
            inbox_ids, searching(terms, before, after, window)
        )
        shown = await paging.page(window, found, ranked, descending=True)
        texts = await bodies(services, shown.items)
        of_threads = await _messages_of(
            services, [f.item for f in shown.items], include_spam=False, include_trash=False
        )
        described = [
            (f, messages) for f in shown.items if (messages := of_threads[f.item.public_id])
        ]
        highlighter = Highlighter(terms)

        def results() -> list[SearchThreadItem]:
            return [
                SearchThreadItem(
                    **_summary(f.item, messages).model_dump(),
                    highlights=highlighter.highlights(
                        [m.from_ for m in messages if m.from_],
                        [a for m in messages for a in (*m.to, *m.cc, *m.bcc)],
                        [m.subject for m in messages if m.subject],
                        texts.get(f.body_of) if f.body_of else None,
                    ),
                )
                for f, messages in described
            ]

        threads = await off_the_loop_if_big(texts, results)
        return SearchThreadsResponse(**shown.fields(), threads=threads)

    @routes.get("/{thread_id}", response_model_exclude_none=True)
    async def get_thread(
        thread_id: str,
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        inbox_ids: list[int] = inboxes,
    ) -> ThreadResponse:
        """The thread and a page of its messages: the newest first, in ascending time."""
        thread = await services.store.thread_by_id(inbox_ids, thread_id)
        messages = await _messages(services, thread, include_spam=True, include_trash=True)
        if not messages:
            raise NotFound(f"no thread {thread_id}")
        window = await paging.window(f"thread:{thread.public_id}")
        newest_first = sorted(messages, key=position, reverse=True)
        shown = await paging.page(window, newest_first, position, descending=True)
        page = sorted(shown.items, key=position)
        return ThreadResponse(
            **_summary(thread, messages).model_dump(),
            **shown.fields(),
            messages=[await message(services, m) for m in page],
        )

    @routes.get("/{thread_id}/attachments/{attachment_id}", response_model_exclude_none=True)
    async def get_attachment(
        thread_id: str,
        attachment_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: Request,
        inbox_ids: list[int] = inboxes,
    ) -> AttachmentResponse:
        thread = await services.store.thread_by_id(inbox_ids, thread_id)
        messages = await _messages(services, thread, include_spam=True, include_trash=True)
        index, _, part = attachment_id.partition(".")
        if not index.isdigit() or not 0 < int(index) <= len(messages):
            raise NotFound(f"thread {thread_id} has no attachment {attachment_id}")
        return await attachment_link(services, request, messages[int(index) - 1], part)

    @routes.patch("/{thread_id}", response_model_exclude_none=True)
    async def update_thread(
        thread_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: UpdateMessageRequest,
        inbox_ids: list[int] = inboxes,
    ) -> UpdateThreadResponse:
        """Add and remove labels on every message of the thread."""
        change = relabel_plan(request)
        thread = await services.store.thread_by_id(inbox_ids, thread_id)
        for mail in await _messages(services, thread, include_spam=True, include_trash=True):
            await labels.apply(services.store, mail, change)
        now = await _messages(services, thread, include_spam=True, include_trash=True)
        return UpdateThreadResponse(thread_id=thread.public_id, labels=_labels(now))

    @routes.delete("/{thread_id}", status_code=204)
    async def delete_thread(
        thread_id: str,
        caller: CallerDep,
        services: ServicesDep,
        inbox_ids: list[int] = inboxes,
    ) -> Response:
        """Every message of the thread, from every mailbox, for good."""
        thread = await services.store.thread_by_id(inbox_ids, thread_id)
        for mail in await _messages(services, thread, include_spam=True, include_trash=True):
            await delete(services, mail)
        return Response(status_code=204)

    return routes


# The organization and inbox trees by name too: the MCP tools (http/mcp/tools.py) call
# their handlers.
all_routes = _routes("/v0/threads", _all)
inbox_routes = _routes("/v0/inboxes/{inbox_id}/threads", _inbox)
router = APIRouter()
router.include_router(all_routes)
router.include_router(_routes("/v0/pods/{pod_id}/threads", _pod))
router.include_router(inbox_routes)


async def _messages(
    services: Services, thread: Thread, *, include_spam: bool, include_trash: bool
) -> list[Mail]:
    """The thread's messages a list admits, oldest first."""
    page = mail_page(
        include_spam=include_spam,
        include_trash=include_trash,
        ascending=True,
        limit=MAX_THREAD_MESSAGES,
    )
    page = dataclasses.replace(page, threads=frozenset({thread.id}))
    return await services.store.mail_page([thread.inbox_id], page)


async def _messages_of(
    services: Services, threads: Sequence[Thread], *, include_spam: bool, include_trash: bool
) -> defaultdict[str, list[Mail]]:
    """The messages a list admits of each of the threads (by public id), oldest first: one
    read for a whole page of threads, not one per thread."""
    if not threads:
        return defaultdict(list)
    page = mail_page(
        include_spam=include_spam,
        include_trash=include_trash,
        ascending=True,
        limit=MAX_THREAD_MESSAGES * len(threads),
    )
    page = dataclasses.replace(page, threads=frozenset(t.id for t in threads))
    inbox_ids = sorted({t.inbox_id for t in threads})
    found: defaultdict[str, list[Mail]] = defaultdict(list)
    for mail in await services.store.mail_page(inbox_ids, page):
        found[mail.thread].append(mail)
    return found


async def _describe(
    services: Services, threads: Sequence[Thread], include_spam: bool, include_trash: bool
) -> list[ThreadItem]:
    of_threads = await _messages_of(
        services, threads, include_spam=include_spam, include_trash=include_trash
    )
    return [_summary(t, of_threads[t.public_id]) for t in threads if of_threads[t.public_id]]


def counted_messages() -> Page:
    """The page of a thread's messages its description counts: every one, spam and trash
    included, oldest first."""
    return mail_page(
        include_spam=True, include_trash=True, ascending=True, limit=MAX_THREAD_MESSAGES
    )


def described(thread: Thread, messages: Sequence[Mail]) -> ThreadItem | None:
    """A thread as lists show it, from its messages (`counted_messages`); None without any."""
    return _summary(thread, messages) if messages else None


def _summary(thread: Thread, messages: Sequence[Mail]) -> ThreadItem:
    """What a thread shows, from its messages (oldest first)."""
    newest = messages[-1]
    received = [m.timestamp for m in messages if any(c.mailbox != SENT for c in m.copies)]
    sent = [m.timestamp for m in messages if any(c.mailbox == SENT for c in m.copies)]
    senders = list(dict.fromkeys(m.from_ for m in messages if m.from_))
    recipients = list(dict.fromkeys(a for m in messages for a in (*m.to, *m.cc)))
    attachments = [
        Attachment(
            attachment_id=f"{n}.{a.attachment_id}",
            filename=a.filename,
            size=a.size,
            content_type=a.content_type,
            content_disposition=a.content_disposition,
            content_id=a.content_id,
        )
        for n, m in enumerate(messages, 1)
        for a in attachments_from_json(m.attachments)
    ]
    return ThreadItem(
        inbox_id=newest.inbox,
        thread_id=thread.public_id,
        labels=_labels(messages),
        timestamp=when(newest.timestamp),
        received_timestamp=when(max(received)) if received else None,
        sent_timestamp=when(max(sent)) if sent else None,
        senders=senders or ["unknown"],
        recipients=recipients,
        subject=messages[0].subject,
        preview=newest.preview or None,
        attachments=attachments or None,
        last_message_id=newest.message_id,
        message_count=len(messages),
        size=sum(m.size for m in messages),
        updated_at=when(newest.updated),
        created_at=when(thread.created_at),
    )


def _labels(messages: Sequence[Mail]) -> list[str]:
    found: list[str] = []
    for mail in messages:
        for label in labels.labels_of(mail):
            if label not in found:
                found.append(label)
    # "read" only where no message is unread.
    if labels.UNREAD in found and labels.READ in found:
        found.remove(labels.READ)
    return found


def _position(thread: Thread) -> tuple[int, int]:
    return (thread.timestamp, thread.id)
