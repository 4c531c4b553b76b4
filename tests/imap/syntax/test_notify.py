"""The NOTIFY grammar (syntax/notify.py, RFC 5465 §8): what each event group parses into, and
the rules of §5 and §6 that make a command malformed. The server's answers are in
tests/imap/test_notify.py."""

from __future__ import annotations

import pytest

from mailgate.imap.syntax.values import FetchItem, Notify, NotifyGroup, Section
from tests.imap.syntax.helpers import args, error


def test_none() -> None:
    assert args(b"a NOTIFY NONE") == Notify(None)


def test_the_rfc_example() -> None:
    # RFC 5465 §3's example, its events in parentheses as §8's grammar has them.
    parsed = args(
        b"a notify set status (selected (MessageNew (uid body.peek[header.fields (from to"
        b" subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))"
    )
    header = Section((), "HEADER.FIELDS", ("FROM", "TO", "SUBJECT"))
    assert parsed == Notify(
        (
            NotifyGroup(
                "SELECTED",
                (),
                ("MessageNew", "MessageExpunge"),
                (FetchItem("UID"), FetchItem("BODY", header, None, True)),
            ),
            NotifyGroup("SUBTREE", ("Lists",), ("MessageNew", "MessageExpunge")),
        ),
        status=True,
    )


def test_mailbox_lists_names_and_none() -> None:
    parsed = args(b'a NOTIFY SET (mailboxes (inbox "A b" A&AOk-) NONE) (personal NONE)')
    assert parsed == Notify(
        (NotifyGroup("MAILBOXES", ("INBOX", "A b", "Aé")), NotifyGroup("PERSONAL"))
    )


def test_unknown_events_are_kept_for_badevent() -> None:
    parsed = args(b"a NOTIFY SET (inboxes (messagenew MessageExpunge X-Later))")
    assert parsed == Notify(
        (NotifyGroup("INBOXES", (), ("MessageNew", "MessageExpunge", "X-Later")),)
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a NOTIFY SET (selected (MessageNew))", "MessageNew and MessageExpunge go together"),
        (b"a NOTIFY SET (selected (FlagChange))", "FlagChange needs MessageNew"),
        (b"a NOTIFY SET (selected (SubscriptionChange))", "message events only"),
        (
            b"a NOTIFY SET (selected NONE) (selected-delayed NONE)",
            "may be named in one event group only",
        ),
        (
            b"a NOTIFY SET (personal (MessageNew (UID) MessageExpunge))",
            "applies to the selected mailbox only",
        ),
        (b"a NOTIFY SET (everything NONE)", "Unknown mailbox filter"),
        (b"a NOTIFY SET (personal)", "Expected a space"),
        (b"a NOTIFY SET (personal EVERYTHING)", "Expected a list of events or NONE"),
        (b"a NOTIFY RESET", "Expected NOTIFY NONE or NOTIFY SET"),
        (b"a NOTIFY SET ALL (personal NONE)", "Expected STATUS or an event group"),
    ],
)
def test_errors(line: bytes, message: str) -> None:
    assert message in error(line).message
