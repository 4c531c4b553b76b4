"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): RETURN (PARTIAL lo:hi) answers the messages at
those positions of a SEARCH's or SORT's result; RETURN (UPDATE) keeps the result live for the
selection, reported as ADDTO and REMOVEFROM with the other untagged responses whenever this
session, another one or new mail changes it, until CANCELUPDATE or the mailbox is left."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, message, search_numbers
from tests.transcript import Response, Transcript

WAIT = 5.0  # bound for a push to arrive during IDLE; it normally takes milliseconds


def fill(s: Transcript, count: int = 5) -> list[int]:
    """`count` messages, each a byte larger than the one before (SIZE orders them), INBOX
    selected; their UIDs."""
    uids = [
        append(s, message("Message", "x" * i + "\r\n", Message_ID=f"<{i}@example.test>"))
        for i in range(1, count + 1)
    ]
    s.ok("SELECT INBOX")
    return uids


def esearch(r: Response) -> list[bytes]:
    """The ESEARCH lines, each without "* ESEARCH (TAG "…") "."""
    return [line.split(b") ", 1)[1] if b") " in line else b"" for line in r.lines(b"ESEARCH")]


def tag_of(r: Response) -> str:
    return r.tagged.split(b" ", 1)[0].decode()


@pytest.fixture
def pair(
    sessions: Callable[[Account], Transcript], account: Account
) -> tuple[Transcript, Transcript]:
    """(watcher, actor): two sessions on one inbox of 5 messages, both with INBOX selected."""
    watcher, actor = sessions(account), sessions(account)
    fill(watcher)
    actor.ok("SELECT INBOX")
    return watcher, actor


def test_capabilities(imap: Transcript) -> None:
    caps = imap.ok("CAPABILITY").untagged[0].split()
    assert b"CONTEXT=SEARCH" in caps
    assert b"CONTEXT=SORT" in caps


# ---------------------------------------------------------------------------- PARTIAL


def test_search_partial(imap: Transcript) -> None:
    uids = fill(imap)
    assert esearch(imap.ok("SEARCH RETURN (PARTIAL 1:1) ALL")) == [b"PARTIAL (1:1 1)"]
    assert esearch(imap.ok("SEARCH RETURN (PARTIAL 4:2) ALL")) == [b"PARTIAL (2:4 2:4)"]
    assert esearch(imap.ok("SEARCH RETURN (PARTIAL 2:10) 1:2,4:5")) == [b"PARTIAL (2:10 2,4:5)"]
    assert esearch(imap.ok("SEARCH RETURN (PARTIAL 6:6) ALL")) == [b"PARTIAL (6:6 NIL)"]
    r = imap.ok("UID SEARCH RETURN (PARTIAL 2:3) ALL")
    assert esearch(r) == [b"UID PARTIAL (2:3 %d:%d)" % (uids[1], uids[2])]
    # With MIN, MAX and COUNT, which speak of the whole result.
    r = imap.ok("SEARCH RETURN (MIN MAX COUNT PARTIAL 2:3) 2:5")
    assert esearch(r) == [b"MIN 2 MAX 5 PARTIAL (2:3 3:4) COUNT 4"]


def test_sort_partial_keeps_the_sort_order(imap: Transcript) -> None:
    uids = fill(imap)
    r = imap.ok("SORT RETURN (PARTIAL 2:4) (REVERSE SIZE) UTF-8 ALL")
    assert esearch(r) == [b"PARTIAL (2:4 4,3,2)"]
    r = imap.ok("UID SORT RETURN (PARTIAL 4:9) (REVERSE SIZE) UTF-8 ALL")
    assert esearch(r) == [b"UID PARTIAL (4:9 %d,%d)" % (uids[1], uids[0])]
    assert esearch(imap.ok("SORT RETURN (PARTIAL 9:9) (SIZE) UTF-8 ALL")) == [b"PARTIAL (9:9 NIL)"]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("PARTIAL 1", b'Expected ":" in the PARTIAL range'),
        ("PARTIAL 1:*", b"Expected a number"),
        ("PARTIAL *:1", b"Expected a number"),
        ("PARTIAL 0:3", b"Expected a non-zero number"),
        ("PARTIAL 1:2 PARTIAL 3:4", b"PARTIAL given twice"),
        ("PARTIAL 1:2 ALL", b"RETURN options PARTIAL and ALL conflict"),
        ("SAVE PARTIAL 1:2", b"RETURN options PARTIAL and SAVE conflict"),
        ("UPDATE PARTIAL 1:2", b"RETURN options PARTIAL and UPDATE conflict"),
        ("UPDATE SAVE", b"RETURN options UPDATE and SAVE conflict"),
    ],
)
def test_malformed_return_options_are_bad(imap: Transcript, options: str, reason: bytes) -> None:
    fill(imap, 1)
    for command in (f"SEARCH RETURN ({options}) ALL", f"SORT RETURN ({options}) (SIZE) UTF-8 ALL"):
        r = imap.bad(command)
        assert r.tagged.split(b" ", 2)[2].startswith(reason), r.tagged
        assert not r.untagged


