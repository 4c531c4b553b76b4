"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: both are advertised, and a session that sends ENABLE
IMAP4rev2 follows RFC 9051 from then on (Appendix A; the changes are its Appendix E): no
\\Recent anywhere, SEARCH answered with ESEARCH, SELECT saying the mailbox's LIST line and
[CLOSED], UTF-8 mailbox names. A session that does not enable it stays IMAP4rev1."""

from __future__ import annotations

from collections.abc import Callable

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    fetches,
    flags_of,
    list_names,
    message,
    number_of,
    search_numbers,
    status_items,
)
from tests.transcript import Response, Transcript


def enable_rev2(s: Transcript) -> None:
    r = s.ok("ENABLE IMAP4rev2")
    assert r.untagged == [b"* ENABLED IMAP4rev2"]


def rev2_session(sessions: Callable[[Account], Transcript], account: Account) -> Transcript:
    s = sessions(account)
    enable_rev2(s)
    return s


def esearch(r: Response, data: str = "") -> list[bytes]:
    """The one ESEARCH line a command's answer should hold, correlated by its tag."""
    tag = r.tagged.split()[0].decode()
    return [f'* ESEARCH (TAG "{tag}"){data}'.encode()]


def recent_lines(r: Response) -> list[bytes]:
    return [line for line in r.untagged if line.endswith(b" RECENT") or b"\\Recent" in line]


