"""CREATE, DELETE and RENAME (RFC 3501 §6.3.3-6.3.5) with RFC 5530 response codes."""

from __future__ import annotations

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    code_value,
    list_attributes,
    list_names,
    message,
    status_items,
)
from tests.transcript import Transcript, sock_closed

BUILTIN_BUT_INBOX = ["Sent", "Trash", "Spam", "Drafts"]


def test_create_then_use(imap: Transcript) -> None:
    imap.ok("CREATE Receipts")
    assert "Receipts" in list_names(imap.ok('LIST "" "*"'))
    append(imap, message(), "Receipts")
    imap.ok("SELECT Receipts", code="READ-WRITE")


def test_create_existing_is_alreadyexists(imap: Transcript) -> None:
    imap.ok("CREATE Receipts")
    imap.no("CREATE Receipts", code="ALREADYEXISTS")


@pytest.mark.parametrize("name", ["INBOX", "inbox", "Sent", "Trash", "Spam", "Drafts"])
def test_create_builtin_is_alreadyexists(imap: Transcript, name: str) -> None:
    imap.no(f"CREATE {name}", code="ALREADYEXISTS")


def test_create_makes_missing_parents(imap: Transcript) -> None:
    imap.ok("CREATE Work/2024/Q1")
    names = list_names(imap.ok('LIST "" "Work*"'))
    assert names == ["Work", "Work/2024", "Work/2024/Q1"]
    imap.ok("SELECT Work/2024")  # parents are real, selectable mailboxes


def test_create_with_trailing_delimiter(imap: Transcript) -> None:
    # RFC 3501 §6.3.3: the trailing delimiter says children will follow; the name is without.
    imap.ok("CREATE Archive/")
    assert list_names(imap.ok('LIST "" "Arch*"')) == ["Archive"]


def test_create_below_inbox(imap: Transcript) -> None:
    imap.ok("CREATE inbox/Sub")
    assert "INBOX/Sub" in list_names(imap.ok('LIST "" "*"'))
    imap.ok("SELECT INBOX/Sub")


@pytest.mark.parametrize("name", ['"a//b"', '"/lead"', '"with*star"', '"with%pct"'])
def test_create_invalid_name_is_refused(imap: Transcript, name: str) -> None:
    r = imap.command(f"CREATE {name}")
    assert r.status in ("NO", "BAD"), r
    if r.status == "NO":
        assert r.code == "CANNOT", r
    assert list_names(imap.ok('LIST "" "*"'))[5:] == []


def test_create_case_variant_of_builtin_is_a_new_mailbox(imap: Transcript) -> None:
    imap.ok("CREATE trash")
    attrs = list_attributes(imap.ok('LIST "" "*"'))
    assert "\\Trash" in attrs["Trash"]
    assert "\\Trash" not in attrs["trash"]


def test_delete(imap: Transcript) -> None:
    imap.ok("CREATE Old")
    append(imap, message(), "Old")
    imap.ok("DELETE Old")
    assert "Old" not in list_names(imap.ok('LIST "" "*"'))
    imap.no("SELECT Old", code="NONEXISTENT")


@pytest.mark.parametrize("name", ["INBOX", *BUILTIN_BUT_INBOX])
def test_delete_builtin_is_cannot(imap: Transcript, name: str) -> None:
    append(imap, message(), name)
    imap.no(f"DELETE {name}", code="CANNOT")
    assert status_items(imap.ok(f"STATUS {name} (MESSAGES)"))["MESSAGES"] == 1


def test_delete_missing_is_nonexistent(imap: Transcript) -> None:
    imap.no("DELETE Nope", code="NONEXISTENT")
    imap.no("DELETE sent", code="NONEXISTENT")  # case-sensitive: "sent" is not "Sent"


def test_delete_parent_with_children_is_refused(imap: Transcript) -> None:
    imap.ok("CREATE Parent/Child")
    imap.no("DELETE Parent", code="CANNOT")
    imap.ok("DELETE Parent/Child")
    imap.ok("DELETE Parent")
    assert [n for n in list_names(imap.ok('LIST "" "*"')) if n.startswith("Parent")] == []


def test_deleting_a_mailbox_keeps_copies_elsewhere(imap: Transcript) -> None:
    data = message("shared bytes")
    append(imap, data)
    imap.ok("CREATE Copies")
    imap.ok("SELECT INBOX")
    imap.ok("COPY 1 Copies")
    imap.ok("UNSELECT")
    imap.ok("DELETE Copies")
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 BODY.PEEK[]")
    assert r.untagged == [b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(data), data)]


def test_uidvalidity_differs_after_delete_and_recreate(imap: Transcript) -> None:
    imap.ok("CREATE Cycle")
    first = int(code_value(imap.ok("SELECT Cycle"), b"UIDVALIDITY"))
    append(imap, message(), "Cycle")
    imap.ok("UNSELECT")
    imap.ok("DELETE Cycle")
    imap.ok("CREATE Cycle")
    r = imap.ok("SELECT Cycle")
    assert int(code_value(r, b"UIDVALIDITY")) != first
    assert int(code_value(r, b"UIDNEXT")) == 1


def test_deleting_the_selected_mailbox_of_another_session(
    server: Server, account: Account, imap: Transcript
) -> None:
    imap.ok("CREATE Doomed")
    append(imap, message(), "Doomed")
    with Transcript.login(server, account) as watcher:
        watcher.ok("SELECT Doomed")
        imap.ok("DELETE Doomed")
        # The watcher must learn its mailbox is gone, never get an OK over stale messages.
        watcher.send("w1 NOOP\r\n")
        lines = watcher.read_until(lambda line: line.startswith((b"* BYE", b"w1 ")))
        assert lines[-1].startswith(b"* BYE"), lines
        assert sock_closed(watcher)


