"""NAMESPACE (RFC 2342), ID (RFC 2971), UNSELECT (RFC 3691) and ENABLE (RFC 5161)."""

from __future__ import annotations

import re

from tests.harness import Account, Server
from tests.imap.helpers import append, message, status_items
from tests.transcript import Transcript


def test_namespace(imap: Transcript) -> None:
    r = imap.ok("NAMESPACE")
    assert r.untagged == [b'* NAMESPACE (("" "/")) NIL NIL']


def test_namespace_needs_login(server: Server) -> None:
    with Transcript.connect(server) as s:
        s.bad("NAMESPACE")


def test_id_nil(imap: Transcript) -> None:
    r = imap.ok("ID NIL")
    assert len(r.untagged) == 1
    m = re.match(rb'\* ID \("name" "mailgate" "version" "([^"]+)"\)$', r.untagged[0])
    assert m is not None, r


def test_id_with_client_parameters_before_login(server: Server) -> None:
    with Transcript.connect(server) as s:
        r = s.ok('ID ("name" "Thunderbird" "version" "128.0" "os" NIL)')
        assert r.untagged[0].startswith(b'* ID ("name" "mailgate"')


def test_id_errors_are_bad(imap: Transcript) -> None:
    imap.bad("ID")
    imap.bad('ID ("name")')
    imap.bad('ID ("name" "x"')
    imap.bad("ID (" + " ".join(f'"k{i}" "v"' for i in range(31)) + ")")  # RFC 2971: 30 pairs
    imap.bad('ID ("' + "k" * 31 + '" "v")')  # field names are at most 30 octets
    imap.ok("ID NIL")


def test_unselect_leaves_without_expunging(imap: Transcript) -> None:
    append(imap, message(), flags="\\Deleted")
    imap.ok("SELECT INBOX")
    r = imap.ok("UNSELECT")
    assert r.untagged == []
    imap.bad("FETCH 1 FLAGS")
    assert status_items(imap.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 1
    imap.ok("SELECT INBOX")


def test_unselect_after_examine(imap: Transcript) -> None:
    imap.ok("EXAMINE INBOX")
    imap.ok("UNSELECT")
    imap.bad("UNSELECT")  # nothing selected any more


def test_unselect_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("UNSELECT")
    imap.bad("UNSELECT INBOX")


def test_enable_condstore(imap: Transcript) -> None:
    r = imap.ok("ENABLE CONDSTORE")
    assert r.untagged == [b"* ENABLED CONDSTORE"]
    r = imap.ok("SELECT INBOX")
    assert any(line.startswith(b"* OK [HIGHESTMODSEQ ") for line in r.untagged), r


def test_enable_unknown_extension_enables_nothing(imap: Transcript) -> None:
    r = imap.ok("ENABLE X-NOTHING-SUCH")
    assert r.untagged == [b"* ENABLED"]
    r = imap.ok("SELECT INBOX")
    assert not any(b"HIGHESTMODSEQ" in line for line in r.untagged)


def test_enable_needs_login_and_an_argument(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.bad("ENABLE CONDSTORE")
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        s.bad("ENABLE")
        s.ok("ENABLE CONDSTORE")