def test_both_revisions_are_offered(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        assert b"IMAP4rev1 IMAP4rev2 " in s.greeting
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        caps = s.ok("CAPABILITY").lines(b"CAPABILITY")[0].split()
        assert caps[2:4] == [b"IMAP4rev1", b"IMAP4rev2"]
        # Any case enables it; the answer spells it as RFC 9051 does.
        assert s.ok("ENABLE imap4REV2").untagged == [b"* ENABLED IMAP4rev2"]
        # RFC 5161: the capability list stays as it was.
        assert s.ok("CAPABILITY").lines(b"CAPABILITY")[0].split() == caps


def test_malformed_or_misplaced_enable(server: Server, imap: Transcript) -> None:
    with Transcript.connect(server) as s:
        assert b"Log in first" in s.bad("ENABLE IMAP4rev2").tagged
    imap.bad("ENABLE")
    imap.bad("ENABLE IMAP4rev2 (QRESYNC)")
    imap.bad('ENABLE "IMAP4rev2"')
    # Still IMAP4rev1 after all that.
    imap.ok("SELECT INBOX")
    assert imap.ok("SEARCH ALL").lines(b"SEARCH") == [b"* SEARCH"]


def test_no_recent_where_a_rev1_session_has_it(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    append(imap, message("one"))
    rev2 = rev2_session(sessions, account)
    r = rev2.ok("SELECT INBOX")
    assert number_of(r, b"EXISTS") == 1
    assert recent_lines(r) == []
    assert not any(b"[UNSEEN " in line for line in r.untagged)  # deprecated in RFC 9051
    assert flags_of(fetches(rev2.ok("FETCH 1 FLAGS"))[1], recent=True) == set()
    # New mail: EXISTS, and no RECENT after it.
    rev1 = sessions(account)
    rev1.ok("SELECT INBOX")
    append(imap, message("two"))
    assert rev2.ok("NOOP").untagged == [b"* 2 EXISTS"]
    assert rev1.ok("NOOP").untagged == [b"* 2 EXISTS", b"* 2 RECENT"]
    # An IMAP4rev2 session takes no \Recent from the IMAP4rev1 ones: the first rev1 session
    # to select the mailbox had message 1, and message 2 went to the one that heard of it.
    assert recent_lines(rev2.ok("FETCH 1:* FLAGS")) == []
    assert flags_of(fetches(rev1.ok("FETCH 2 FLAGS"))[2], recent=True) == {"\\Recent"}


def test_a_rev2_session_leaves_recent_to_rev1_sessions(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    append(imap, message("one"))
    rev2 = rev2_session(sessions, account)
    rev2.ok("SELECT INBOX")
    rev2.ok("CLOSE")
    r = imap.ok("SELECT INBOX")
    assert number_of(r, b"RECENT") == 1


def test_idle_pushes_exists_without_recent(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    rev2 = rev2_session(sessions, account)
    rev2.ok("SELECT INBOX")
    tag = rev2.next_tag()
    rev2.send(f"{tag} IDLE\r\n")
    assert rev2.read_line().startswith(b"+ ")
    append(imap, message("pushed"))
    assert rev2.read_until(lambda line: line.endswith(b"EXISTS")) == [b"* 1 EXISTS"]
    rev2.send(b"DONE\r\n")
    assert rev2.finish(tag).status == "OK"


def test_status_and_search_have_no_recent_items(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    append(imap, message("one"))
    rev2 = rev2_session(sessions, account)
    assert b"RFC 9051" in rev2.bad("STATUS INBOX (MESSAGES RECENT)").tagged
    rev2.bad('LIST "" "*" RETURN (STATUS (RECENT))')
    # What IMAP4rev2 has: SIZE and DELETED besides the IMAP4rev1 items.
    items = status_items(rev2.ok("STATUS INBOX (MESSAGES UIDNEXT UNSEEN DELETED SIZE)"))
    assert items["MESSAGES"] == 1
    assert items["DELETED"] == 0
    assert items["SIZE"] == len(message("one"))
    rev2.ok("SELECT INBOX")
    for key in ("RECENT", "NEW", "OLD", "NOT RECENT", "OR SEEN NEW"):
        rev2.bad(f"SEARCH {key}")
    # The IMAP4rev1 session next to it still has them.
    assert status_items(imap.ok("STATUS INBOX (RECENT)")) == {"RECENT": 1}


def test_search_is_answered_with_esearch(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    uids = [append(imap, message(f"m{i}")) for i in range(3)]
    rev2 = rev2_session(sessions, account)
    rev2.ok("SELECT INBOX")
    rev2.ok("STORE 2 +FLAGS (\\Seen)")
    r = rev2.ok("SEARCH UNSEEN")
    assert r.untagged == esearch(r, " ALL 1,3")
    r = rev2.ok("UID SEARCH ALL")
    assert r.untagged == esearch(r, f" UID ALL {uids[0]}:{uids[2]}")
    # Nothing found: no ALL (RFC 9051 §7.3.4).
    r = rev2.ok("SEARCH DELETED")
    assert r.untagged == esearch(r)
    # RETURN options as with ESEARCH; SAVE alone answers nothing, "$" then names the result.
    r = rev2.ok("SEARCH RETURN (COUNT MIN) UNSEEN")
    assert r.untagged == esearch(r, " MIN 1 COUNT 2")
    assert rev2.ok("SEARCH RETURN (SAVE) SEEN").untagged == []
    assert fetches(rev2.ok("FETCH $ UID")) == {2: f"UID {uids[1]}".encode()}
    # With a MODSEQ key the highest MODSEQ follows, as ESEARCH says it.
    r = rev2.ok("SEARCH MODSEQ 1")
    assert r.lines(b"ESEARCH")[0].split()[4:6] == [b"ALL", b"1:3"]
    assert b" MODSEQ " in r.lines(b"ESEARCH")[0]
    # SORT is not part of IMAP4rev2 and answers as before; an IMAP4rev1 SEARCH too.
    assert rev2.ok("SORT (SUBJECT) UTF-8 ALL").lines(b"SORT") == [b"* SORT 1 2 3"]
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok("SEARCH UNSEEN")) == [1, 3]


def test_select_says_list_and_closed(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    imap.ok('CREATE "Projekte/Zürich"')
    rev2 = rev2_session(sessions, account)
    r = rev2.ok("SELECT INBOX")
    assert r.lines(b"LIST") == [b'* LIST (\\HasNoChildren) "/" "INBOX"']
    assert not any(b"[CLOSED]" in line for line in r.untagged)
    # Selecting again closes the first with [CLOSED], before anything of the second.
    r = rev2.ok("EXAMINE Sent")
    assert r.untagged[0].startswith(b"* OK [CLOSED]")
    assert r.lines(b"LIST") == [b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"']
    assert r.tagged.split()[2] == b"[READ-ONLY]"
    # The name in UTF-8, children told.
    r = rev2.ok('SELECT "Projekte"')
    assert r.lines(b"LIST") == [b'* LIST (\\HasChildren) "/" "Projekte"']
    r = rev2.ok('SELECT "Projekte/Zürich"')
    assert r.lines(b"LIST") == ['* LIST (\\HasNoChildren) "/" "Projekte/Zürich"'.encode()]
    # An IMAP4rev1 session gets neither (nor [CLOSED] without QRESYNC).
    imap.ok("SELECT INBOX")
    r = imap.ok("SELECT Sent")
    assert r.lines(b"LIST") == []
    assert not any(b"[CLOSED]" in line for line in r.untagged)


def test_unsolicited_fetch_carries_the_uid(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    uid = append(imap, message("one"))
    rev2 = rev2_session(sessions, account)
    rev2.ok("SELECT INBOX")
    imap.ok("SELECT INBOX")
    imap.ok("STORE 1 +FLAGS (\\Flagged)")
    assert rev2.ok("NOOP").untagged == [f"* 1 FETCH (UID {uid} FLAGS (\\Flagged))".encode()]


def test_utf8_mailbox_names_and_strings(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    rev2 = rev2_session(sessions, account)
    rev2.ok('CREATE "Entwürfe"')
    rev2.ok('CREATE "R&D"')
    assert {"Entwürfe", "R&D"} <= set(list_names(rev2.ok('LIST "" "*"')))
    assert {"Entw&APw-rfe", "R&-D"} <= set(list_names(imap.ok('LIST "" "*"')))
    rev2.bad(b'CREATE "caf\xe9"')  # 8-bit, not UTF-8
    # IMAP4rev2 keeps SEARCH's CHARSET (only UTF8=ACCEPT bans it).
    append(imap, message("Grüße"), "Entw&APw-rfe")
    rev2.ok('SELECT "Entwürfe"')
    r = rev2.ok('SEARCH CHARSET UTF-8 SUBJECT "Grüße"')
    assert r.lines(b"ESEARCH")[0].endswith(b" ALL 1")
    assert rev2.ok('SEARCH SUBJECT "Grüße"').lines(b"ESEARCH")[0].endswith(b" ALL 1")


def test_what_rev2_keeps_of_rev1(
    sessions: Callable[[Account], Transcript], account: Account
) -> None:
    rev2 = rev2_session(sessions, account)
    body = "Grüße.\r\n".encode()
    append(rev2, message("one", body.decode()))
    # LSUB (deprecated, RFC 9051 Appendix E item 19) still answers; so does BINARY.
    assert "INBOX" in list_names(rev2.ok('LSUB "" "*"'), b"LSUB")
    rev2.ok("SELECT INBOX")
    item = fetches(rev2.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"))[1]
    assert b"BINARY.SIZE[1] %d" % len(body) in item
    # The IMAP4rev1 flavour of ENABLE still works beside it.
    assert rev2.ok("ENABLE CONDSTORE").untagged[-1] == b"* ENABLED CONDSTORE"


def test_delete_of_a_parent_says_haschildren(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    imap.ok('CREATE "Eltern/Kind"')
    rev2 = rev2_session(sessions, account)
    rev2.no('DELETE "Eltern"', code="HASCHILDREN")  # RFC 9051 §6.3.5
    imap.no('DELETE "Eltern"', code="CANNOT")  # IMAP4rev1 has no such code
    rev2.ok('DELETE "Eltern/Kind"')
    rev2.ok('DELETE "Eltern"')


def test_enable_with_a_mailbox_selected_drops_recent(imap: Transcript) -> None:
    append(imap, message("one"))
    assert number_of(imap.ok("SELECT INBOX"), b"RECENT") == 1
    enable_rev2(imap)  # late (RFC 5161 asks for it before SELECT), but taken
    assert flags_of(fetches(imap.ok("FETCH 1 FLAGS"))[1], recent=True) == set()
    imap.bad("SEARCH RECENT")


def test_list_subscribed_names_a_deleted_mailbox_nonexistent(
    sessions: Callable[[Account], Transcript], account: Account
) -> None:
    rev2 = rev2_session(sessions, account)
    rev2.ok('CREATE "Obst/Äpfel"')
    rev2.ok('SUBSCRIBE "Obst/Äpfel"')
    rev2.ok('DELETE "Obst/Äpfel"')
    # RFC 9051 §6.3.9.1: the subscription outlives the mailbox, listed \NonExistent.
    r = rev2.ok('LIST (SUBSCRIBED) "" "Obst/*"')
    assert r.lines(b"LIST") == ['* LIST (\\NonExistent \\Subscribed) "/" "Obst/Äpfel"'.encode()]
    r = rev2.ok('LIST "" "Obst*" RETURN (SUBSCRIBED CHILDREN)')
    assert r.lines(b"LIST") == [b'* LIST (\\HasNoChildren) "/" "Obst"']
