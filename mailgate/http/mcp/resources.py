"""Inboxes as MCP resources: `mailgate://inboxes/{inbox_id}`, listed (the inboxes the key
sees), read (the inbox and its newest threads, as `list_threads` answers) and subscribed to
(watch.py tells the subscriber when one changes)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

from mcp import types
from mcp.shared.exceptions import MCPError

from mailgate.http.errors import Problem
from mailgate.http.mcp.arguments import ListInboxItems, ListItems
from mailgate.http.mcp.tools import Call, list_inboxes, list_threads
from mailgate.http.pagination import MAX_LIMIT

SCHEME = "mailgate://inboxes/"
TEMPLATE = types.ResourceTemplate(
    uri_template=SCHEME + "{inbox_id}",
    name="inbox",
    title="An inbox",
    description=(
        "An email inbox (inbox_id: its address) and its newest threads. Subscribe to be told "
        "when mail arrives in it or its messages' labels change; then read it again."
    ),
    mime_type="application/json",
)
# Threads a read returns: the newest, as list_threads gives them; older ones through the tool.
THREADS = 20


def uri_of(inbox_id: str) -> str:
    return SCHEME + quote(inbox_id, safe="@+")


def inbox_of(uri: str) -> str:
    """The inbox_id a resource URI names; INVALID_PARAMS if it names none."""
    inbox_id = unquote(uri[len(SCHEME) :]) if uri.startswith(SCHEME) else ""
    if not inbox_id or "/" in inbox_id:
        raise MCPError(types.INVALID_PARAMS, f"no resource {uri}: inboxes are {SCHEME}INBOX_ID")
    return inbox_id


def not_found(problem: Problem, uri: str) -> MCPError:
    return MCPError(types.INVALID_PARAMS, f"{problem.name}: {problem.message}", {"uri": uri})


async def listed(call: Call, cursor: str | None) -> types.ListResourcesResult:
    page = await list_inboxes(call, ListItems(limit=MAX_LIMIT, page_token=cursor))
    return types.ListResourcesResult(
        resources=[
            types.Resource(
                uri=uri_of(inbox["inbox_id"]),
                name=inbox["inbox_id"],
                title=inbox.get("display_name") or inbox["inbox_id"],
                description=f"The inbox {inbox['inbox_id']} and its newest threads",
                mime_type="application/json",
            )
            for inbox in page.get("inboxes", [])
        ],
        next_cursor=page.get("next_page_token"),
    )


async def read(call: Call, uri: str) -> types.ReadResourceResult:
    inbox_id = inbox_of(uri)
    try:
        found = await list_threads(call, ListInboxItems(inbox_id=inbox_id, limit=THREADS))
    except Problem as exc:
        raise not_found(exc, uri) from None
    body: dict[str, Any] = {"inbox_id": inbox_id, **found}
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(
                uri=uri,
                mime_type="application/json",
                text=json.dumps(body, indent=2, ensure_ascii=False),
            )
        ]
    )
