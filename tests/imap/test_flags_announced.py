"""Keywords are announced before use (RFC 3501 §7.2.6): before a FETCH carries a keyword the
session has not been told of, an untagged FLAGS and PERMANENTFLAGS name it, whether this
session's STORE, another session's or a COPY into the mailbox brought it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import Account
from tests.imap.helpers import append, fetches, flags_of, message
from tests.transcript import Response, Transcript


def announced(r: Response) -> set[str]:
    """The keywords of the FLAGS lines in r (all of them, each must also be in PERMANENTFLAGS)."""
    flags = [
        set(line.split(b"(", 1)[1].rstrip(b")").decode().split()) for line in r.lines(b"FLAGS")
    ]
    permanent = [line for line in r.untagged if b"[PERMANENTFLAGS" in line]
    assert len(flags) == len(permanent), r
    return set().union(*flags)


def assert_told_before_fetch(r: Response, keywords: set[str]) -> None:
    """Each keyword of `keywords` is in a FLAGS line that comes before the first FETCH that
    carries it, and in the PERMANENTFLAGS that follows that FLAGS."""
    told: set[str] = set()
    for line in r.untagged:
        words = line.split(b" ")
        if words[1] == b"FLAGS":
            told |= set(line.split(b"(", 1)[1].rstrip(b")").decode().split())
        elif b"[PERMANENTFLAGS" in line:
            permanent = set(line.split(b"(", 1)[1].split(b")")[0].decode().split())
            assert told <= permanent | {"\\Recent"}, r
        elif len(words) > 2 and words[2] == b"FETCH" and b"FLAGS (" in line:
            carried = {f for f in flags_of(line) if not f.startswith("\\")}
            assert carried & keywords <= told, f"{line!r} before FLAGS named them: {r!r}"
    assert keywords <= told, r


@pytest.fixture
def box(imap: Transcript) -> Transcript:
    for i in range(3):
        append(imap, message(f"m{i}"))
    imap.ok("SELECT INBOX")
    return imap


def test_own_store_announces_new_keywords_first(box: Transcript) -> None:
    r = box.ok("STORE 1 FLAGS (\\Flagged $Keyword1 $Keyword2)")
    assert_told_before_fetch(r, {"$Keyword1", "$Keyword2"})
    assert flags_of(fetches(r)[1]) == {"\\Flagged", "$Keyword1", "$Keyword2"}
    # Known now: not announced again, by this STORE's catch-up or the next ones.
    r = box.ok("STORE 2 +FLAGS ($Keyword1)")
    assert r.lines(b"FLAGS") == []
    assert box.ok("NOOP").lines(b"FLAGS") == []


def test_silent_store_still_announces(box: Transcript) -> None:
    r = box.ok("STORE 1 +FLAGS.SILENT ($Quiet)")
    assert fetches(r) == {}
    assert "$Quiet" in announced(r)
    r = box.ok("FETCH 1 FLAGS")  # told already
    assert flags_of(fetches(r)[1]) == {"$Quiet"}
    assert r.lines(b"FLAGS") == []


def test_nil_as_a_keyword(box: Transcript) -> None:
    """imaptest's nil group: `STORE 1 +FLAGS NIL` is the keyword NIL, like any other."""
    r = box.ok("STORE 1 +FLAGS NIL")
    assert_told_before_fetch(r, {"NIL"})
    assert flags_of(fetches(box.ok("FETCH 1 FLAGS"))[1]) == {"NIL"}


def test_another_sessions_keyword_is_announced_before_fetch(
    box: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    other = sessions(account)
    other.ok("SELECT INBOX")
    other.ok("STORE 2 +FLAGS ($FromElsewhere)")
    # A FETCH before any catch-up reads the new flags from the store: FLAGS goes first.
    r = box.ok("FETCH 1:3 (FLAGS)")
    assert_told_before_fetch(r, {"$FromElsewhere"})
    # (the end of the command then tells of the change as well: a second FETCH for 2)
    assert b"* 2 FETCH (FLAGS (\\Recent $FromElsewhere))" in r.untagged
    other.ok("STORE 3 +FLAGS ($Second)")
    r = box.ok("NOOP")  # the catch-up's FETCH (FLAGS) comes after FLAGS too
    assert_told_before_fetch(r, {"$Second"})
    assert "$Second" in flags_of(fetches(r)[3])


def test_copy_into_the_selected_mailbox_announces_its_keywords(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    imap.ok("CREATE Target")
    imap.ok("SELECT Target")
    source = sessions(account)
    append(source, message("k"), flags="\\Flagged $Copied1 $Copied2")
    source.ok("SELECT INBOX")
    source.ok("COPY 1 Target")
    r = imap.ok("NOOP")
    assert_told_before_fetch(r, {"$Copied1", "$Copied2"})
    r = imap.ok("FETCH 1 FLAGS")
    assert flags_of(fetches(r)[1]) >= {"\\Flagged", "$Copied1", "$Copied2"}
    assert r.lines(b"FLAGS") == []


def test_idle_announces_before_pushing(
    box: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    box.send(b"i1 IDLE\r\n")
    assert box.read_line().startswith(b"+")
    other = sessions(account)
    other.ok("SELECT INBOX")
    other.ok("STORE 1 +FLAGS ($Pushed)")
    lines = box.read_until(lambda line: b"FETCH" in line)
    box.send(b"DONE\r\n")
    r = box.finish("i1", lines)
    assert r.status == "OK"
    assert_told_before_fetch(r, {"$Pushed"})
