"""SUBSCRIBE and UNSUBSCRIBE, as LSUB and LIST (SUBSCRIBED) report them."""

from __future__ import annotations

from tests.harness import Account, Server
from tests.imap.helpers import list_attributes, list_names
from tests.transcript import Transcript


def _lsub(s: Transcript) -> list[str]:
    return list_names(s.ok('LSUB "" "*"'), b"LSUB")


def test_builtin_mailboxes_start_subscribed(imap: Transcript) -> None:
    assert _lsub(imap) == ["INBOX", "Drafts", "Sent", "Spam", "Trash"]


def test_unsubscribe_and_subscribe(imap: Transcript) -> None:
    imap.ok("CREATE News")
    imap.ok("UNSUBSCRIBE News")
    assert "News" not in _lsub(imap)
    assert "\\Subscribed" not in list_attributes(imap.ok('LIST "" "*" RETURN (SUBSCRIBED)'))["News"]
    imap.ok("SUBSCRIBE News")
    assert "News" in _lsub(imap)
    assert "\\Subscribed" in list_attributes(imap.ok('LIST "" "*" RETURN (SUBSCRIBED)'))["News"]


def test_subscription_is_kept_across_sessions(
    server: Server, account: Account, imap: Transcript
) -> None:
    imap.ok("UNSUBSCRIBE Spam")
    with Transcript.login(server, account) as again:
        assert "Spam" not in _lsub(again)
        again.ok("SUBSCRIBE Spam")
    assert "Spam" in _lsub(imap)


def test_subscribing_twice_is_harmless(imap: Transcript) -> None:
    imap.ok("SUBSCRIBE INBOX")
    imap.ok("SUBSCRIBE INBOX")
    assert _lsub(imap).count("INBOX") == 1


def test_subscribe_inbox_case_insensitively(imap: Transcript) -> None:
    imap.ok("UNSUBSCRIBE inbox")
    assert "INBOX" not in _lsub(imap)
    imap.ok("SUBSCRIBE InBox")
    assert "INBOX" in _lsub(imap)


def test_subscribe_missing_mailbox(imap: Transcript) -> None:
    imap.no("SUBSCRIBE Nope", code="NONEXISTENT")
    imap.no("SUBSCRIBE sent", code="NONEXISTENT")
    assert "Nope" not in _lsub(imap)


def test_syntax_errors_are_bad(imap: Transcript) -> None:
    imap.bad("SUBSCRIBE")
    imap.bad("UNSUBSCRIBE")
    imap.bad("SUBSCRIBE a b")