# ---------------------------------------------------------------------------- UPDATE


def test_update_follows_this_sessions_store_and_expunge(imap: Transcript) -> None:
    fill(imap)
    r = imap.ok("SEARCH RETURN (UPDATE) FLAGGED")
    tag = tag_of(r)
    assert r.untagged == [f'* ESEARCH (TAG "{tag}")'.encode()]
    r = imap.ok("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    assert r.untagged == [f'* ESEARCH (TAG "{tag}") ADDTO (0 2,4)'.encode()]
    r = imap.ok("STORE 2 -FLAGS.SILENT (\\Flagged)")
    assert r.untagged == [f'* ESEARCH (TAG "{tag}") REMOVEFROM (0 2)'.encode()]
    # REMOVEFROM goes before the EXPUNGE, while message 4 still has its number.
    imap.ok("STORE 3:4 +FLAGS.SILENT (\\Deleted)")
    r = imap.ok("EXPUNGE")
    assert r.untagged == [
        f'* ESEARCH (TAG "{tag}") REMOVEFROM (0 4)'.encode(),
        b"* 4 EXPUNGE",
        b"* 3 EXPUNGE",
    ]
    # Numbers are the new ones from then on.
    r = imap.ok("STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert r.untagged == [f'* ESEARCH (TAG "{tag}") ADDTO (0 3)'.encode()]
    # A command that changes nothing sends nothing.
    assert imap.ok("NOOP").untagged == []


def test_update_follows_another_sessions_changes(pair: tuple[Transcript, Transcript]) -> None:
    watcher, actor = pair
    uids = search_numbers(watcher.ok("UID SEARCH ALL"))
    r = watcher.ok("UID SEARCH RETURN (UPDATE COUNT) FLAGGED")
    tag = tag_of(r)
    assert esearch(r) == [b"UID COUNT 0"]
    actor.ok("STORE 1,5 +FLAGS.SILENT (\\Flagged)")
    r = watcher.ok("NOOP")
    assert r.untagged == [
        b"* 1 FETCH (UID %d FLAGS (\\Recent \\Flagged))" % uids[0],
        b"* 5 FETCH (UID %d FLAGS (\\Recent \\Flagged))" % uids[4],
        f'* ESEARCH (TAG "{tag}") UID ADDTO (0 {uids[0]},{uids[4]})'.encode(),
    ]
    actor.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    actor.ok("EXPUNGE")
    r = watcher.ok("NOOP")
    assert r.untagged == [
        f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (0 {uids[0]})'.encode(),
        b"* 1 EXPUNGE",
    ]


def test_update_by_sequence_number_across_another_sessions_expunge(
    pair: tuple[Transcript, Transcript],
) -> None:
    watcher, actor = pair
    tag = tag_of(watcher.ok("SEARCH RETURN (UPDATE) 3,5"))
    actor.ok("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    actor.ok("EXPUNGE")
    r = watcher.ok("NOOP")
    # Message 3 leaves the result, numbered as the client still knows it; the EXPUNGEs follow.
    assert r.untagged == [
        f'* ESEARCH (TAG "{tag}") REMOVEFROM (0 3)'.encode(),
        b"* 3 EXPUNGE",
        b"* 2 EXPUNGE",
    ]


def test_update_during_idle_for_new_mail(
    server: Server, account: Account, other: Account, pair: tuple[Transcript, Transcript]
) -> None:
    watcher, _ = pair
    tag = tag_of(watcher.ok("SEARCH RETURN (UPDATE) UNSEEN 5:*"))
    idle = watcher.next_tag()
    watcher.send(f"{idle} IDLE\r\n")
    assert watcher.read_line().startswith(b"+")
    with server.smtp_client(other) as smtp:
        smtp.sendmail(other.address, [account.address], message("new", From=other.address))
    lines = watcher.read_until(lambda line: line.startswith(b"* ESEARCH"), WAIT)
    # The new message is counted by EXISTS before it is added.
    assert lines == [b"* 6 EXISTS", f'* ESEARCH (TAG "{tag}") ADDTO (0 6)'.encode()]
    watcher.send("DONE\r\n")
    lines = watcher.read_until(lambda line: line.startswith(f"{idle} ".encode()), WAIT)
    # RECENT follows: 6 if this session was first to hear of the new message (test_recent.py).
    assert lines[:-1] in ([b"* 6 RECENT"], [b"* 5 RECENT"])
    assert lines[-1].startswith(f"{idle} OK".encode())


def test_sorted_update_adds_at_positions_in_sort_order(imap: Transcript) -> None:
    fill(imap)
    imap.ok("STORE 2,5 +FLAGS.SILENT (\\Flagged)")
    r = imap.ok("SORT RETURN (UPDATE ALL) (REVERSE SIZE) UTF-8 FLAGGED")
    tag = tag_of(r)
    assert esearch(r) == [b"ALL 5,2"]
    # Sorted 5, 4, 2, 1: 4 goes in at position 2 and 1 at position 4.
    r = imap.ok("STORE 1,4 +FLAGS.SILENT (\\Flagged)")
    assert r.untagged == [f'* ESEARCH (TAG "{tag}") ADDTO (2 4 4 1)'.encode()]
    r = imap.ok("STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert r.untagged == [f'* ESEARCH (TAG "{tag}") ADDTO (3 3)'.encode()]
    r = imap.ok("STORE 4 -FLAGS.SILENT (\\Flagged)")
    assert r.untagged == [f'* ESEARCH (TAG "{tag}") REMOVEFROM (0 4)'.encode()]


def test_cancelupdate_stops_updates(imap: Transcript) -> None:
    fill(imap)
    first = tag_of(imap.ok("SEARCH RETURN (UPDATE) FLAGGED"))
    second = tag_of(imap.ok("SEARCH RETURN (UPDATE) DELETED"))
    imap.ok(f'CANCELUPDATE "{first}"')
    r = imap.ok("STORE 1 +FLAGS.SILENT (\\Flagged \\Deleted)")
    assert r.untagged == [f'* ESEARCH (TAG "{second}") ADDTO (0 1)'.encode()]
    r = imap.bad(f'CANCELUPDATE "{second}" "{first}"')
    assert r.tagged.endswith(f'BAD Tag "{first}" names no search kept up to date'.encode())
    imap.ok(f'CANCELUPDATE "{second}"')
    assert imap.ok("STORE 1 -FLAGS.SILENT (\\Flagged \\Deleted)").untagged == []
    imap.bad("CANCELUPDATE")
    imap.bad(f"CANCELUPDATE {first}")  # a tag-string is a string: quoted or a literal


def test_updates_end_when_the_mailbox_is_left(pair: tuple[Transcript, Transcript]) -> None:
    watcher, actor = pair
    uids = search_numbers(watcher.ok("UID SEARCH ALL"))
    tag = tag_of(watcher.ok("SEARCH RETURN (UPDATE) FLAGGED"))
    watcher.ok("UNSELECT")
    watcher.ok("SELECT INBOX")
    actor.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    # The change is told as ever, without an ESEARCH.
    assert watcher.ok("NOOP").untagged == [b"* 1 FETCH (UID %d FLAGS (\\Flagged))" % uids[0]]
    watcher.bad(f'CANCELUPDATE "{tag}"')
    tag = tag_of(watcher.ok("SEARCH RETURN (UPDATE) SEEN"))
    watcher.ok("CLOSE")
    watcher.ok("SELECT INBOX")
    actor.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    assert not watcher.ok("NOOP").lines(b"ESEARCH")


def test_live_searches_are_bounded(imap: Transcript) -> None:
    fill(imap, 1)
    # A tag that already names a live search is the client's error.
    imap.send(b"dup SEARCH RETURN (UPDATE) ALL\r\n")
    assert imap.finish("dup").tagged == b"dup OK SEARCH completed"
    imap.send(b"dup SEARCH RETURN (UPDATE) ALL\r\n")
    r = imap.finish("dup")
    assert r.tagged == b'dup BAD Tag "dup" already names a search kept up to date'
    for _ in range(9):
        imap.ok("SEARCH RETURN (UPDATE) ALL")
    r = imap.no("SEARCH RETURN (UPDATE) ALL")
    tag = tag_of(r)
    assert (
        r.tagged == f'{tag} NO [NOUPDATE "{tag}"] No more than 10 searches kept up to date'.encode()
    )
    assert not r.untagged
