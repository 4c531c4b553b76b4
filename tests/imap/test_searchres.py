"""SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) keeps its result, and "$" names it in later
commands (FETCH, STORE, COPY, MOVE, SEARCH, their UID forms, UID EXPUNGE) until the mailbox is
selected again or closed; "$" with nothing saved is the empty set."""

from __future__ import annotations

from tests.imap.helpers import append, copyuid, fetches, message, search_numbers
from tests.transcript import Transcript


def fill(imap: Transcript, count: int = 5) -> None:
    for i in range(1, count + 1):
        append(imap, message(f"Message {i}"), flags="\\Flagged" if i % 2 else None)
    imap.ok("SELECT INBOX")


def test_capability(imap: Transcript) -> None:
    assert b"SEARCHRES" in imap.ok("CAPABILITY").untagged[0].split()


def test_save_alone_answers_no_esearch_and_dollar_names_it(imap: Transcript) -> None:
    fill(imap)
    r = imap.ok("SEARCH RETURN (SAVE) FLAGGED")
    assert not r.lines(b"ESEARCH")
    assert not r.lines(b"SEARCH")
    assert sorted(fetches(imap.ok("FETCH $ UID"))) == [1, 3, 5]
    assert sorted(fetches(imap.ok("UID FETCH $ FLAGS"))) == [1, 3, 5]
    assert search_numbers(imap.ok("SEARCH $")) == [1, 3, 5]
    assert search_numbers(imap.ok("SEARCH NOT $")) == [2, 4]
    assert search_numbers(imap.ok("UID SEARCH UID $ 1:3")) == [1, 3]
    imap.ok("STORE $ +FLAGS.SILENT (\\Seen)")
    assert search_numbers(imap.ok("SEARCH SEEN")) == [1, 3, 5]
    _, source, _ = copyuid(imap.ok("COPY $ Trash").tagged)
    assert source == [1, 3, 5]


def test_save_with_other_options_and_min_max(imap: Transcript) -> None:
    fill(imap)
    r = imap.ok("UID SEARCH RETURN (SAVE COUNT) FLAGGED")
    assert [line.split(b") ", 1)[1] for line in r.lines(b"ESEARCH")] == [b"UID COUNT 3"]
    # RFC 5182 §2.4: with MIN and/or MAX but neither ALL nor COUNT, only those are saved.
    imap.ok("SEARCH RETURN (SAVE MIN MAX) FLAGGED")
    assert search_numbers(imap.ok("SEARCH $")) == [1, 5]
    imap.ok("SEARCH RETURN (MAX SAVE) FLAGGED")
    assert search_numbers(imap.ok("SEARCH $")) == [5]
    # A search that finds nothing saves the empty set.
    imap.ok("SEARCH RETURN (SAVE) KEYWORD nothing")
    assert search_numbers(imap.ok("SEARCH $")) == []
    assert not fetches(imap.ok("FETCH $ UID"))


def test_move_and_uid_expunge(imap: Transcript) -> None:
    fill(imap)
    imap.ok("SEARCH RETURN (SAVE) 2:3")
    imap.ok("MOVE $ Trash")
    assert search_numbers(imap.ok("UID SEARCH ALL")) == [1, 4, 5]
    # The saved UIDs are gone; "$" still names them and so nothing.
    assert search_numbers(imap.ok("SEARCH $")) == []
    imap.ok("UID SEARCH RETURN (SAVE) UID 4")
    imap.ok("UID STORE $ +FLAGS (\\Deleted)")
    r = imap.ok("UID EXPUNGE $")
    assert r.lines(b"EXPUNGE") == [b"* 2 EXPUNGE"]


def test_empty_until_saved_and_reset_by_select(imap: Transcript) -> None:
    fill(imap, 2)
    assert search_numbers(imap.ok("SEARCH $")) == []
    imap.ok("SEARCH RETURN (SAVE) ALL")
    assert search_numbers(imap.ok("SEARCH $")) == [1, 2]
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok("SEARCH $")) == []
    imap.ok("SEARCH RETURN (SAVE) ALL")
    imap.ok("UNSELECT")
    imap.ok("EXAMINE INBOX")
    assert search_numbers(imap.ok("SEARCH $")) == []


def test_malformed_uses_of_dollar_are_bad(imap: Transcript) -> None:
    fill(imap, 1)
    for command in (
        "FETCH $,1 FLAGS",
        "FETCH $:2 FLAGS",
        "FETCH 1,$ FLAGS",
        "SEARCH $,1",
        "SEARCH RETURN (SAVE SAVE2) ALL",
        "SEARCH RETURN SAVE ALL",
        "COPY $$ Trash",
        "SELECT INBOX (QRESYNC (1 1 $))",
    ):
        r = imap.bad(command)
        assert len(r.tagged.split(b" ", 2)[2]) > 3, r


def test_a_malformed_save_empties_the_saved_result(imap: Transcript) -> None:
    """RFC 5182 §2.4: a SEARCH or SORT with RETURN (SAVE) that fails, even as malformed, leaves
    "$" the empty set, not the result of an earlier SAVE; one without SAVE leaves it alone."""
    fill(imap)
    for malformed in (
        "SEARCH RETURN (SAVE) FLAGGED (",
        "SORT RETURN (SAVE) (DATE) UTF-8 NOSUCHKEY",
    ):
        imap.ok("SEARCH RETURN (SAVE) FLAGGED")
        imap.bad("SEARCH FLAGGED (")
        assert search_numbers(imap.ok("SEARCH $")) == [1, 3, 5]
        imap.bad(malformed)
        assert search_numbers(imap.ok("SEARCH $")) == []
