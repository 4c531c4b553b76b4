"""UTF8=ACCEPT (RFC 6855): after ENABLE UTF8=ACCEPT mailbox names go both ways in UTF-8 (a
session without it keeps modified UTF-7), APPEND takes RFC 6855 §4's UTF8 (~{n}) data item,
SEARCH takes no CHARSET, and a message whose header holds raw UTF-8 (as SMTPUTF8 delivers it)
is fetched as stored, its ENVELOPE valid in every session (8-bit strings go as literals)."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    appenduid,
    fetches,
    list_names,
    message,
    search_numbers,
    status_items,
)
from tests.transcript import Response, Transcript

DRAFTS = "Entwürfe"  # "Entw&APw-rfe" in modified UTF-7
JAPANESE = "日本語/メモ"  # "&ZeVnLIqe-/&MOEw4g-"
UTF8_HEADER = (
    "From: Jörg Müller <jörg@bücher.example>\r\n"
    "To: 山田 <yamada@例え.jp>\r\n"
    "Subject: Grüße aus Köln\r\n"
    "Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <utf8-1@bücher.example>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: text/plain; charset=utf-8; name="Grüße.txt"\r\n'
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
).encode()
UTF8_MESSAGE = UTF8_HEADER + "Schöne Grüße.\r\n".encode()


def enable_utf8(s: Transcript) -> None:
    r = s.ok("ENABLE UTF8=ACCEPT")
    assert r.untagged == [b"* ENABLED UTF8=ACCEPT"]


def append_utf8(s: Transcript, data: bytes, mailbox: str = "INBOX") -> Response:
    """APPEND with RFC 6855 §4's data item, the literal8 sent as LITERAL+ (no round trip)."""
    tag = s.next_tag()
    head = f'{tag} APPEND "{mailbox}" UTF8 (~{{{len(data)}+}}\r\n'.encode()
    s.send(head + data + b")\r\n")
    return s.finish(tag)


def test_utf8_accept_is_offered_and_enabled(imap: Transcript) -> None:
    caps = imap.ok("CAPABILITY").lines(b"CAPABILITY")[0].split()
    assert b"UTF8=ACCEPT" in caps
    enable_utf8(imap)
    # RFC 5161 §3.1: ENABLE never changes the capability list.
    assert imap.ok("CAPABILITY").lines(b"CAPABILITY")[0].split() == caps
    # Any case; repeated in one command, one answer.
    assert imap.ok("ENABLE utf8=accept UTF8=ACCEPT").untagged == [b"* ENABLED UTF8=ACCEPT"]


