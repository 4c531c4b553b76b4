"""Search: the messages (or threads) of some inboxes that match a query, best first.

What matches. A query is terms: its words, or phrases in double quotes, compared without regard
to case. Every term must match. A term matches a message where it is part of the sender, of a
recipient (To, Cc or Bcc) or of the subject, as the API shows them (a substring: `acme` finds
"Bob <bob@acme.test>"), or where the body holds its words, in order, as whole words (the
database's full-text index over the start of the text, mime/apiview.search_text: SQLite FTS5's
unicode61 tokenizer, PostgreSQL's 'simple' configuration, neither stemming nor dropping
diacritics). A thread matches where, for each term, one of its messages does.

Which rank first. Each term scores the fields it matched as bits: subject 8, sender 4,
recipients 2, body 1, so a term in a subject outranks one that is only anywhere else (a thread:
the best of its messages, per term). The score is the sum over the terms; equal scores are
ordered newest first.

What it costs. The summary fields are compared in the rows of the inboxes searched (as a list
page reads them), the body is looked up in the full-text index, a lookup per term; only the
newest MAX_CANDIDATES matches are ranked (narrow with before/after to reach older mail), and
pages are keyset pages over (score, timestamp, id), so a page costs the same wherever it is.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Integer,
    and_,
    case,
    column,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    table,
    tuple_,
)
from sqlalchemy.sql.elements import ColumnElement

from mailgate.store.base import StoreBase
from mailgate.store.conversations import Mail, Page, Thread, load_mail, load_threads
from mailgate.store.models import FULL_TEXT_INDEX, entries, mailboxes, search_texts

T = TypeVar("T", covariant=True)

# The matches ranked per query: the newest ones.
MAX_CANDIDATES = 1000
SUBJECT, SENDER, RECIPIENTS, BODY = 8, 4, 2, 1

_TERM = re.compile(r'"([^"]*)"|([^\s"]+)')
# What the full-text tokenizers count as a word: letters and digits.
_WORD = re.compile(r"[^\W_]")
# The full-text index as migration 0008 made it. SQLite: an FTS5 table whose `rowid` is the
# stored message's id. PostgreSQL: a tsvector column of search_texts.
_fts = table(FULL_TEXT_INDEX, column("rowid"), column(FULL_TEXT_INDEX))
_vectors = table(search_texts.name, column("message_id"), column(FULL_TEXT_INDEX))
_SIMPLE: Any = literal_column("'simple'")  # the configuration the vectors were made with


def terms(query: str) -> tuple[str, ...]:
    """The terms of a query, in order, each once (in any case): words and "quoted phrases"."""
    unique: dict[str, str] = {}
    for quoted, word in _TERM.findall(query):
        if term := " ".join((quoted or word).split()):
            unique.setdefault(term.casefold(), term)
    return tuple(unique.values())


@dataclass(frozen=True, slots=True)
class Search:
    """A query, where it looks and which page of its results is wanted."""

    terms: tuple[str, ...]  # as terms() gives them
    exclude: frozenset[str] = frozenset()  # never copies in these mailboxes
    before: int | None = None  # timestamp < before
    after: int | None = None  # timestamp >= after
    limit: int = 50
    start: tuple[int, int, int] | None = None  # (score, timestamp, id) the previous page ended at


@dataclass(frozen=True, slots=True)
class Found(Generic[T]):
    """A result: the message (or thread), where it ranks, and which stored message's body
    matched a term (in a thread, the one stored last), if any did."""

    item: T
    score: int
    timestamp: int
    id: int  # the blob id of a message, the row id of a thread
    body_of: int | None

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.score, self.timestamp, self.id)


class Searching(StoreBase):
    async def search_mail(self, inbox_ids: Sequence[int], search: Search) -> list[Found[Mail]]:
        """A page of the messages of these inboxes that match, best first."""
        if not inbox_ids or not search.terms:
            return []
        query = _ranked(inbox_ids, search, by_thread=False, sqlite=self.db.is_sqlite)
        async with self.db.read(snapshot=True) as conn:
            rows = (await conn.execute(query)).all()
            mail = await load_mail(
                conn, [(r.inbox_id, r.id) for r in rows], Page(exclude=search.exclude)
            )
        by_key = {(m.inbox_id, m.blob_id): m for m in mail}
        return [
            Found(found, r.score, r.stamp, r.id, r.body_of)
            for r in rows
            if (found := by_key.get((r.inbox_id, r.id))) is not None
        ]

    async def search_threads(self, inbox_ids: Sequence[int], search: Search) -> list[Found[Thread]]:
        """A page of the threads of these inboxes that match, best first."""
        if not inbox_ids or not search.terms:
            return []
        query = _ranked(inbox_ids, search, by_thread=True, sqlite=self.db.is_sqlite)
        async with self.db.read(snapshot=True) as conn:
            rows = (await conn.execute(query)).all()
            threads = await load_threads(conn, [(r.id, r.stamp) for r in rows])
        by_id = {t.id: t for t in threads}
        return [
            Found(found, r.score, r.stamp, r.id, r.body_of)
            for r in rows
            if (found := by_id.get(r.id)) is not None
        ]

    async def search_bodies(self, blob_ids: Sequence[int]) -> dict[int, str]:
        """The text search indexed of these stored messages (for showing where they matched)."""
        if not blob_ids:
            return {}
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(search_texts.c.message_id, search_texts.c.body).where(
                    search_texts.c.message_id.in_(sorted(set(blob_ids)))
                )
            )
            return {r.message_id: r.body for r in rows}


def _ranked(inbox_ids: Sequence[int], search: Search, *, by_thread: bool, sqlite: bool) -> Any:
    """The query of a page of results: the newest MAX_CANDIDATES matches, ranked."""
    source: Any = entries.join(mailboxes, mailboxes.c.id == entries.c.mailbox_id).join(
        search_texts, search_texts.c.message_id == entries.c.message_id
    )
    weights = []
    in_body: list[str] = []  # the terms looked for in bodies
    hits: list[ColumnElement[bool]] = []  # PostgreSQL: each one's match, a joined column
    for n, term in enumerate(search.terms):
        folded = term.casefold()  # as the summary fields are stored
        fields = [
            _weight(search_texts.c.subject.contains(folded, autoescape=True), SUBJECT),
            _weight(search_texts.c.sender.contains(folded, autoescape=True), SENDER),
            _weight(search_texts.c.recipients.contains(folded, autoescape=True), RECIPIENTS),
        ]
        if _WORD.search(term):  # else no body holds it
            in_body.append(term)
            if sqlite:
                # IN: SQLite reads the index once into a keyed table (joined to the matches,
                # it may scan them for every row).
                hit = entries.c.message_id.in_(_fts_matches([term]))
            else:
                # A join: PostgreSQL picks the index or, for few rows, each row's stored vector.
                found = _vector_matches(term).subquery(f"body_{n}")
                source = source.outerjoin(found, found.c.id == entries.c.message_id)
                hit = found.c.id.is_not(None)
                hits.append(hit)
            fields.append(_weight(hit, BODY))
        weights.append(func.max(functools.reduce(operator.add, fields)))
    key = entries.c.thread_id if by_thread else entries.c.message_id
    # A thread is as new as its newest message; a message as its first copy.
    stamp = (func.max if by_thread else func.min)(entries.c.internaldate)
    body_of: Any = null()
    if in_body:
        # SQLite: one more reading of the index, for any of the terms (repeating each term's
        # IN would read the index again for each).
        any_hit = entries.c.message_id.in_(_fts_matches(in_body)) if sqlite else or_(*hits)
        body_of = func.max(case((any_hit, entries.c.message_id)))
    where: list[ColumnElement[bool]] = [mailboxes.c.inbox_id.in_(list(inbox_ids))]
    if search.exclude:
        where.append(mailboxes.c.name.not_in(sorted(search.exclude)))
    having = [w > 0 for w in weights]
    if search.before is not None:
        having.append(stamp < search.before)
    if search.after is not None:
        having.append(stamp >= search.after)
    candidates = (
        select(
            mailboxes.c.inbox_id,
            key.label("id"),
            stamp.label("stamp"),
            functools.reduce(operator.add, weights).label("score"),
            body_of.label("body_of"),
        )
        .select_from(source)
        .where(*where)
        .group_by(mailboxes.c.inbox_id, key)
        .having(and_(*having))
        .order_by(stamp.desc(), key.desc())
        .limit(MAX_CANDIDATES)
        .subquery("candidates")
    )
    c = candidates.c
    ranked = select(candidates).order_by(c.score.desc(), c.stamp.desc(), c.id.desc())
    if search.start is not None:
        bound = tuple_(*(literal(v) for v in search.start))
        ranked = ranked.where(tuple_(c.score, c.stamp, c.id) < bound)
    return ranked.limit(search.limit)


def _weight(hit: ColumnElement[bool], weight: int) -> Any:
    return case((hit, literal_column(str(weight), Integer)), else_=literal_column("0", Integer))


def _fts_matches(terms: Sequence[str]) -> Any:
    """SQLite: the stored messages whose text holds the words of one of the terms, in order."""
    # A quoted FTS5 string is a phrase of the words in it and nothing else: no operator, column
    # filter or prefix in a user's query is ever read as FTS5 syntax.
    phrases = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
    return select(_fts.c.rowid).where(_fts.c[FULL_TEXT_INDEX].op("MATCH")(phrases))


def _vector_matches(term: str) -> Any:
    """PostgreSQL: the stored messages whose text holds the term's words, in order."""
    vectors = _vectors.alias()
    return select(vectors.c.message_id.label("id")).where(
        vectors.c[FULL_TEXT_INDEX].op("@@")(func.phraseto_tsquery(_SIMPLE, term))
    )
