"""Search over the API (messages and threads alike): reading `q` into terms, the fingerprint a
page token of a search or a filtered list is bound to, and the highlights each result carries.

What a query matches and how results rank is the store's (store/search.py). Highlights show it:
per field, the fragments where a term matched, each term wrapped in `**`; a field is there only
when a term matched it. The sender, recipients and subject are matched as substrings (shown
whole, or cut around the matches when long), the body as whole words in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mailgate.http.context import Services
from mailgate.http.errors import Invalid
from mailgate.store import search

T = TypeVar("T")
MAX_QUERY = 1000  # characters of `q`
MAX_TERMS = 16
# Fragments shown per field, and the characters shown each side of a match.
MAX_FRAGMENTS = 3
CONTEXT = 60
# Above this much text in a page, its highlights are found off the event loop.
BIG_TEXT = 64 * 1024

_WORDS = re.compile(r"[^\W_]+")


class Highlights(BaseModel):
    """The SDK's SearchMessageHighlights and SearchThreadHighlights."""

    model_config = ConfigDict(populate_by_name=True)

    from_: list[str] | None = Field(default=None, alias="from")
    recipients: list[str] | None = None
    subject: list[str] | None = None
    text: list[str] | None = None


def query_terms(q: str) -> tuple[str, ...]:
    """The terms of `q`; a 400 naming `q` when it has none, or too many."""
    found = search.terms(q)
    if not found:
        raise Invalid.field("q", "give at least one word to search for")
    if len(found) > MAX_TERMS:
        raise Invalid.field("q", f"at most {MAX_TERMS} words or phrases")
    return found


def fingerprint(*parts: object) -> str:
    """What a page token names a search or filtered list by: short whatever the query."""
    data = json.dumps(parts, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]


class Highlighter:
    """Where the terms of one query are in what a page of results shows."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = tuple(terms)
        longest_first = sorted(self.terms, key=len, reverse=True)
        self._folded = [t.casefold() for t in self.terms]
        self._substring = re.compile("|".join(map(re.escape, longest_first)), re.IGNORECASE)
        # A term's words, whole, with anything but letters and digits between them: what the
        # full-text index calls a phrase.
        phrases = [
            r"[\W_]+".join(map(re.escape, words))
            for t in longest_first
            if (words := _WORDS.findall(t))
        ]
        self._phrase = (
            re.compile(r"(?<![^\W_])(?:" + "|".join(phrases) + r")(?![^\W_])", re.IGNORECASE)
            if phrases
            else None
        )

    def highlights(
        self,
        senders: Iterable[str],
        recipients: Iterable[str],
        subjects: Iterable[str],
        body: str | None,
    ) -> Highlights | None:
        """The highlights of a message (or of a thread: its messages' fields), given the text of
        the body that matched, if one did."""
        fields = {
            "from_": self._fields(senders),
            "recipients": self._fields(recipients),
            "subject": self._fields(subjects),
            "text": self._text(body) if body else None,
        }
        return Highlights(**fields) if any(fields.values()) else None

    def _fields(self, values: Iterable[str]) -> list[str] | None:
        """The first values a term is part of (as the store matches: case-folded), their
        matches wrapped."""
        shown: list[str] = []
        for value in dict.fromkeys(values):
            if len(shown) >= MAX_FRAGMENTS:
                break
            folded = value.casefold()
            if any(t in folded for t in self._folded):
                shown += _fragments(value, self._substring, whole=True)
        return shown[:MAX_FRAGMENTS] or None

    def _text(self, body: str) -> list[str] | None:
        if self._phrase is None:
            return None
        return _fragments(body, self._phrase, whole=False) or None


def _fragments(value: str, pattern: re.Pattern[str], *, whole: bool) -> list[str]:
    """`value` cut around the first matches of `pattern` (`whole`: all of it when it is short,
    even without a match), each match wrapped in `**`, white space collapsed."""
    if whole and len(value) <= 2 * CONTEXT:
        return [_wrap(" ".join(value.split()), pattern)]
    windows: list[list[int]] = []
    for match in pattern.finditer(value):
        start, end = max(match.start() - CONTEXT, 0), min(match.end() + CONTEXT, len(value))
        if windows and start <= windows[-1][1]:
            windows[-1][1] = end
        elif len(windows) == MAX_FRAGMENTS:
            break
        else:
            windows.append([start, end])
    if not windows and whole:
        windows.append([0, 2 * CONTEXT])
    fragments = []
    for start, end in windows:
        piece = _wrap(" ".join(value[start:end].split()), pattern)
        fragments.append(("…" if start > 0 else "") + piece + ("…" if end < len(value) else ""))
    return fragments


def _wrap(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(lambda m: f"**{m.group(0)}**", text)


async def bodies(services: Services, found: Sequence[search.Found[object]]) -> dict[int, str]:
    """The indexed text of each body that matched in a page of results."""
    return await services.store.search_bodies([f.body_of for f in found if f.body_of])


async def off_the_loop_if_big(texts: dict[int, str], work: Callable[[], T]) -> T:
    """`work()`, in a worker thread when the texts it reads are long."""
    if sum(map(len, texts.values())) > BIG_TEXT:
        return await asyncio.to_thread(work)
    return work()
