"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA, the STATUS items, and [OVERQUOTA]."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, message, status_items
from tests.transcript import Response, Transcript

LIMIT = 8 * 1024


def sized(size: int, subject: str = "filler") -> bytes:
    """A message of exactly `size` bytes."""
    head = message(subject, body="")
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


def set_quota(server: Server, account: Account, limit: int | None) -> None:
    server.call(server.store.set_inbox_quota(account.address, limit))


def quota_of(r: Response) -> tuple[int, int]:
    (line,) = r.lines(b"QUOTA")
    found = re.fullmatch(rb'\* QUOTA "" \(STORAGE (\d+) (\d+)\)', line)
    assert found is not None, line
    return int(found[1]), int(found[2])


def messages_in(imap: Transcript, mailbox: str = "INBOX") -> int:
    return status_items(imap.ok(f"STATUS {mailbox} (MESSAGES)"))["MESSAGES"]


def test_capabilities(imap: Transcript) -> None:
    (line,) = imap.ok("CAPABILITY").lines(b"CAPABILITY")
    assert b" QUOTA " in line
    assert b" QUOTA=RES-STORAGE" in line
    assert b"QUOTA=RES-MESSAGE" not in line


def test_an_inbox_without_a_limit_has_no_quota_root(imap: Transcript) -> None:
    r = imap.ok("GETQUOTAROOT INBOX")
    assert r.lines(b"QUOTAROOT") == [b'* QUOTAROOT "INBOX"']
    assert r.lines(b"QUOTA") == []
    imap.no('GETQUOTA ""', code="NONEXISTENT")


def test_usage_counts_every_mailbox_in_kib(
    server: Server, account: Account, imap: Transcript
) -> None:
    set_quota(server, account, LIMIT)
    append(imap, sized(2048))
    append(imap, sized(1024, "draft"), "Drafts")
    r = imap.ok("GETQUOTAROOT Drafts")
    assert r.lines(b"QUOTAROOT") == [b'* QUOTAROOT "Drafts" ""']
    assert quota_of(r) == (3, 8)
    assert quota_of(imap.ok('GETQUOTA ""')) == (3, 8)
    imap.no('GETQUOTA "other"', code="NONEXISTENT")
    imap.no("GETQUOTAROOT Nope", code="NONEXISTENT")


def test_append_over_quota_is_refused_whole(
    server: Server, account: Account, imap: Transcript
) -> None:
    set_quota(server, account, LIMIT)
    append(imap, sized(6 * 1024))
    imap.no("APPEND INBOX \x00", sized(3 * 1024), code="OVERQUOTA")
    # MULTIAPPEND: the first would fit, both do not; neither is stored.
    imap.no("APPEND INBOX \x00 \x00", sized(1024, "a"), sized(2048, "b"), code="OVERQUOTA")
    assert messages_in(imap) == 1
    append(imap, sized(2 * 1024, "fits exactly"))
    assert quota_of(imap.ok('GETQUOTA ""')) == (8, 8)
    imap.no("APPEND Drafts \x00", sized(200, "one more"), code="OVERQUOTA")


def test_copy_needs_room_move_within_the_inbox_does_not(
    server: Server, account: Account, imap: Transcript
) -> None:
    set_quota(server, account, LIMIT)
    append(imap, sized(2560, "one"))
    append(imap, sized(2560, "two"))
    imap.ok("SELECT INBOX")
    imap.no("COPY 1:2 Trash", code="OVERQUOTA")
    assert messages_in(imap, "Trash") == 0
    imap.ok("COPY 1 Trash", code="COPYUID")
    imap.no("UID COPY 2 Trash", code="OVERQUOTA")
    # A copy of the second would not fit (10 KiB of 8), but a MOVE takes no more room.
    assert imap.ok("MOVE 2 Trash").lines(b"OK")  # its COPYUID comes untagged
    assert messages_in(imap, "Trash") == 2
    assert quota_of(imap.ok('GETQUOTA ""')) == (7, 8)


def test_expunging_frees_the_space(server: Server, account: Account, imap: Transcript) -> None:
    set_quota(server, account, LIMIT)
    append(imap, sized(5 * 1024, "big"), flags="\\Deleted")
    append(imap, sized(1024, "small"))
    imap.no("APPEND INBOX \x00", sized(4 * 1024), code="OVERQUOTA")
    items = status_items(imap.ok("STATUS INBOX (DELETED DELETED-STORAGE SIZE)"))
    assert items == {"DELETED": 1, "DELETED-STORAGE": 5, "SIZE": 6 * 1024}
    imap.ok("SELECT INBOX")
    imap.ok("EXPUNGE")
    assert quota_of(imap.ok('GETQUOTA ""')) == (1, 8)
    append(imap, sized(4 * 1024))
    # Deleting a mailbox frees what it held too.
    imap.ok("CREATE Archive")
    append(imap, sized(3 * 1024, "archived"), "Archive")
    imap.no("APPEND INBOX \x00", sized(1024), code="OVERQUOTA")
    imap.ok("DELETE Archive")
    assert quota_of(imap.ok('GETQUOTA ""')) == (5, 8)


def test_setquota_is_refused(server: Server, account: Account, imap: Transcript) -> None:
    set_quota(server, account, LIMIT)
    imap.no('SETQUOTA "" (STORAGE 100000)', code="NOPERM")
    imap.no('SETQUOTA "" ()', code="NOPERM")
    assert quota_of(imap.ok('GETQUOTA ""')) == (0, 8)


@pytest.mark.parametrize(
    "command",
    [
        "GETQUOTA",
        "GETQUOTA ",
        'GETQUOTA "" extra',
        "GETQUOTAROOT",
        "GETQUOTAROOT INBOX Sent",
        "SETQUOTA",
        'SETQUOTA ""',
        'SETQUOTA "" STORAGE 10',
        'SETQUOTA "" (STORAGE)',
        'SETQUOTA "" (STORAGE ten)',
        'SETQUOTA "" (STORAGE 10',
        'SETQUOTA "" (STORAGE -1)',
        'SETQUOTA "" (STORAGE 99999999999999999999)',
        'SETQUOTA "" (STORAGE 10) extra',
        "STATUS INBOX (DELETED-STORAGE BOGUS)",
    ],
)
def test_malformed_commands_are_bad(imap: Transcript, command: str) -> None:
    r = imap.bad(command)
    assert r.tagged.split(b" ", 2)[2].strip()  # with a reason


def test_quota_commands_need_a_login(server: Server) -> None:
    with Transcript.connect(server) as t:
        t.bad('GETQUOTA ""')
        t.bad("GETQUOTAROOT INBOX")


def test_default_and_own_limits(make_server: Callable[..., Server]) -> None:
    server = make_server(limits={"inbox_quota": 4096})
    account = server.account()
    with Transcript.login(server, account) as imap:
        assert quota_of(imap.ok('GETQUOTA ""')) == (0, 4)
        imap.no("APPEND INBOX \x00", sized(5000), code="OVERQUOTA")
        set_quota(server, account, 0)  # this inbox: no limit
        imap.no('GETQUOTA ""', code="NONEXISTENT")
        append(imap, sized(5000))
        set_quota(server, account, 16 * 1024)
        assert quota_of(imap.ok('GETQUOTA ""')) == (4, 16)
        set_quota(server, account, None)  # back to [limits] inbox_quota, now over it
        assert quota_of(imap.ok('GETQUOTA ""')) == (4, 4)
        imap.no("APPEND INBOX \x00", sized(100), code="OVERQUOTA")
