"""A SEARCH of flags, sizes, UIDs and MODSEQs only is answered by one query in the database
(imap/search.py `_entry_filter`); any other key sends the program through the per-message
matcher. Both must find the same messages: each program here is asked once as it is and once
with `SINCE 1-Jan-1990` (which every message passes) in front, which takes the other way."""

from __future__ import annotations

import random

import pytest

from tests.harness import Account
from tests.imap.helpers import append, message, search_numbers
from tests.transcript import Transcript

FLAG_SETS = [
    "",
    "\\Seen",
    "\\Seen \\Flagged",
    "\\Answered $Work",
    "\\Deleted",
    "\\Draft $work_item",
    "$Work \\Seen",
    "\\Flagged \\Answered \\Seen",
    "Junk $workXitem",
    "\\Seen $Work Junk",
]
LEAVES = [
    "ALL",
    "SEEN",
    "UNSEEN",
    "FLAGGED",
    "UNFLAGGED",
    "ANSWERED",
    "DELETED",
    "UNDELETED",
    "DRAFT",
    "RECENT",
    "NEW",
    "OLD",
    "KEYWORD $Work",
    "KEYWORD $WORK",  # keywords match in any case
    "KEYWORD $work_item",  # "_" is not a wildcard: $workXitem is not found
    "KEYWORD $workXitem",
    "KEYWORD $Wor",  # a whole keyword, not a prefix
    "UNKEYWORD Junk",
    "LARGER 300",
    "SMALLER 300",
    "1:3",
    "2,4:*",
    "*",
    "20:30",
    "UID 3:5",
    "UID 6:*",
    "UID 1,3,5,7,9",
    "UID 100:200",
    "MODSEQ 5",
]


def program(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth < 2 and roll < 0.2:
        return f"OR {program(rng, depth + 1)} {program(rng, depth + 1)}"
    if depth < 2 and roll < 0.35:
        return f"NOT {program(rng, depth + 1)}"
    if depth < 2 and roll < 0.5:
        return f"({program(rng, depth + 1)} {program(rng, depth + 1)})"
    return rng.choice(LEAVES)


@pytest.fixture
def filled(sessions: object, account: Account) -> Transcript:
    session: Transcript = sessions(account)  # type: ignore[operator]
    for i, flags in enumerate(FLAG_SETS):
        append(session, message(f"Message {i}", "x" * (50 * i) + "\r\n"), flags=flags)
    session.ok("SELECT INBOX")
    # A change after the first ones, for MODSEQ, and a message this session was not told of.
    session.ok("STORE 2 +FLAGS (\\Answered)")
    return session


def test_the_database_and_the_matcher_find_the_same(
    filled: Transcript, sessions: object, account: Account
) -> None:
    rng = random.Random(20261207)
    programs = LEAVES + [program(rng) for _ in range(150)]
    for text in programs:
        for uid in ("", "UID "):
            # The whole line: with a MODSEQ key it ends with the highest MODSEQ found.
            fast = filled.ok(f"{uid}SEARCH {text}").lines(b"SEARCH")
            slow = filled.ok(f"{uid}SEARCH SINCE 1-Jan-1990 {text}").lines(b"SEARCH")
            assert fast == slow, f"{uid}SEARCH {text}: {fast} in the database, {slow} matched"


def test_a_message_not_yet_announced_is_not_found(
    filled: Transcript, sessions: object, account: Account
) -> None:
    other: Transcript = sessions(account)  # type: ignore[operator]
    append(other, message("Late"), flags="\\Flagged")
    # SEARCH may not send EXISTS (RFC 3501 §7.4.1 lets it hold expunges; new mail it may
    # announce), but it must not name a message the session has not been told of.
    r = filled.ok("SEARCH FLAGGED")
    exists = max([int(line.split()[1]) for line in r.untagged if line.endswith(b" EXISTS")] or [10])
    assert all(n <= exists for n in search_numbers(r))
