"""SAVEDATE (RFC 8514): FETCH SAVEDATE is when the message was put into this mailbox (its own
for a copy or a move), and SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED use it."""

from __future__ import annotations

import datetime
import re

from tests.imap.helpers import append, fetches, message, search_numbers
from tests.transcript import Transcript

OLD = "01-Feb-2020 10:00:00 +0100"


def savedates(imap: Transcript, command: str) -> dict[int, datetime.datetime]:
    out = {}
    for seq, text in fetches(imap.ok(command)).items():
        m = re.search(rb'SAVEDATE "([^"]+)"', text)
        assert m is not None, text
        out[seq] = datetime.datetime.strptime(m.group(1).decode(), "%d-%b-%Y %H:%M:%S %z")
    return out


def test_fetch_and_search_save_dates(imap: Transcript) -> None:
    assert b"SAVEDATE" in imap.ok("CAPABILITY").untagged[0].split()
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    append(imap, message("old mail"), date=OLD)
    append(imap, message("new mail"))
    imap.ok("SELECT INBOX")
    saved = savedates(imap, "FETCH 1:* (SAVEDATE INTERNALDATE)")
    after = datetime.datetime.now(datetime.UTC)
    # Saved now, whatever the internal date says.
    assert all(before <= when <= after for when in saved.values()), saved
    assert (
        b'INTERNALDATE "01-Feb-2020 10:00:00 +0100"' in fetches(imap.ok("FETCH 1 INTERNALDATE"))[1]
    )
    today = after.strftime("%d-%b-%Y")
    assert search_numbers(imap.ok(f"SEARCH SAVEDON {today}")) == [1, 2]
    assert search_numbers(imap.ok(f"SEARCH SAVEDBEFORE {today}")) == []
    assert search_numbers(imap.ok("SEARCH SAVEDSINCE 1-Jan-2021")) == [1, 2]
    assert search_numbers(imap.ok("SEARCH BEFORE 1-Jan-2021")) == [1]
    assert search_numbers(imap.ok("SEARCH SAVEDATESUPPORTED")) == [1, 2]
    assert search_numbers(imap.ok("UID SEARCH SAVEDATESUPPORTED NOT SAVEDSINCE 1-Jan-2021")) == []


def test_copy_and_move_are_saved_anew(imap: Transcript) -> None:
    append(imap, message("moving"), date=OLD)
    imap.ok("SELECT INBOX")
    first = savedates(imap, "FETCH 1 SAVEDATE")[1]
    imap.ok("COPY 1 Trash")
    imap.ok("MOVE 1 Drafts")
    for mailbox in ("Trash", "Drafts"):
        imap.ok(f"SELECT {mailbox}")
        copied = savedates(imap, "FETCH 1 SAVEDATE")[1]
        assert copied >= first
        # The internal date travels with the message; the save date does not.
        assert b"01-Feb-2020" in fetches(imap.ok("FETCH 1 INTERNALDATE"))[1]
        assert search_numbers(imap.ok("SEARCH SAVEDSINCE 1-Jan-2021")) == [1]


def test_malformed_save_date_keys_are_bad(imap: Transcript) -> None:
    append(imap, message("x"))
    imap.ok("SELECT INBOX")
    for command, reason in (
        ("SEARCH SAVEDON", b"Missing argument"),
        ("SEARCH SAVEDBEFORE 2024-01-01", b"Invalid date"),
        ("SEARCH SAVEDSINCE 31-Feb-2024", b"Invalid date"),
        ("SEARCH SAVEDATESUPPORTED)", b"Unexpected characters"),
        ("FETCH 1 SAVEDATE[]", b"Unexpected section"),
        ("FETCH 1 SAVEDATES", b"Unknown FETCH item"),
    ):
        r = imap.command(command)
        assert r.status == "BAD", (command, r)
        assert reason in r.tagged, (command, r)
