"""Pages of a list: the SDK's `limit` and `page_token` in; `count` (items in this page),
`limit` and `next_page_token` (absent on the last page) out.

A page token is opaque to clients: the base64url of a small JSON payload (the cursor: the sort
key of the last item shown, the caller's scope and a digest of which list it pages) and its
HMAC-SHA256 under the store's "tokens" secret, which every node shares, so a token from one node
works on another. A token that was edited, or made for another scope or another list, is refused
with a 400 naming `page_token`. Every query is filtered by the caller's scope in any case, so
not even a forged token could reach another pod's data: the signature makes that failure
explicit.

A cursor is a position, not an offset: items added or removed between two pages shift nothing,
and each item still there is seen exactly once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from mailgate.http.caller import CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import Invalid
from mailgate.http.signing import MAX_TOKEN, seal, unseal

T = TypeVar("T")
Cursor = tuple[str | int, ...]

MAX_LIMIT = 100
DEFAULT_LIMIT = 100
PURPOSE = b"mailgate page token\n"


class PageFields(BaseModel):
    """What every list response has besides its items."""

    count: int
    limit: int | None = None
    next_page_token: str | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """Where a page starts (after `after`, or at the top) and how many items it holds."""

    listing: str
    limit: int
    after: Cursor | None

    def following(
        self, items: Sequence[T], key: Callable[[T], Cursor], *, descending: bool = False
    ) -> list[T]:
        """From `items` (in list order), those after the cursor: at most limit + 1, the last
        one only telling whether another page follows."""
        after = self.after
        if after is not None:
            if descending:
                items = [item for item in items if key(item) < after]
            else:
                items = [item for item in items if key(item) > after]
        return list(items[: self.limit + 1])


def keyset(window: Window) -> tuple[int, int] | None:
    """Where a store keyset query resumes (timestamp, id), for lists whose cursor is that."""
    after = window.after
    if after is None:
        return None
    if len(after) != 2 or not all(isinstance(v, int) for v in after):
        raise _bad_token("it pages another list")
    return (int(after[0]), int(after[1]))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    limit: int
    next_page_token: str | None

    def fields(self) -> dict[str, Any]:
        return {
            "count": len(self.items),
            "limit": self.limit,
            "next_page_token": self.next_page_token,
        }


class Paging:
    """A list request's `limit` and `page_token`, checked against the caller's scope."""

    def __init__(self, services: Services, scope: str, limit: int, page_token: str | None) -> None:
        self._services = services
        self._scope = scope
        self._limit = limit
        self._token = page_token

    async def window(self, listing: str) -> Window:
        """The window of list `listing` (its name and whatever filters or order it has) that
        the request asks for."""
        after = None
        if self._token:
            after = self._open(await self._services.token_key(), listing, self._token)
        return Window(listing, self._limit, after)

    async def page(
        self,
        window: Window,
        items: Sequence[T],
        key: Callable[[T], Cursor],
        *,
        descending: bool = False,
    ) -> Page[T]:
        """The page of `window` in `items`: all of the list in its order (`key` ascending, or
        descending), or only what follows the cursor, as a store query with a cursor gives."""
        following = window.following(items, key, descending=descending)
        if len(following) <= window.limit:
            return Page(following, window.limit, None)
        shown = following[: window.limit]
        payload = {"s": self._scope, "l": _named(window.listing), "a": list(key(shown[-1]))}
        token = self._seal(await self._services.token_key(), payload)
        return Page(shown, window.limit, token)

    @staticmethod
    def _seal(secret: bytes, payload: dict[str, Any]) -> str:
        return seal(secret, PURPOSE, payload)

    def _open(self, secret: bytes, listing: str, token: str) -> Cursor:
        payload = unseal(secret, PURPOSE, token)
        if payload is None:
            raise _bad_token("it is not a page token of this server, or it was changed")
        if payload.get("s") != self._scope:
            raise _bad_token("it was made for an API key of another scope")
        if payload.get("l") != _named(listing):
            raise _bad_token("it pages another list (or the same list in another order)")
        after = payload.get("a")
        if not isinstance(after, list):
            raise _bad_token("it is not a page token of this server")
        return tuple(after)


async def paging(
    services: ServicesDep,
    caller: CallerDep,
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT})"),
    ] = None,
    page_token: Annotated[
        str | None,
        Query(max_length=MAX_TOKEN, description="`next_page_token` of the previous page"),
    ] = None,
) -> Paging:
    return Paging(
        services, caller.scope_token, DEFAULT_LIMIT if limit is None else limit, page_token
    )


PagingDep = Annotated[Paging, Depends(paging)]


def _named(listing: str) -> str:
    """A listing as its token holds it: a digest, so that a token is as short for a list with
    many filters as for one with none."""
    return base64.urlsafe_b64encode(hashlib.sha256(listing.encode()).digest()[:16]).decode()


def _bad_token(why: str) -> Invalid:
    return Invalid.field("page_token", f"not a valid page token: {why}")
