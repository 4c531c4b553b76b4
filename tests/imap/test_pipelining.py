"""Pipelining (RFC 3501 §5.5): several commands sent at once are answered in order, each
command's untagged responses before its own tagged one."""

from __future__ import annotations

import re

from tests.harness import Account, Server
from tests.imap.helpers import append, message
from tests.transcript import Transcript


def responses_by_tag(lines: list[bytes], tags: list[str]) -> dict[str, list[bytes]]:
    """Split a stream of lines into each command's untagged lines, checking tag order."""
    out: dict[str, list[bytes]] = {}
    pending: list[bytes] = []
    order = []
    for line in lines:
        tag = line.split(b" ", 1)[0].decode(errors="replace")
        if tag in tags:
            order.append(tag)
            out[tag] = [*pending, line]
            pending = []
        else:
            pending.append(line)
    assert order == tags, f"answered in the order {order}, sent in the order {tags}"
    return out


def test_commands_sent_at_once_are_answered_in_order(imap: Transcript) -> None:
    append(imap, message("one"))
    append(imap, message("two"))
    imap.send(
        b"p1 SELECT INBOX\r\n"
        b"p2 STORE 1 +FLAGS (\\Flagged)\r\n"
        b"p3 FETCH 1:2 (UID FLAGS)\r\n"
        b"p4 SEARCH FLAGGED\r\n"
        b"p5 NOOP\r\n"
        b"p6 STATUS Trash (MESSAGES)\r\n"
    )
    tags = ["p1", "p2", "p3", "p4", "p5", "p6"]
    lines = imap.read_until(lambda line: line.startswith(b"p6 "))
    got = responses_by_tag(lines, tags)
    assert all(got[t][-1].startswith(f"{t} OK".encode()) for t in tags), got
    assert b"* 2 EXISTS" in got["p1"]
    assert got["p2"][:-1] == [b"* 1 FETCH (FLAGS (\\Recent \\Flagged))"]
    assert got["p3"][:-1] == [
        b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged))",
        b"* 2 FETCH (UID 2 FLAGS (\\Recent))",
    ]
    assert got["p4"][:-1] == [b"* SEARCH 1"]
    assert got["p5"][:-1] == []
    assert got["p6"][:-1] == [b'* STATUS "Trash" (MESSAGES 0)']


def test_a_failing_command_does_not_stop_the_pipeline(imap: Transcript) -> None:
    imap.send(
        b"p1 SELECT Nope\r\n"
        b"p2 BOGUS\r\n"
        b"p3 FETCH 1 FLAGS\r\n"  # nothing selected: BAD
        b"p4 SELECT INBOX\r\n"
        b"p5 NOOP\r\n"
    )
    lines = imap.read_until(lambda line: line.startswith(b"p5 "))
    got = responses_by_tag(lines, ["p1", "p2", "p3", "p4", "p5"])
    assert got["p1"][-1].startswith(b"p1 NO [NONEXISTENT]")
    assert got["p2"][-1].startswith(b"p2 BAD")
    assert got["p3"][-1].startswith(b"p3 BAD")
    assert got["p4"][-1].startswith(b"p4 OK [READ-WRITE]")
    assert got["p5"][-1].startswith(b"p5 OK")


def test_pipelined_literal_plus_appends(imap: Transcript) -> None:
    data = [message(f"piped {i}") for i in range(5)]
    batch = b"".join(
        b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(d), d) for i, d in enumerate(data)
    )
    imap.send(batch + b"f1 SELECT INBOX\r\nf2 FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n")
    tags = [f"a{i}" for i in range(5)] + ["f1", "f2"]
    got = responses_by_tag(imap.read_until(lambda line: line.startswith(b"f2 ")), tags)
    uids = [int(re.search(rb"APPENDUID \d+ (\d+)", got[f"a{i}"][-1]).group(1)) for i in range(5)]  # type: ignore[union-attr]
    assert uids == [1, 2, 3, 4, 5]
    subjects = [re.search(rb"Subject: (piped \d)", line).group(1) for line in got["f2"][:-1]]  # type: ignore[union-attr]
    assert subjects == [b"piped %d" % i for i in range(5)]


def test_many_pipelined_commands(imap: Transcript) -> None:
    imap.send(b"".join(b"n%d NOOP\r\n" % i for i in range(300)))
    lines = imap.read_until(lambda line: line.startswith(b"n299 "), timeout=30)
    assert [line.split()[0] for line in lines] == [b"n%d" % i for i in range(300)]
    assert all(b" OK " in line for line in lines)


def test_pipelined_logout_is_the_last_answer(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        s.send(b"p1 NOOP\r\np2 LOGOUT\r\np3 NOOP\r\n")
        lines = s.read_until(lambda line: line.startswith(b"p2 "))
        assert [line.split()[0] for line in lines] == [b"p1", b"*", b"p2"]
        assert lines[1].startswith(b"* BYE")
        # Nothing is answered after LOGOUT.
        s.sock.settimeout(2)
        rest = b""
        try:
            while chunk := s.sock.recv(4096):
                rest += chunk
        except (TimeoutError, ConnectionError, OSError):
            pass
        assert b"p3" not in rest


def test_pipelined_commands_with_sync_literals(imap: Transcript) -> None:
    # A client may send a command after the literal data without waiting for the tagged
    # answer of the previous one.
    imap.send(b"c1 CREATE {6}\r\n")
    assert imap.read_line().startswith(b"+")
    imap.send(b"Folder\r\nc2 SELECT Folder\r\nc3 NOOP\r\n")
    got = responses_by_tag(
        imap.read_until(lambda line: line.startswith(b"c3 ")), ["c1", "c2", "c3"]
    )
    assert got["c1"][-1].startswith(b"c1 OK")
    assert got["c2"][-1].startswith(b"c2 OK [READ-WRITE]")