def test_utf8_names_created_in_one_dialect_are_seen_in_the_other(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    utf8 = sessions(account)
    enable_utf8(utf8)
    utf8.ok(f'CREATE "{DRAFTS}"')
    utf8.ok(f'CREATE "{JAPANESE}"')
    # The same names, to a session that did not enable UTF-8: modified UTF-7.
    names = list_names(imap.ok('LIST "" "*"'))
    assert {"Entw&APw-rfe", "&ZeVnLIqe-", "&ZeVnLIqe-/&MOEw4g-"} <= set(names)
    # Created in modified UTF-7 by a rev1 session, listed in UTF-8 to the UTF-8 one.
    imap.ok('CREATE "Caf&AOk-"')
    r = utf8.ok('LIST "" "*"')
    assert {DRAFTS, "日本語", JAPANESE, "Café"} <= set(list_names(r))
    assert f'"{DRAFTS}"'.encode() in b"\n".join(r.lines(b"LIST"))
    # No modified UTF-7 is read in a UTF-8 session: "&" is just "&".
    utf8.no('SELECT "Entw&APw-rfe"', code="NONEXISTENT")
    utf8.ok('CREATE "Tom & Jerry"')
    assert "Tom &- Jerry" in list_names(imap.ok('LIST "" "Tom*"'))
    assert list_names(utf8.ok('LIST "" "Tom*"')) == ["Tom & Jerry"]


def test_utf8_names_in_every_mailbox_command(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    utf8 = sessions(account)
    enable_utf8(utf8)
    utf8.ok(f'CREATE "{DRAFTS}"')
    utf8.ok(f'SUBSCRIBE "{DRAFTS}"')
    assert list_names(utf8.ok('LSUB "" "Entw*"'), b"LSUB") == [DRAFTS]
    assert list_names(utf8.ok(f'LIST "" "{DRAFTS[:4]}%"')) == [DRAFTS]
    append(utf8, message("in drafts"), DRAFTS)
    r = utf8.ok(f'STATUS "{DRAFTS}" (MESSAGES)')
    assert r.lines(b"STATUS")[0].startswith(f'* STATUS "{DRAFTS}" '.encode())
    assert status_items(r) == {"MESSAGES": 1}
    r = utf8.ok('LIST "" "Entw*" RETURN (STATUS (MESSAGES))')
    assert r.lines(b"STATUS")[0].startswith(f'* STATUS "{DRAFTS}" '.encode())
    r = utf8.ok(f'GETQUOTAROOT "{DRAFTS}"')
    assert r.lines(b"QUOTAROOT") == [f'* QUOTAROOT "{DRAFTS}"'.encode()]
    assert imap.ok('GETQUOTAROOT "Entw&APw-rfe"').lines(b"QUOTAROOT") == [
        b'* QUOTAROOT "Entw&APw-rfe"'
    ]
    utf8.ok(f'SELECT "{DRAFTS}"')
    utf8.ok('CREATE "日本語"')
    assert utf8.ok('COPY 1 "日本語"').code.startswith("COPYUID")  # type: ignore[union-attr]
    utf8.no('COPY 1 "Nirgendwo/Öde"', code="TRYCREATE")
    assert status_items(imap.ok('STATUS "&ZeVnLIqe-" (MESSAGES)')) == {"MESSAGES": 1}
    utf8.ok(f'RENAME "{DRAFTS}" "Brouillons/Été"')
    assert "Brouillons/&AMk-t&AOk-" in list_names(imap.ok('LIST "" "Brouillons/*"'))
    assert status_items(imap.ok('STATUS "Brouillons/&AMk-t&AOk-" (MESSAGES)')) == {"MESSAGES": 1}
    utf8.ok("UNSELECT")
    utf8.ok('DELETE "Brouillons/Été"')
    assert list_names(imap.ok('LIST "" "Brouillons/*"')) == []


def test_names_that_are_not_net_unicode_are_refused(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    enable_utf8(imap)
    # RFC 9051 §5.1, RFC 6855 §3: NFC, no control characters, no line separator.
    decomposed = "Cafe\u0301"
    imap.no(f'CREATE "{decomposed}"', code="CANNOT")
    imap.no('CREATE "line\u2028break"', code="CANNOT")
    imap.no('SELECT "x\u0085y"', code="NONEXISTENT")
    imap.ok('CREATE "Café"')
    imap.no(f'RENAME "Café" "{decomposed}"', code="CANNOT")
    # The same name in modified UTF-7 is the same name: refused too.
    plain = sessions(account)
    plain.no('CREATE "Cafe&AwE-"', code="CANNOT")
    imap.ok('DELETE "Café"')
    # RFC 6855 §3: 8-bit octets in a quoted string that are not UTF-8 are BAD.
    imap.bad(b'CREATE "caf\xe9"')
    imap.bad(b'STATUS "\xc3\x28" (MESSAGES)')
    assert "Café" not in list_names(imap.ok('LIST "" "*"'))


def test_append_utf8_data_item(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    plain = sessions(account)
    # Without ENABLE UTF8=ACCEPT the data item is not part of the grammar.
    r = append_utf8(plain, UTF8_MESSAGE)
    assert r.status == "BAD", r
    enable_utf8(imap)
    r = append_utf8(imap, UTF8_MESSAGE)
    assert r.status == "OK", r
    uid = appenduid(r)[1][0]
    # A synchronizing literal8, as Thunderbird sends it: the server asks for the octets.
    tag = imap.next_tag()
    imap.send(f'{tag} APPEND "INBOX" (\\Seen) UTF8 (~{{{len(UTF8_MESSAGE)}}}\r\n'.encode())
    assert imap.read_line().startswith(b"+ ")
    imap.send(UTF8_MESSAGE + b")\r\n")
    r = imap.finish(tag)
    assert r.status == "OK", r
    # Only a literal8 goes inside: "UTF8 ({n}" is BAD.
    tag = imap.next_tag()
    imap.send(f"{tag} APPEND INBOX UTF8 ({{{len(UTF8_MESSAGE)}+}}\r\n".encode())
    imap.send(UTF8_MESSAGE + b")\r\n")
    assert imap.finish(tag).status == "BAD"
    # Stored as sent: both sessions fetch the same octets.
    for s in (imap, plain):
        s.ok("EXAMINE INBOX")
        item = fetches(s.ok(f"UID FETCH {uid} BODY.PEEK[]"))[1]
        assert item.endswith(b"BODY[] {%d}\r\n" % len(UTF8_MESSAGE) + UTF8_MESSAGE)
    # And in several messages at once (MULTIAPPEND), beside a plain literal.
    tag = imap.next_tag()
    second = message("plain")
    imap.send(
        f"{tag} APPEND INBOX UTF8 (~{{{len(UTF8_MESSAGE)}+}}\r\n".encode()
        + UTF8_MESSAGE
        + b") {%d+}\r\n" % len(second)
        + second
        + b"\r\n"
    )
    r = imap.finish(tag)
    assert r.status == "OK", r
    assert len(appenduid(r)[1]) == 2


def test_catenate_utf8_part(imap: Transcript) -> None:
    enable_utf8(imap)
    body = b"Zweiter Teil.\r\n"
    tag = imap.next_tag()
    imap.send(
        f"{tag} APPEND INBOX CATENATE (UTF8 (~{{{len(UTF8_HEADER)}+}}\r\n".encode()
        + UTF8_HEADER
        + b") TEXT {%d+}\r\n" % len(body)
        + body
        + b")\r\n"
    )
    r = imap.finish(tag)
    assert r.status == "OK", r
    imap.ok("EXAMINE INBOX")
    item = fetches(imap.ok("FETCH 1 BODY.PEEK[]"))[1]
    assert item.endswith(UTF8_HEADER + body)


def _envelope(item: bytes) -> bytes:
    m = re.search(rb"ENVELOPE \((.*)\)", item, re.DOTALL)
    assert m is not None, item
    return m.group(1)


def test_utf8_headers_are_fetched_as_stored_in_every_session(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    # A plain APPEND of message/global is taken in every session (as Dovecot does): the
    # octets are the message, whatever marks them.
    append(imap, UTF8_MESSAGE)
    utf8 = sessions(account)
    enable_utf8(utf8)
    for s in (imap, utf8):
        s.ok("EXAMINE INBOX")
        header = fetches(s.ok("FETCH 1 BODY.PEEK[HEADER]"))[1]
        assert header.endswith(b"BODY[HEADER] {%d}\r\n" % len(UTF8_HEADER) + UTF8_HEADER)
    # IMAP4rev1: 8-bit strings are literals, as a quoted string may hold none.
    item = fetches(imap.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE)"))[1]
    envelope = _envelope(item)
    for text in ("Grüße aus Köln", "Jörg Müller", "jörg", "bücher.example", "例え.jp"):
        assert b"{%d}\r\n%s" % (len(text.encode()), text.encode()) in envelope
    assert b'"Tue, 02 Jan 2024 10:00:00 +0000"' in envelope
    assert b'"name" {%d}\r\n' % len("Grüße.txt".encode()) in item
    # After ENABLE UTF8=ACCEPT the same strings come quoted, as Dovecot sends them.
    item = fetches(utf8.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE)"))[1]
    assert b"}\r\n" not in item
    assert '("Jörg Müller" NIL "jörg" "bücher.example")'.encode() in item
    assert '"Grüße aus Köln"'.encode() in item
    assert '"name" "Grüße.txt"'.encode() in item


def test_utf8_headers_through_imaplib(server: Server, account: Account) -> None:
    """What an agent's imaplib sees: enable() switches it to UTF-8, and the subject comes back
    as the UTF-8 it was stored as."""
    with server.imap_client(account) as client:
        typ, data = client.enable("UTF8=ACCEPT")
        assert typ == "OK", data
        assert client.utf8_enabled
        assert client.create(f'"{DRAFTS}"')[0] == "OK"
        typ, listed = client.list('""', f'"{DRAFTS}"')
        assert typ == "OK"
        assert listed == [f'(\\HasNoChildren) "/" "{DRAFTS}"'.encode()]
        # imaplib puts RFC 6855's "UTF8 (" ... ")" inside its literal (CPython gh-78319);
        # the server takes the message inside, not the wrapping.
        assert client.append(f'"{DRAFTS}"', None, None, UTF8_MESSAGE)[0] == "OK"
        assert client.select(f'"{DRAFTS}"')[0] == "OK"
        typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert data[0][1] == "Subject: Grüße aus Köln\r\n\r\n".encode()
        typ, data = client.fetch("1", "(BODY.PEEK[])")
        assert data[0][1] == UTF8_MESSAGE


def test_search_after_utf8_accept(imap: Transcript) -> None:
    append(imap, UTF8_MESSAGE)
    append(imap, message("plain"))
    enable_utf8(imap)
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok('SEARCH SUBJECT "Grüße"')) == [1]
    assert search_numbers(imap.ok('SEARCH FROM "jörg@bücher.example"')) == [1]
    # RFC 6855 §3: no CHARSET once strings are UTF-8 (even CHARSET UTF-8).
    r = imap.bad('SEARCH CHARSET UTF-8 SUBJECT "Grüße"')
    assert b"UTF8=ACCEPT" in r.tagged
    imap.bad("SEARCH CHARSET US-ASCII ALL")
    # Errata 4029: SORT and THREAD take UTF-8 only.
    assert imap.ok("SORT (SUBJECT) UTF-8 ALL").lines(b"SORT")
    imap.bad("SORT (SUBJECT) US-ASCII ALL")
    imap.bad("THREAD REFERENCES US-ASCII ALL")


def test_search_charset_without_utf8_accept_is_unchanged(imap: Transcript) -> None:
    append(imap, UTF8_MESSAGE)
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok("SEARCH CHARSET UTF-8 SUBJECT \x00", "Grüße".encode())) == [1]


def test_malformed_enable(imap: Transcript, server: Server) -> None:
    imap.bad("ENABLE")
    imap.bad('ENABLE "UTF8=ACCEPT"')
    imap.bad("ENABLE (UTF8=ACCEPT)")
    # Unknown names are ignored (RFC 5161 §3.1), known ones still enabled.
    r = imap.ok("ENABLE X-UNKNOWN UTF8=ACCEPT UTF8=ONLY")
    assert r.untagged == [b"* ENABLED UTF8=ACCEPT"]
    with Transcript.connect(server) as s:
        r = s.bad("ENABLE UTF8=ACCEPT")
        assert b"Log in first" in r.tagged


def test_reply_text_is_utf8_only_after_enable(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    # A name in a reply's text: modified UTF-7 to a session that knows names so, UTF-8 once
    # enabled (RFC 9051 Appendix E item 24: only then may the text hold UTF-8).
    r = imap.no(f'SELECT "{DRAFTS}"', code="NONEXISTENT")
    assert r.tagged.isascii()
    assert b'"Entw&APw-rfe"' in r.tagged
    utf8 = sessions(account)
    enable_utf8(utf8)
    r = utf8.no(f'SELECT "{DRAFTS}"', code="NONEXISTENT")
    assert f'"{DRAFTS}"'.encode() in r.tagged


def test_preview_is_quoted_utf8_after_enable(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    text = "Schöne Grüße."
    append(imap, message("Vorschau", text + "\r\n", Content_Type="text/plain; charset=utf-8"))
    utf8 = sessions(account)
    enable_utf8(utf8)
    imap.ok("EXAMINE INBOX")
    utf8.ok("EXAMINE INBOX")
    preview = text.encode()
    assert fetches(imap.ok("FETCH 1 PREVIEW"))[1] == b"PREVIEW {%d}\r\n%s" % (len(preview), preview)
    assert fetches(utf8.ok("FETCH 1 PREVIEW"))[1] == b'PREVIEW "%s"' % preview