def test_deleting_the_own_selected_mailbox_deselects_it(imap: Transcript) -> None:
    imap.ok("CREATE Mine")
    imap.ok("SELECT Mine")
    imap.ok("DELETE Mine")
    imap.ok("NOOP")  # this session goes on, with nothing selected
    imap.bad("FETCH 1 FLAGS")


def test_rename_keeps_messages_and_uidvalidity(imap: Transcript) -> None:
    imap.ok("CREATE Before")
    uid = append(imap, message("kept"), "Before")
    uidvalidity = int(code_value(imap.ok("EXAMINE Before"), b"UIDVALIDITY"))
    imap.ok("UNSELECT")
    imap.ok("RENAME Before After")
    names = list_names(imap.ok('LIST "" "*"'))
    assert "After" in names
    assert "Before" not in names
    r = imap.ok("SELECT After")
    assert int(code_value(r, b"UIDVALIDITY")) == uidvalidity
    r = imap.ok("UID FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert len(r.untagged) == 1
    assert f"UID {uid}".encode() in r.untagged[0]
    assert b"Subject: kept" in r.untagged[0]


def test_recreating_a_renamed_name_gets_a_new_uidvalidity(imap: Transcript) -> None:
    imap.ok("CREATE Name")
    old = int(code_value(imap.ok("EXAMINE Name"), b"UIDVALIDITY"))
    imap.ok("UNSELECT")
    imap.ok("RENAME Name Other")
    imap.ok("CREATE Name")
    assert int(code_value(imap.ok("EXAMINE Name"), b"UIDVALIDITY")) != old
    assert int(code_value(imap.ok("EXAMINE Other"), b"UIDVALIDITY")) == old


def test_rename_moves_children_along(imap: Transcript) -> None:
    imap.ok("CREATE Old/Child/Grandchild")
    imap.ok("RENAME Old New")
    names = list_names(imap.ok('LIST "" "*"'))
    assert [n for n in names if n.startswith(("Old", "New"))] == [
        "New",
        "New/Child",
        "New/Child/Grandchild",
    ]


def test_rename_into_a_new_hierarchy_creates_parents(imap: Transcript) -> None:
    imap.ok("CREATE Flat")
    imap.ok("RENAME Flat Deep/Er/Flat")
    names = list_names(imap.ok('LIST "" "*"'))
    assert {"Deep", "Deep/Er", "Deep/Er/Flat"} <= set(names)


def test_rename_to_existing_is_alreadyexists(imap: Transcript) -> None:
    imap.ok("CREATE One")
    imap.ok("CREATE Two")
    imap.no("RENAME One Two", code="ALREADYEXISTS")
    imap.no("RENAME One Sent", code="ALREADYEXISTS")


def test_rename_missing_is_nonexistent(imap: Transcript) -> None:
    imap.no("RENAME Nope Other", code="NONEXISTENT")
    imap.no("RENAME sent Other", code="NONEXISTENT")


@pytest.mark.parametrize("name", ["INBOX", *BUILTIN_BUT_INBOX])
def test_rename_builtin_is_cannot(imap: Transcript, name: str) -> None:
    imap.no(f"RENAME {name} Renamed", code="CANNOT")
    assert name in list_names(imap.ok('LIST "" "*"'))
    assert "Renamed" not in list_names(imap.ok('LIST "" "*"'))


def test_rename_into_own_child_is_refused(imap: Transcript) -> None:
    imap.ok("CREATE Loop")
    r = imap.no("RENAME Loop Loop/Inner")
    assert r.code is not None


def test_rename_selected_mailbox_keeps_the_session_working(imap: Transcript) -> None:
    imap.ok("CREATE Here")
    append(imap, message("still here"), "Here")
    imap.ok("SELECT Here")
    imap.ok("RENAME Here There")
    r = imap.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert b"still here" in r.untagged[0]


def test_a_session_learns_the_new_name_of_its_selected_mailbox(
    server: Server, account: Account, imap: Transcript
) -> None:
    """Another session renames the parent of the mailbox this one has selected; the store's
    rename event tells this session, so deleting its mailbox by the new name deselects it
    (as for its own mailbox) instead of leaving it selected on a mailbox that is gone."""
    imap.ok("CREATE Parent/Child")
    with Transcript.login(server, account) as other:
        other.ok("SELECT Parent/Child")
        imap.ok("RENAME Parent Moved")
        other.ok("NOOP")
        other.ok("DELETE Moved/Child")
        other.ok("NOOP")  # still connected, nothing selected
        other.bad("FETCH 1 FLAGS")


def test_another_session_lists_a_mailbox_created_or_renamed_meanwhile(
    server: Server, account: Account, imap: Transcript
) -> None:
    with Transcript.login(server, account) as other:
        assert "Fresh" not in list_names(other.ok('LIST "" "*"'))
        imap.ok("CREATE Fresh")
        assert "Fresh" in list_names(other.ok('LIST "" "*"'))
        imap.ok("RENAME Fresh Renamed")
        names = list_names(other.ok('LIST "" "*"'))
        assert "Renamed" in names
        assert "Fresh" not in names


def test_syntax_errors_are_bad(imap: Transcript) -> None:
    imap.bad("CREATE")
    imap.bad("DELETE")
    imap.bad("RENAME Only")
    imap.bad("CREATE a b")
