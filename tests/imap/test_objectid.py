"""OBJECTID (RFC 8474): MAILBOXID through RENAME, EMAILID shared by a message's copies,
THREADID shared by a conversation and equal to the HTTP API's thread_id; SEARCH by both."""

from __future__ import annotations

import re

from tests.harness import Account, Server
from tests.imap.helpers import append, code_value, fetches, message, search_numbers
from tests.transcript import Response, Transcript


def ids(r: Response, item: bytes) -> dict[int, bytes]:
    """UID -> the id a FETCH item gave."""
    found = {}
    for uid, line in fetches(r).items():
        match = re.search(item + rb" \(([A-Za-z0-9_-]+)\)", line)
        assert match, line
        found[uid] = match.group(1)
    return found


def test_capability(imap: Transcript) -> None:
    assert b"OBJECTID" in imap.ok("CAPABILITY").untagged[0].split()


def test_mailboxid_stays_through_rename(imap: Transcript) -> None:
    imap.ok("CREATE Projects")
    before = code_value(imap.ok("SELECT Projects"), b"MAILBOXID")
    imap.ok("UNSELECT")
    imap.ok("RENAME Projects Archive")
    assert code_value(imap.ok("SELECT Archive"), b"MAILBOXID") == before
    status = imap.ok("STATUS Archive (MAILBOXID MESSAGES)").untagged[0]
    assert b"MAILBOXID " + before in status
    assert before != code_value(imap.ok("SELECT INBOX"), b"MAILBOXID")


def test_emailid_and_threadid(imap: Transcript) -> None:
    append(imap, message("Plan", **{"Message-ID": "<plan@x.test>"}))
    append(
        imap, message("Re: Plan", **{"Message-ID": "<re@x.test>", "In-Reply-To": "<plan@x.test>"})
    )
    append(imap, message("Other", **{"Message-ID": "<other@x.test>"}))
    imap.ok("SELECT INBOX")
    imap.ok("COPY 1 Trash")
    r = imap.ok("UID FETCH 1:* (EMAILID THREADID)")
    emails, threads = ids(r, b"EMAILID"), ids(r, b"THREADID")
    assert len(set(emails.values())) == 3
    assert threads[1] == threads[2] != threads[3]
    imap.ok("SELECT Trash")
    copied = imap.ok("UID FETCH 1 (EMAILID THREADID)")
    assert ids(copied, b"EMAILID") == {1: emails[1]}
    assert ids(copied, b"THREADID") == {1: threads[1]}
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok(f"UID SEARCH THREADID {threads[1].decode()}")) == [1, 2]
    assert search_numbers(imap.ok(f"UID SEARCH EMAILID {emails[3].decode()}")) == [3]
    assert search_numbers(imap.ok("UID SEARCH THREADID nothing-like-it")) == []
    imap.bad("UID SEARCH THREADID")


def test_threadid_is_the_apis_thread_id(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as imap:
        append(imap, message("Hi", **{"Message-ID": "<hi@x.test>"}))
        imap.ok("SELECT INBOX")
        (thread,) = ids(imap.ok("UID FETCH 1 THREADID"), b"THREADID").values()

    async def api_thread() -> str:
        inbox = await server.store.get_inbox(account.address)
        (mail,) = await server.store.mail_by_ids([inbox.id], ["<hi@x.test>"])
        return mail.thread

    assert server.call(api_thread()).encode() == thread
