"""Literals: synchronizing {n} (RFC 3501 §4.3) and non-synchronizing {n+} (RFC 7888 LITERAL+),
anywhere a string may go."""

from __future__ import annotations

from tests.harness import Account, Server
from tests.imap.helpers import append, list_names, message, search_numbers, status_items
from tests.transcript import Transcript


def test_continuation_request_is_sent_for_a_sync_literal(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.send(b"a1 LOGIN {%d}\r\n" % len(account.address))
        line = s.read_line()
        assert line.startswith(b"+ "), line
        s.send(account.address.encode() + b" {%d}\r\n" % len(account.key))
        assert s.read_line().startswith(b"+ ")
        s.send(account.key.encode() + b"\r\n")
        assert s.read_line().startswith(b"a1 OK ")


def test_literal_plus_login_needs_no_continuation(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        user, key = account.address.encode(), account.key.encode()
        s.send(b"a1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(key), key))
        lines = s.read_until(lambda line: line.startswith(b"a1 "))
        assert lines[-1].startswith(b"a1 OK "), lines
        assert not any(line.startswith(b"+") for line in lines)


def test_mailbox_names_as_literals(imap: Transcript) -> None:
    imap.ok("CREATE \x00", b"With Spaces &- More")
    imap.ok("CREATE \x00", b"Entw&APw-rfe")
    names = list_names(imap.ok('LIST "" "*"'))
    assert "With Spaces &- More" in names  # "&" is "&-" in modified UTF-7
    assert "Entw&APw-rfe" in names
    imap.ok("SELECT \x00", b"Entw&APw-rfe")
    imap.ok("RENAME \x00 \x00", b"Entw&APw-rfe", b"Drafts old")
    assert status_items(imap.ok("STATUS \x00 (MESSAGES)", b"Drafts old"))["MESSAGES"] == 0


def test_quoted_strings_with_escapes(imap: Transcript) -> None:
    imap.ok('CREATE "Quote\\"d \\\\ back"')
    names = list_names(imap.ok('LIST "" "Quote*"'))
    assert len(names) == 1
    imap.ok('SELECT "Quote\\"d \\\\ back"')


def test_empty_literal_is_an_empty_string(imap: Transcript) -> None:
    r = imap.ok('LIST "" \x00', b"")
    assert r.untagged == [b'* LIST (\\Noselect) "/" ""']


def test_search_string_literal_with_spaces_and_crlf(imap: Transcript) -> None:
    append(imap, message("x", "line one\r\nline two\r\n"))
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok("SEARCH BODY \x00", b"one\r\nline")) == [1]
    assert search_numbers(imap.ok("SEARCH BODY \x00", b"line three")) == []


def test_literal_plus_search(imap: Transcript) -> None:
    append(imap, message("needle in subject"))
    imap.ok("SELECT INBOX")
    imap.send(b"a1 SEARCH SUBJECT {6+}\r\nneedle\r\n")
    lines = imap.read_until(lambda line: line.startswith(b"a1 "))
    assert lines == [b"* SEARCH 1", lines[-1]]
    assert lines[-1].startswith(b"a1 OK")


def test_nul_in_a_string_literal_is_bad(imap: Transcript) -> None:
    imap.bad("CREATE \x00", b"bad\x00name")
    assert len(list_names(imap.ok('LIST "" "*"'))) == 5


def test_oversized_string_literal_is_refused_without_continuation(server: Server) -> None:
    with Transcript.connect(server) as s:
        s.send(b"a1 LOGIN {99999999}\r\n")
        line = s.read_line()
        assert line.startswith(b"a1 BAD [TOOBIG]"), line  # no "+": the data is never sent
        s.ok("NOOP")


def test_literal_size_must_be_a_number(imap: Transcript) -> None:
    imap.bad("SELECT {abc}")
    imap.bad("SELECT {}")
    imap.ok("NOOP")
