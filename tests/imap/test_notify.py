"""NOTIFY (RFC 5465): one session asks with NOTIFY SET, another changes the inbox (APPEND, SMTP,
STORE, EXPUNGE, CREATE/RENAME/DELETE, SUBSCRIBE), and the first is told, without asking, the
exact untagged responses: STATUS for other mailboxes, EXISTS/FETCH/EXPUNGE for the selected one,
LIST for names and subscriptions. The RFC's example is a case here (§3's, with the event list
in parentheses as its grammar in §8 has it)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

import pytest

from mailgate.imap.ext import notify
from mailgate.store.api import Store
from tests.harness import Account, Server, client_tls
from tests.imap.helpers import append, message
from tests.transcript import Transcript

WAIT = 5.0  # bound for a notification to arrive; it normally takes milliseconds
SUPPORTED = "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"

Sessions = Callable[[Account], Transcript]


_STATUS_TAIL = re.compile(rb" UIDVALIDITY [1-9]\d* HIGHESTMODSEQ [1-9]\d*\)$")


def plain(lines: list[bytes]) -> list[bytes]:
    """The lines with each STATUS's UIDVALIDITY and HIGHESTMODSEQ, which it must end with,
    taken off (their values are the server's; one test below checks them)."""
    out = []
    for line in lines:
        if line.startswith(b"* STATUS "):
            assert _STATUS_TAIL.search(line), line
            line = _STATUS_TAIL.sub(b")", line)
        out.append(line)
    return out


def told(s: Transcript, expected: list[bytes]) -> None:
    """The session is told exactly these untagged lines, in order, with no command running
    (STATUS lines as `plain` makes them)."""
    lines = s.read_until(lambda _: True, WAIT)
    while len(lines) < len(expected):
        lines += s.read_until(lambda _: True, WAIT)
    assert plain(lines) == expected


def quiet(s: Transcript) -> None:
    """Nothing was told: a NOOP finds nothing waiting either."""
    assert s.ok("NOOP").untagged == []


def uidvalidity(s: Transcript, mailbox: str) -> int:
    line = s.ok(f'STATUS "{mailbox}" (UIDVALIDITY)').untagged[0]
    m = re.search(rb"UIDVALIDITY (\d+)", line)
    assert m is not None, line
    return int(m.group(1))


def test_capability(sessions: Sessions, account: Account) -> None:
    s = sessions(account)
    assert b" NOTIFY" in s.ok("CAPABILITY").untagged[0]


def test_set_status_then_other_mailboxes_are_told_as_status(
    sessions: Sessions, account: Account
) -> None:
    watcher, actor = sessions(account), sessions(account)
    actor.ok("CREATE Lists/ietf")
    append(actor, message("old"), "Lists")
    r = watcher.ok(
        "NOTIFY SET STATUS (selected (MessageNew (uid body.peek[header.fields (from to subject)])"
        " MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))"
    )
    # §3: a STATUS for each mailbox the filters name, before the tagged OK.
    assert plain(r.untagged) == [
        b'* STATUS "Lists" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)',
        b'* STATUS "Lists/ietf" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)',
    ]
    append(actor, message("new"), "Lists/ietf")
    told(watcher, [b'* STATUS "Lists/ietf" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])
    # A mailbox outside the filters is not told of.
    append(actor, message("elsewhere"), "INBOX")
    actor.ok("SELECT Lists")
    actor.ok("STORE 1 +FLAGS (\\Deleted)")
    actor.ok("EXPUNGE")
    told(watcher, [b'* STATUS "Lists" (MESSAGES 0 UIDNEXT 2 UNSEEN 0)'])
    quiet(watcher)


def test_smtp_delivery_to_inboxes(
    server: Server, sessions: Sessions, account: Account, other: Account
) -> None:
    watcher = sessions(account)
    watcher.ok("NOTIFY SET (inboxes (MessageNew MessageExpunge))")
    with server.smtp_client(other) as smtp:
        smtp.sendmail(other.address, [account.address], message("mx", From=other.address))
    told(watcher, [b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])
    # Spam is delivered to as well; Drafts is not an inbox.
    actor = sessions(account)
    append(actor, message("not an inbox"), "Drafts")
    append(actor, message("junk"), "Spam")
    told(watcher, [b'* STATUS "Spam" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])


def test_flag_changes_with_condstore_carry_highestmodseq(
    sessions: Sessions, account: Account
) -> None:
    watcher, actor = sessions(account), sessions(account)
    append(actor, message("one"), "Drafts")
    watcher.ok("ENABLE CONDSTORE")
    watcher.ok("NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))")
    actor.ok("SELECT Drafts")
    actor.ok("STORE 1 +FLAGS (\\Seen)")
    lines = watcher.read_until(lambda _: True, WAIT)
    m = re.fullmatch(
        rb'\* STATUS "Drafts" \(MESSAGES 1 UIDNEXT 2 UNSEEN 0 UIDVALIDITY (\d+) '
        rb"HIGHESTMODSEQ (\d+)\)",
        lines[0],
    )
    assert m is not None, lines
    assert int(m.group(1)) == uidvalidity(actor, "Drafts")
    modseq = re.search(
        rb"HIGHESTMODSEQ (\d+)", actor.ok("STATUS Drafts (HIGHESTMODSEQ)").untagged[0]
    )
    assert modseq is not None
    assert modseq.group(1) == m.group(2)


def test_without_flagchange_flag_changes_are_not_told(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    append(actor, message("one"), "Drafts")
    watcher.ok("NOTIFY SET (personal (MessageNew MessageExpunge))")
    actor.ok("SELECT Drafts")
    actor.ok("STORE 1 +FLAGS (\\Seen)")
    append(actor, message("two"), "Drafts")
    told(watcher, [b'* STATUS "Drafts" (MESSAGES 2 UIDNEXT 3 UNSEEN 1)'])


def test_selected_mailbox_is_pushed_with_the_fetch_att_list(
    sessions: Sessions, account: Account
) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("SELECT INBOX")
    watcher.ok(
        "NOTIFY SET (selected (MessageNew (UID BODY[HEADER.FIELDS (Subject)]) MessageExpunge"
        " FlagChange)) (personal (MessageNew MessageExpunge))"
    )
    uid = append(actor, message("pushed"))
    told(
        watcher,
        [
            b"* 1 EXISTS",
            b"* 1 RECENT",
            b"* 1 FETCH (UID %d BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: pushed\r\n\r\n)"
            % uid,
        ],
    )
    actor.ok("SELECT INBOX")
    actor.ok("STORE 1 +FLAGS (\\Flagged)")
    # The selected mailbox gets no STATUS, though "personal" names it too.
    told(watcher, [b"* 1 FETCH (UID %d FLAGS (\\Recent \\Flagged))" % uid])
    actor.ok("STORE 1 +FLAGS (\\Deleted)")
    told(watcher, [b"* 1 FETCH (UID %d FLAGS (\\Recent \\Flagged \\Deleted))" % uid])
    actor.ok("EXPUNGE")
    told(watcher, [b"* 1 EXPUNGE"])
    quiet(watcher)


def test_the_selected_filter_follows_the_selection(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("NOTIFY SET (selected (MessageNew MessageExpunge))")
    append(actor, message("before any selection"))
    watcher.ok("SELECT Drafts")
    append(actor, message("into Drafts"), "Drafts")
    told(watcher, [b"* 1 EXISTS", b"* 1 RECENT"])
    watcher.ok("SELECT INBOX")
    append(actor, message("into INBOX"))
    told(watcher, [b"* 2 EXISTS", b"* 2 RECENT"])  # its SELECT took the first one


def test_the_pushed_fetch_does_not_set_seen(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("SELECT INBOX")
    watcher.ok("NOTIFY SET (selected (MessageNew (BODY[TEXT]) MessageExpunge))")
    append(actor, message("body", body="Just text.\r\n"))
    told(
        watcher,
        [b"* 1 EXISTS", b"* 1 RECENT", b"* 1 FETCH (UID 1 BODY[TEXT] {12}\r\nJust text.\r\n)"],
    )
    assert watcher.ok("FETCH 1 FLAGS").untagged == [b"* 1 FETCH (FLAGS (\\Recent))"]


def test_selected_delayed_holds_expunges_for_a_command(
    sessions: Sessions, account: Account
) -> None:
    watcher, actor = sessions(account), sessions(account)
    append(actor, message("first"))
    watcher.ok("SELECT INBOX")
    watcher.ok("NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
    actor.ok("SELECT INBOX")
    actor.ok("STORE 1 +FLAGS (\\Deleted)")
    actor.ok("EXPUNGE")
    append(actor, message("second"))
    # The new message is told at once; the expunged one keeps its number until a command.
    lines = watcher.read_until(lambda line: line.endswith(b"RECENT"), WAIT)
    assert lines[0] == b"* 2 EXISTS"
    assert len(lines) == 2  # and RECENT (test_recent.py says which)
    assert watcher.ok("NOOP").untagged == [b"* 1 EXPUNGE"]


def test_without_a_selected_filter_the_selected_mailbox_waits_for_a_command(
    sessions: Sessions, account: Account
) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("SELECT INBOX")
    watcher.ok("NOTIFY SET (personal (MessageNew MessageExpunge))")
    append(actor, message("quiet"))
    append(actor, message("marker"), "Drafts")
    told(watcher, [b'* STATUS "Drafts" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])
    assert watcher.ok("NOOP").untagged == [b"* 1 EXISTS", b"* 1 RECENT"]
    actor.ok("SELECT INBOX")
    actor.ok("STORE 1 +FLAGS (\\Answered)")
    assert watcher.ok("NOOP").untagged == [b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Answered))"]


def test_flag_changes_of_the_selected_mailbox_need_flagchange(
    sessions: Sessions, account: Account
) -> None:
    """As in Dovecot: while NOTIFY names the selected mailbox without FlagChange, other
    sessions' flag changes there are not told, not even at the next command; NOTIFY NONE
    brings them back."""
    watcher, actor = sessions(account), sessions(account)
    append(actor, message("one"))
    watcher.ok("SELECT INBOX")
    actor.ok("SELECT INBOX")
    watcher.ok("NOTIFY SET (selected (MessageNew MessageExpunge))")
    actor.ok("STORE 1 +FLAGS (\\Answered)")
    quiet(watcher)
    watcher.ok("NOTIFY NONE")
    actor.ok("STORE 1 +FLAGS (\\Flagged)")
    assert watcher.ok("NOOP").untagged == [
        b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Answered \\Flagged))"
    ]


def test_status_reaches_an_idle_session(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("SELECT INBOX")
    watcher.ok("NOTIFY SET (mailboxes (Drafts Trash) (MessageNew MessageExpunge))")
    tag = watcher.next_tag()
    watcher.send(f"{tag} IDLE\r\n")
    assert watcher.read_line().startswith(b"+")
    append(actor, message("while idle"), "Trash")
    told(watcher, [b'* STATUS "Trash" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])
    watcher.send("DONE\r\n")
    assert watcher.finish(tag).status == "OK"


def test_mailbox_names_are_told_as_list(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("NOTIFY SET (personal (MailboxName))")
    actor.ok("CREATE Projects")
    told(watcher, [b'* LIST (\\HasNoChildren) "/" "Projects"'])
    actor.ok("RENAME Projects Done")
    told(watcher, [b'* LIST (\\HasNoChildren) "/" "Done" ("OLDNAME" ("Projects"))'])
    actor.ok("CREATE Done/2024")
    told(watcher, [b'* LIST (\\HasNoChildren) "/" "Done/2024"'])
    actor.ok("DELETE Done/2024")
    told(watcher, [b'* LIST (\\NonExistent) "/" "Done/2024"'])
    # Message events were not asked for.
    append(actor, message("not told"), "Done")
    quiet(watcher)


def test_names_are_told_in_the_sessions_form(sessions: Sessions, account: Account) -> None:
    utf8, utf7, actor = sessions(account), sessions(account), sessions(account)
    utf8.ok("ENABLE UTF8=ACCEPT")
    for s in (utf8, utf7):
        s.ok("NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    actor.ok("CREATE R&AOk-unions")
    told(utf8, ['* LIST (\\HasNoChildren) "/" "Réunions"'.encode()])
    told(utf7, [b'* LIST (\\HasNoChildren) "/" "R&AOk-unions"'])
    append(actor, message("agenda"), "R&AOk-unions")
    told(utf8, ['* STATUS "Réunions" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'.encode()])
    told(utf7, [b'* STATUS "R&AOk-unions" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])


def test_subscriptions_are_told_as_list(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    actor.ok("CREATE Projects")
    watcher.ok("NOTIFY SET (subtree Projects (SubscriptionChange))")
    actor.ok("SUBSCRIBE Projects")
    told(watcher, [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Projects"'])
    actor.ok("SUBSCRIBE Projects")  # already: nothing changes, nothing is told
    actor.ok("UNSUBSCRIBE Projects")
    told(watcher, [b'* LIST (\\HasNoChildren) "/" "Projects"'])
    actor.ok("SUBSCRIBE Sent")  # outside the subtree
    quiet(watcher)


def test_subscribed_filter_follows_the_subscriptions(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    actor.ok("CREATE Projects")
    watcher.ok("NOTIFY SET (subscribed (MessageNew MessageExpunge))")
    append(actor, message("unsubscribed yet"), "Projects")
    actor.ok("SUBSCRIBE Projects")
    append(actor, message("subscribed now"), "Projects")
    told(watcher, [b'* STATUS "Projects" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)'])


def test_changes_the_node_missed_are_told_after_a_resync(
    server: Server, sessions: Sessions, account: Account
) -> None:
    """A node whose link to the others was cut may have missed events; once it is back it has
    every listener catch up from the store (store/notify.py), and a NOTIFY session is told what
    differs from what it last knew. Here the changes come through a second store on the same
    SQLite file, which tells this node nothing, as another node would while the link is down."""
    if server.backend != "sqlite":
        pytest.skip("on PostgreSQL every store tells every node; tests/e2e cut the link")
    watcher = sessions(account)
    watcher.ok("NOTIFY SET (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))")
    elsewhere = server.call(Store.open(server.store.db.url, migrate=False))
    try:
        inbox = server.call(elsewhere.get_inbox(account.address))
        drafts = server.call(elsewhere.get_mailbox(inbox.id, "Drafts"))
        server.call(elsewhere.append(drafts.id, message("missed")))
        server.call(elsewhere.create_mailbox(inbox.id, "Missed"))
        server.call(elsewhere.set_subscribed(inbox.id, "Missed", True))
    finally:
        server.call(elsewhere.close())
    quiet(watcher)
    server.loop.loop.call_soon_threadsafe(server.store.bus.resync)
    told(
        watcher,
        [
            b'* LIST (\\HasNoChildren \\Subscribed) "/" "Missed"',
            b'* LIST (\\HasNoChildren \\Subscribed) "/" "Missed"',
            b'* STATUS "Drafts" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)',
        ],
    )


def test_notify_none_stops_them(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    append(actor, message("told"), "Drafts")
    told(watcher, [b'* STATUS "Drafts" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])
    watcher.ok("NOTIFY NONE")
    append(actor, message("not told"), "Drafts")
    actor.ok("CREATE Quiet")
    quiet(watcher)
    quiet(watcher)


def test_a_session_that_does_not_read_is_told_notificationoverflow(
    server: Server, sessions: Sessions, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 5465 §5.8: notifications pile up while the client reads nothing (here a FETCH of a
    big message stalls on its tiny receive window); past the limit the session is told
    NOTIFICATIONOVERFLOW once it reads again, and NOTIFY NONE is in effect."""
    monkeypatch.setattr(notify, "MAX_PENDING", 2)
    actor = sessions(account)
    big = message("big", body=("y" * 998 + "\r\n") * 9000)
    append(actor, big, "INBOX")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((server.host, server.imaps))
    watcher = Transcript(client_tls().wrap_socket(raw))
    watcher.ok(f'LOGIN "{account.address}" "{account.key}"')
    watcher.ok("SELECT INBOX")
    watcher.ok("NOTIFY SET (personal (MessageNew MessageExpunge))")
    tag = watcher.next_tag()
    watcher.send(f"{tag} FETCH 1 BODY.PEEK[]\r\n")
    for mailbox in ("Drafts", "Trash", "Spam"):
        append(actor, message("waits"), mailbox)
    r = watcher.finish(tag)
    assert r.status == "OK"
    assert len(r.untagged) == 1
    told(
        watcher,
        [b"* OK [NOTIFICATIONOVERFLOW] Too many notifications waited; NOTIFY NONE is in effect"],
    )
    append(actor, message("not told"), "Drafts")
    quiet(watcher)
    watcher.close()


def test_notify_set_replaces_the_last_one(sessions: Sessions, account: Account) -> None:
    watcher, actor = sessions(account), sessions(account)
    watcher.ok("NOTIFY SET (mailboxes Drafts (MessageNew MessageExpunge))")
    watcher.ok("NOTIFY SET (mailboxes Trash (MessageNew MessageExpunge))")
    append(actor, message("not told"), "Drafts")
    append(actor, message("told"), "Trash")
    told(watcher, [b'* STATUS "Trash" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'])


@pytest.mark.parametrize(
    "events",
    [
        "MessageNew MessageExpunge AnnotationChange",
        "MailboxMetadataChange",
        "ServerMetadataChange",
        "MessageNew MessageExpunge SomethingNew",
    ],
)
def test_unsupported_events_are_no_badevent(
    sessions: Sessions, account: Account, events: str
) -> None:
    s = sessions(account)
    r = s.no(f"NOTIFY SET (personal ({events}))")
    assert r.code == SUPPORTED


def test_too_many_mailbox_names_is_notificationoverflow(
    sessions: Sessions, account: Account
) -> None:
    s = sessions(account)
    names = " ".join(f"box{i}" for i in range(101))
    s.no(
        f"NOTIFY SET (mailboxes ({names}) (MessageNew MessageExpunge))", code="NOTIFICATIONOVERFLOW"
    )


@pytest.mark.parametrize(
    "arguments",
    [
        "",
        "SET",
        "SET STATUS",
        "ALL",
        "SET (personal)",
        "SET (personal ())",
        "SET personal (MessageNew MessageExpunge)",
        "SET (anything (MessageNew MessageExpunge))",
        "SET (subtree (MessageNew MessageExpunge))",
        "SET (mailboxes () (MessageNew MessageExpunge))",
        "SET (selected (MessageNew))",
        "SET (selected (MessageExpunge))",
        "SET (selected (FlagChange))",
        "SET (selected-delayed (MessageNew FlagChange))",
        "SET (selected (MailboxName))",
        "SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)",
        "SET (personal (MessageNew (UID) MessageExpunge))",
        "SET (selected (MessageNew (NOSUCHITEM) MessageExpunge))",
        "SET (selected (MessageNew (RFC822) MessageExpunge))",
        "SET (selected MessageNew (uid) MessageExpunge)",
        "SET (personal (MessageNew MessageExpunge)) trailing",
        "NONE extra",
    ],
)
def test_malformed_is_bad(sessions: Sessions, account: Account, arguments: str) -> None:
    s = sessions(account)
    s.bad(f"NOTIFY {arguments}".rstrip())
    s.ok("NOOP")


def test_forms_the_grammar_allows(sessions: Sessions, account: Account) -> None:
    s = sessions(account)
    s.ok("NOTIFY SET (selected NONE)")
    s.ok("NOTIFY SET (personal NONE) (inboxes NONE)")
    s.ok('NOTIFY SET (mailboxes ("INBOX" \x00) (MessageNew MessageExpunge))', b"Drafts")
    s.ok("notify set status (SELECTED-DELAYED (messagenew messageexpunge flagchange))")
    s.ok("NOTIFY SET (subtree INBOX (MailboxName SubscriptionChange))")
    # Other mailboxes are told by STATUS: one event alone makes sense there (§5 binds them for
    # the selected mailbox, whose sequence numbers they move; imaptest's notify script).
    s.ok("NOTIFY SET (personal (MessageNew))")
    s.ok("NOTIFY SET (mailboxes Drafts (MessageExpunge))")
    s.ok("NOTIFY SET (inboxes (FlagChange))")
