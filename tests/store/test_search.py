"""Search in the store: what a query matches (substrings of the summary fields, whole words of
the body through the full-text index), how results rank and page, what the index holds of a
message, and that it follows the mail: filled at ingest, emptied when a message is collected,
and filled for stored mail by the upgrade that brings it."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest

from mailgate.mime.apiview import SEARCH_TEXT_LENGTH
from mailgate.store.api import Store
from mailgate.store.records import DELETED, Inbox, Mailbox
from mailgate.store.search import MAX_CANDIDATES, Search, terms
from tests.store.conftest import count, downgrade, rows, run


def mail(n: int, sender: str, subject: str, body: str, content_type: str = "text/plain") -> bytes:
    return (
        f"From: {sender}\r\nTo: Bob <bob@example.test>\r\nSubject: {subject}\r\n"
        f"Message-ID: <s{n}@example.test>\r\n"
        f"Content-Type: {content_type}; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def file(store: Store, box: Mailbox, n: int, *fields: str, **kw: str) -> None:
    when = datetime.datetime(2026, 12, 1, 12, n, tzinfo=datetime.UTC)
    run(store.append(box.id, mail(n, *fields, **kw), internaldate=when))


def found(store: Store, inbox: Inbox, q: str, **kw: object) -> list[str]:
    search = Search(terms=terms(q), **kw)  # type: ignore[arg-type]
    return [f.item.message_id for f in run(store.search_mail([inbox.id], search))]


def ids(*numbers: int) -> list[str]:
    return [f"<s{n}@example.test>" for n in numbers]


def test_terms_are_words_and_quoted_phrases() -> None:
    assert terms('Invoice "due  date" invoice x"y') == ("Invoice", "due date", "x", "y")
    assert terms('  "" ') == ()
    assert terms('"unclosed phrase') == ("unclosed", "phrase")


def test_summary_fields_by_substring_body_by_whole_words(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    file(store, mailbox, 1, "Ann <ann@acme.test>", "Quarterly report", "The numbers are in.")
    file(store, mailbox, 2, "Cy <cy@x.test>", "Lunch", "About the quarterly report: later.")
    file(store, mailbox, 3, "Zoë <zoe@x.test>", "Grüße", "Straße, Ärger und foo-bar.")
    assert found(store, inbox, "quarterly") == ids(1, 2)  # subject first
    assert found(store, inbox, "quarter") == ids(1)  # a part of the subject, not a body word
    assert found(store, inbox, "ACME") == ids(1)
    assert found(store, inbox, "bob@example") == ids(3, 2, 1)  # recipients; newest first
    assert found(store, inbox, "zoë grüße") == ids(3)
    assert found(store, inbox, "STRASSE") == []  # the body's words as written: no folding of ß
    assert found(store, inbox, "straße ärger") == ids(3)
    assert found(store, inbox, '"report later"') == ids(2)
    assert found(store, inbox, '"later report"') == []


def test_ranked_by_the_fields_each_term_matched_then_newest_first(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    file(store, mailbox, 1, "a@x.test", "Other", "widget here")  # body: 1
    file(store, mailbox, 2, "widget@x.test", "Other", "nothing")  # sender: 4
    file(store, mailbox, 3, "b@x.test", "Widget", "nothing")  # subject: 8
    file(store, mailbox, 4, "c@x.test", "Widget", "widget too")  # subject and body: 9
    file(store, mailbox, 5, "d@x.test", "Other", "widget again")  # body: 1, newer than 1
    results = run(store.search_mail([inbox.id], Search(terms=("widget",))))
    assert [(f.item.message_id, f.score) for f in results] == list(
        zip(ids(4, 3, 2, 5, 1), [9, 8, 4, 1, 1], strict=True)
    )
    assert [f.body_of is not None for f in results] == [True, False, False, True, True]
    # Keyset pages over the rank.
    first = run(store.search_mail([inbox.id], Search(terms=("widget",), limit=2)))
    rest = run(
        store.search_mail([inbox.id], Search(terms=("widget",), limit=10, start=first[-1].position))
    )
    assert [f.item.message_id for f in [*first, *rest]] == ids(4, 3, 2, 5, 1)


def test_only_the_newest_candidates_are_ranked(
    store: Store, inbox: Inbox, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailgate.store.search

    for n in range(5):
        file(store, mailbox, n, "a@x.test", "Gadget" if n == 0 else "Other", "gadget")
    monkeypatch.setattr(mailgate.store.search, "MAX_CANDIDATES", 3)
    # The oldest (the best match) is past the cap; narrowing by time reaches it.
    assert found(store, inbox, "gadget") == ids(4, 3, 2)
    before = int(datetime.datetime(2026, 12, 1, 12, 1, tzinfo=datetime.UTC).timestamp())
    assert found(store, inbox, "gadget", before=before) == ids(0)
    assert MAX_CANDIDATES >= 1000


def test_what_the_index_holds_of_a_message(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    html = (
        "<html><head><style>.hidden { color: red }</style></head>"
        '<body><p class="x">Visible words</p></body></html>'
    )
    file(store, mailbox, 1, "a@x.test", "Html", html, content_type="text/html")
    long = "early " + "filler " * (SEARCH_TEXT_LENGTH // 7) + "late"
    file(store, mailbox, 2, "a@x.test", "Long", long)
    assert found(store, inbox, "visible") == ids(1)
    assert found(store, inbox, "hidden") == []  # what a reader does not see is not indexed
    assert found(store, inbox, "class") == []
    assert found(store, inbox, "early") == ids(2)
    assert found(store, inbox, "late") == []  # past the first 64 KiB of text


def test_the_index_follows_the_mail(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    file(store, mailbox, 1, "a@x.test", "One", "ephemeral")
    file(store, mailbox, 2, "a@x.test", "Two", "lasting")
    assert count(store, "search_texts") == 2
    run(store.store_flags(mailbox.id, [(1, 1)], "+", [DELETED]))
    run(store.expunge(mailbox.id))
    assert count(store, "search_texts") == 1
    assert found(store, inbox, "ephemeral") == []
    if store.db.is_sqlite:
        assert (
            rows(store, "SELECT rowid FROM search_body WHERE search_body MATCH 'ephemeral'") == []
        )
        # FTS5 checks its index against the rows it was made from (an error if they differ).
        run(
            _execute(
                store, "INSERT INTO search_body(search_body, rank) VALUES ('integrity-check', 1)"
            )
        )
    # Spam, Trash and other inboxes are the caller's to leave out.
    spam = run(store.get_mailbox(inbox.id, "Spam"))
    run(store.move(mailbox.id, [(2, 2)], spam.id))
    assert found(store, inbox, "lasting") == ids(2)
    assert found(store, inbox, "lasting", exclude=frozenset({"Spam"})) == []
    assert run(store.search_mail([], Search(terms=("lasting",)))) == []


def test_the_upgrade_indexes_stored_mail(
    store: Store, inbox: Inbox, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    for n in range(3):
        file(store, mailbox, n, f"Sender {n} <s{n}@old.test>", f"Stored {n}", f"archived word{n}")
    downgrade(store, "0009")
    assert "search_texts" not in {r[0] for r in rows(store, _TABLES[store.db.dialect])}
    run(store.close())
    upgraded = open_store()
    assert count(upgraded, "search_texts") == 3
    assert found(upgraded, inbox, "archived") == ids(2, 1, 0)
    assert found(upgraded, inbox, "word1") == ids(1)
    assert found(upgraded, inbox, "s2@old") == ids(2)
    assert found(upgraded, inbox, "stored 0") == ids(0)


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
}


async def _execute(store: Store, sql: str) -> None:
    from sqlalchemy import text

    async with store.db.reader.begin() as conn:
        await conn.execute(text(sql))
