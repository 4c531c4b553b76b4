"""WITHIN (RFC 5032): SEARCH OLDER n and YOUNGER n compare the internal date with the time of
the search."""

from __future__ import annotations

import datetime

from tests.imap.helpers import append, message, search_numbers
from tests.transcript import Transcript


def ago(seconds: int) -> str:
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
    return when.strftime("%d-%b-%Y %H:%M:%S +0000")


def test_older_and_younger(imap: Transcript) -> None:
    assert b"WITHIN" in imap.ok("CAPABILITY").untagged[0].split()
    append(imap, message("two days old"), date=ago(2 * 86400))
    append(imap, message("two hours old"), date=ago(7200))
    append(imap, message("new"))
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok("SEARCH YOUNGER 3600")) == [3]
    assert search_numbers(imap.ok("SEARCH OLDER 3600")) == [1, 2]
    assert search_numbers(imap.ok("SEARCH OLDER 86400")) == [1]
    assert search_numbers(imap.ok("UID SEARCH YOUNGER 86400 OLDER 3600")) == [2]
    assert search_numbers(imap.ok("SEARCH OR YOUNGER 3600 OLDER 86400")) == [1, 3]
    assert search_numbers(imap.ok("SEARCH YOUNGER 4294967295")) == [1, 2, 3]


def test_malformed_intervals_are_bad(imap: Transcript) -> None:
    imap.ok("SELECT INBOX")
    for command, reason in (
        ("SEARCH OLDER", b"Missing argument"),
        ("SEARCH OLDER 0", b"non-zero"),
        ("SEARCH YOUNGER -5", b"Expected a number"),
        ("SEARCH YOUNGER 1h", b"Unexpected characters"),
        ("SEARCH YOUNGER 4294967296", b"out of range"),
    ):
        assert reason in imap.bad(command).tagged
