"""Inbox events: /v0/inboxes/{inbox_id}/events (the SDK's `client.inboxes.events`), the labels
a message of the inbox gained or lost (label.added, label.removed), newest first, whichever door
the change came through: an IMAP client marking mail read, a move to Trash, a label set over the
API, a bounce. They are written in the transaction of the change (store/labelling.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from mailgate.http.context import ServicesDep
from mailgate.http.inboxes import in_inbox
from mailgate.http.pagination import PageFields, PagingDep
from mailgate.store.labelling import LabelEvent
from mailgate.store.records import Inbox as InboxRecord

router = APIRouter(prefix="/v0/inboxes/{inbox_id}/events", tags=["inbox events"])

# Fixed width, so that event ids sort as the events do ("ordered by event_id").
_ID_WIDTH = 16


class InboxEvent(BaseModel):
    organization_id: str
    pod_id: str
    inbox_id: str
    event_id: str
    event_type: str
    message_id: str
    label: str
    event_at: datetime
    created_at: datetime


class ListInboxEventsResponse(PageFields):
    events: list[InboxEvent]


def event_id(event: LabelEvent) -> str:
    return f"ievt_{event.id:0{_ID_WIDTH}d}"


@router.get("", response_model_exclude_none=True)
async def list_events(
    inbox: Annotated[InboxRecord, Depends(in_inbox)],
    services: ServicesDep,
    paging: PagingDep,
    ascending: Annotated[bool, Query(description="Oldest first")] = False,
) -> ListInboxEventsResponse:
    window = await paging.window(f"inbox-events:{inbox.id}:{ascending}")
    after = None
    if window.after is not None:
        after = int(window.after[0]) if isinstance(window.after[0], int) else None
    found = await services.store.label_events(
        inbox.id, after=after, limit=window.limit + 1, ascending=ascending
    )
    page = await paging.page(window, found, lambda e: (e.id,), descending=not ascending)
    organization = services.settings.server.hostname
    return ListInboxEventsResponse(
        **page.fields(),
        events=[
            InboxEvent(
                organization_id=organization,
                pod_id=inbox.pod,
                inbox_id=inbox.address,
                event_id=event_id(e),
                event_type=e.event_type,
                message_id=e.message_id,
                label=e.label,
                event_at=datetime.fromtimestamp(e.created_at, UTC),
                created_at=datetime.fromtimestamp(e.created_at, UTC),
            )
            for e in page.items
        ],
    )
