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


def test_create_does_not_subscribe(imap: Transcript) -> None:
    """RFC 3501 §6.3.3 (and Dovecot, Cyrus): CREATE makes a mailbox; SUBSCRIBE is separate."""
    imap.ok("CREATE Projects/Alpha")  # Projects is made too, unsubscribed as well
    assert "Projects/Alpha" not in _lsub(imap)
    assert "Projects" not in _lsub(imap)
    attrs = list_attributes(imap.ok('LIST "" "Projects*" RETURN (SUBSCRIBED)'))
    assert attrs.keys() == {"Projects", "Projects/Alpha"}
    assert not any("\\Subscribed" in a for a in attrs.values())


def _lsub_lines(s: Transcript, pattern: str) -> list[bytes]:
    return s.ok(f'LSUB "" "{pattern}"').lines(b"LSUB")


def test_lsub_percent_names_unsubscribed_parents_noselect(imap: Transcript) -> None:
    """imaptest's subscribe group (RFC 3501 §6.3.9): with "%", a parent whose child is
    subscribed is answered \\Noselect when it is not subscribed itself, whether or not it
    exists; once nothing below it is subscribed, it is not answered at all."""
    imap.ok("CREATE box/")
    for name in ("box/test", "box/test2/test", "box/test3/test3"):
        imap.ok(f"CREATE {name}")
        imap.ok(f"SUBSCRIBE {name}")
    assert _lsub_lines(imap, "box/%") == [
        b'* LSUB () "/" "box/test"',
        b'* LSUB (\\Noselect) "/" "box/test2"',
        b'* LSUB (\\Noselect) "/" "box/test3"',
    ]
    assert _lsub_lines(imap, "*test") == [
        b'* LSUB () "/" "box/test"',
        b'* LSUB () "/" "box/test2/test"',
    ]
    imap.ok("UNSUBSCRIBE box/test3/test3")
    assert b'* LSUB (\\Noselect) "/" "box/test3"' not in _lsub_lines(imap, "box/%")
    assert _lsub_lines(imap, "box/test3/%") == []


def test_list_subscribed_recursivematch_childinfo(imap: Transcript) -> None:
    """imaptest's listext group (RFC 5258 §3.5): a matching mailbox with a subscribed
    descendant that the patterns do not match is listed with CHILDINFO ("SUBSCRIBED")."""
    for name in ("m/test1", "m/test2/test1", "m/test3", "m/test7/test7", "m/test8/test8"):
        imap.ok(f"CREATE {name}")
    imap.ok("CREATE m/test8/test9")
    for name in ("m/test1", "m/test2/test1", "m/test7/test7", "m/test8/test8", "m/test8/test9"):
        imap.ok(f"SUBSCRIBE {name}")

    def listed(command: str) -> list[bytes]:
        return imap.ok(command).lines(b"LIST")

    assert listed('LIST (SUBSCRIBED RECURSIVEMATCH) "" m/test2% RETURN (CHILDREN)') == [
        b'* LIST (\\HasChildren) "/" "m/test2" (CHILDINFO ("SUBSCRIBED"))'
    ]
    # The subscribed descendant matches the pattern itself: it is listed, not its parent.
    assert listed('LIST (SUBSCRIBED RECURSIVEMATCH) "" m*test7') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "m/test7/test7"'
    ]
    assert listed('LIST (SUBSCRIBED RECURSIVEMATCH) "" m*test8') == [
        b'* LIST (\\HasChildren) "/" "m/test8" (CHILDINFO ("SUBSCRIBED"))',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "m/test8/test8"',
    ]
    assert listed('LIST (SUBSCRIBED RECURSIVEMATCH) "" (m/test2 m/test2/test1)') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "m/test2/test1"'
    ]
    # Without RECURSIVEMATCH only the subscribed ones; RETURN (SUBSCRIBED) marks them.
    assert listed('LIST (SUBSCRIBED) "" m/test2*') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "m/test2/test1"'
    ]
    attrs = list_attributes(imap.ok('LIST "" m/% RETURN (CHILDREN SUBSCRIBED)'))
    assert "\\Subscribed" in attrs["m/test1"]
    assert "\\Subscribed" not in attrs["m/test2"]
    assert "\\HasChildren" in attrs["m/test2"]


def test_a_deleted_mailbox_stays_subscribed_as_nonexistent(imap: Transcript) -> None:
    """imaptest's listext group (RFC 3501 §6.3.6, RFC 5258 §3): DELETE leaves the subscription;
    LIST (SUBSCRIBED) answers it \\NonExistent and LSUB still names it, until UNSUBSCRIBE."""
    imap.ok("CREATE Gone")
    imap.ok("SUBSCRIBE Gone")
    imap.ok("DELETE Gone")
    assert imap.ok('LIST (SUBSCRIBED) "" "G*"').lines(b"LIST") == [
        b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"'
    ]
    assert imap.ok('LIST "" "G*"').lines(b"LIST") == []  # not a mailbox
    assert "Gone" in _lsub(imap)
    imap.ok("UNSUBSCRIBE Gone")
    assert imap.ok('LIST (SUBSCRIBED) "" "G*"').lines(b"LIST") == []
    imap.no("UNSUBSCRIBE Gone", code="NONEXISTENT")


def test_rename_keeps_the_subscription(imap: Transcript) -> None:
    imap.ok("CREATE Before")
    imap.ok("SUBSCRIBE Before")
    imap.ok("RENAME Before After")
    assert "After" in _lsub(imap)
    assert "Before" not in _lsub(imap)
