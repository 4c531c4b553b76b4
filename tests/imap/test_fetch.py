"""FETCH and UID FETCH: every data item of RFC 3501 §6.4.5, \\Seen side effects, and errors."""

from __future__ import annotations

import email

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import MULTIPART, PLAIN, append, fetches, flags_of, message, uid_of
from tests.transcript import Transcript

PLAIN_HEADER, PLAIN_BODY = PLAIN.split(b"\r\n\r\n", 1)
PLAIN_HEADER += b"\r\n\r\n"
DATE = "02-Jan-2024 10:05:00 +0100"

PLAIN_ENVELOPE = (
    b'ENVELOPE ("Tue, 02 Jan 2024 10:00:00 +0000" "Quarterly report" '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Bob" NIL "bob" "example.test")) '
    b'((NIL NIL "carol" "example.test")) '
    b'NIL NIL "<report-1@example.test>")'
)
PLAIN_BODYSTRUCTURE = (
    b'BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 41 2 NIL NIL NIL NIL)'
)
MULTIPART_BODYSTRUCTURE = (
    b'BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 0 NIL NIL NIL NIL)'
    b'("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" 8 NIL '
    b'("attachment" ("filename" "data.bin")) NIL NIL) "mixed" ("boundary" "XYZ") NIL NIL NIL)'
)
MULTIPART_BODY = (
    b'BODY (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 0)'
    b'("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" 8) "mixed")'
)


@pytest.fixture
def box(imap: Transcript) -> Transcript:
    """INBOX selected, holding PLAIN (seq 1, UID 1) and MULTIPART (seq 2, UID 2), unseen."""
    append(imap, PLAIN, date=DATE)
    append(imap, MULTIPART)
    imap.ok("SELECT INBOX")
    return imap


def one(s: Transcript, command: str) -> bytes:
    items = fetches(s.ok(command))
    assert len(items) == 1, items
    return next(iter(items.values()))


def test_envelope(box: Transcript) -> None:
    assert one(box, "FETCH 1 ENVELOPE") == PLAIN_ENVELOPE


def test_envelope_without_cc_and_to_display_name(box: Transcript) -> None:
    assert one(box, "FETCH 2 ENVELOPE") == (
        b'ENVELOPE ("Wed, 03 Jan 2024 11:30:00 +0100" "With attachment" '
        b'(("Alice Example" NIL "alice" "example.test")) '
        b'(("Alice Example" NIL "alice" "example.test")) '
        b'(("Alice Example" NIL "alice" "example.test")) '
        b'((NIL NIL "bob" "example.test")) NIL NIL NIL "<multi-1@example.test>")'
    )


def test_bodystructure(box: Transcript) -> None:
    assert one(box, "FETCH 1 BODYSTRUCTURE") == PLAIN_BODYSTRUCTURE
    assert one(box, "FETCH 2 BODYSTRUCTURE") == MULTIPART_BODYSTRUCTURE


def test_body_without_section_is_the_non_extensible_structure(box: Transcript) -> None:
    assert one(box, "FETCH 1 BODY") == (
        b'BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 41 2)'
    )
    assert one(box, "FETCH 2 BODY") == MULTIPART_BODY
    assert "\\Seen" not in flags_of(one(box, "FETCH 1 FLAGS"))


def test_body_peek_whole_message(box: Transcript) -> None:
    item = one(box, "FETCH 1 BODY.PEEK[]")
    assert item == b"BODY[] {%d}\r\n%s" % (len(PLAIN), PLAIN)
    assert flags_of(one(box, "FETCH 1 FLAGS")) == set()


def test_body_sets_seen_and_reports_flags(box: Transcript) -> None:
    item = one(box, "FETCH 1 BODY[]")
    assert item.startswith(b"BODY[] {%d}\r\n%s" % (len(PLAIN), PLAIN))
    assert flags_of(item) == {"\\Seen"}  # the change is reported in the same response
    assert flags_of(one(box, "FETCH 1 FLAGS")) == {"\\Seen"}
    assert flags_of(one(box, "FETCH 2 FLAGS")) == set()


@pytest.mark.parametrize(
    ("item", "sets_seen"),
    [
        ("BODY[TEXT]", True),
        ("BODY[1]", True),
        ("BODY[HEADER]", True),
        ("RFC822", True),
        ("RFC822.TEXT", True),
        ("RFC822.HEADER", False),
        ("BODY.PEEK[TEXT]", False),
        ("BODY.PEEK[HEADER.FIELDS (SUBJECT)]", False),
        ("RFC822.SIZE", False),
        ("ENVELOPE", False),
        ("BODYSTRUCTURE", False),
    ],
)
def test_which_items_set_seen(box: Transcript, item: str, sets_seen: bool) -> None:
    one(box, f"FETCH 1 ({item})")
    assert ("\\Seen" in flags_of(one(box, "FETCH 1 FLAGS"))) == sets_seen


def test_examine_never_sets_seen(box: Transcript) -> None:
    box.ok("EXAMINE INBOX")
    item = one(box, "FETCH 1 (BODY[] RFC822.TEXT)")
    assert b"FLAGS" not in item
    box.ok("SELECT INBOX")
    assert flags_of(one(box, "FETCH 1 FLAGS")) == set()


def test_header_and_text_sections(box: Transcript) -> None:
    assert one(box, "FETCH 1 BODY.PEEK[HEADER]") == (
        b"BODY[HEADER] {%d}\r\n%s" % (len(PLAIN_HEADER), PLAIN_HEADER)
    )
    assert one(box, "FETCH 1 BODY.PEEK[TEXT]") == (
        b"BODY[TEXT] {%d}\r\n%s" % (len(PLAIN_BODY), PLAIN_BODY)
    )


def test_header_fields(box: Transcript) -> None:
    wanted = b"Subject: Quarterly report\r\nFrom: Alice Example <alice@example.test>\r\n\r\n"
    item = one(box, "FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject from)]")
    assert item.startswith(b"BODY[HEADER.FIELDS (SUBJECT FROM)] {%d}\r\n" % len(wanted))
    text = item.split(b"\r\n", 1)[1]
    # Fields come in message order; the section ends with the blank line.
    assert text == b"From: Alice Example <alice@example.test>\r\nSubject: Quarterly report\r\n\r\n"


def test_header_fields_not(box: Transcript) -> None:
    item = one(box, "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (To Cc Date Message-ID)]")
    text = b"From: Alice Example <alice@example.test>\r\nSubject: Quarterly report\r\n\r\n"
    assert item == b"BODY[HEADER.FIELDS.NOT (TO CC DATE MESSAGE-ID)] {%d}\r\n%s" % (
        len(text),
        text,
    )


def test_header_fields_missing_field_gives_blank_line(box: Transcript) -> None:
    assert one(box, "FETCH 1 BODY.PEEK[HEADER.FIELDS (X-Nothing)]") == (
        b"BODY[HEADER.FIELDS (X-NOTHING)] {2}\r\n\r\n"
    )


def test_multipart_sections(box: Transcript) -> None:
    assert one(box, "FETCH 2 BODY.PEEK[1]") == b"BODY[1] {15}\r\nHello part one."
    assert one(box, "FETCH 2 BODY.PEEK[2]") == b"BODY[2] {8}\r\nAAECAw=="
    mime = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    assert one(box, "FETCH 2 BODY.PEEK[1.MIME]") == b"BODY[1.MIME] {%d}\r\n%s" % (
        len(mime),
        mime,
    )
    assert one(box, "FETCH 1 BODY.PEEK[1]") == (
        b"BODY[1] {%d}\r\n%s" % (len(PLAIN_BODY), PLAIN_BODY)
    )


def test_missing_part_is_nil_or_empty(box: Transcript) -> None:
    item = one(box, "FETCH 2 BODY.PEEK[3]")
    assert item in (b"BODY[3] NIL", b'BODY[3] ""', b"BODY[3] {0}\r\n")


def test_partial(box: Transcript) -> None:
    assert one(box, "FETCH 1 BODY.PEEK[]<0.4>") == b"BODY[]<0> {4}\r\nFrom"
    assert one(box, "FETCH 1 BODY.PEEK[]<6.5>") == b"BODY[]<6> {5}\r\n%s" % PLAIN[6:11]
    assert (
        one(box, "FETCH 1 BODY.PEEK[TEXT]<4.7>") == b"BODY[TEXT]<4> {7}\r\n%s" % (PLAIN_BODY[4:11])
    )
    # A length past the end is cut at the end; an origin past the end gives "".
    tail = PLAIN[len(PLAIN) - 3 :]
    assert one(box, f"FETCH 1 BODY.PEEK[]<{len(PLAIN) - 3}.100>") == (
        b"BODY[]<%d> {3}\r\n%s" % (len(PLAIN) - 3, tail)
    )
    assert one(box, "FETCH 1 BODY.PEEK[]<100000.10>") in (
        b"BODY[]<100000> {0}\r\n",
        b'BODY[]<100000> ""',
    )


def test_rfc822_items(box: Transcript) -> None:
    assert one(box, "FETCH 1 RFC822.SIZE") == b"RFC822.SIZE %d" % len(PLAIN)
    assert one(box, "FETCH 1 RFC822.HEADER") == (
        b"RFC822.HEADER {%d}\r\n%s" % (len(PLAIN_HEADER), PLAIN_HEADER)
    )
    item = one(box, "FETCH 1 RFC822.TEXT")
    assert item.startswith(b"RFC822.TEXT {%d}\r\n%s" % (len(PLAIN_BODY), PLAIN_BODY))
    item = one(box, "FETCH 2 RFC822")
    assert item.startswith(b"RFC822 {%d}\r\n%s" % (len(MULTIPART), MULTIPART))


def test_internaldate_flags_uid(box: Transcript) -> None:
    box.ok("STORE 1 FLAGS (\\Answered $Label)")
    item = one(box, "FETCH 1 (INTERNALDATE FLAGS UID)")
    # \Recent: this session was the first to select INBOX after the message came.
    assert item == b'INTERNALDATE "%s" FLAGS (\\Recent \\Answered $Label) UID 1' % DATE.encode()


def test_macros(box: Transcript) -> None:
    date = f'INTERNALDATE "{DATE}"'.encode()
    fast = b"FLAGS (\\Recent) " + date + b" RFC822.SIZE %d" % len(PLAIN)
    assert one(box, "FETCH 1 FAST") == fast
    assert one(box, "FETCH 1 ALL") == fast + b" " + PLAIN_ENVELOPE
    assert one(box, "FETCH 1 FULL") == (
        fast
        + b" "
        + PLAIN_ENVELOPE
        + b' BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 41 2)'
    )


def test_several_messages_and_star(box: Transcript) -> None:
    items = fetches(box.ok("FETCH 1:* (UID RFC822.SIZE)"))
    assert sorted(items) == [1, 2]
    assert items[2] == b"UID 2 RFC822.SIZE %d" % len(MULTIPART)
    assert sorted(fetches(box.ok("FETCH * UID"))) == [2]
    assert sorted(fetches(box.ok("FETCH 2,1 UID"))) == [1, 2]
    assert sorted(fetches(box.ok("FETCH 2:1 UID"))) == [1, 2]


def test_uid_fetch_always_includes_uid(box: Transcript) -> None:
    items = fetches(box.ok("UID FETCH 1:* FLAGS"))
    assert {seq: uid_of(item) for seq, item in items.items()} == {1: 1, 2: 2}


def test_uid_fetch_after_expunge_maps_uids_to_sequence_numbers(box: Transcript) -> None:
    append(box, message("three"))
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    items = fetches(box.ok("UID FETCH 2:3 (UID)"))
    assert items == {1: b"UID 2", 2: b"UID 3"}
    # A UID that does not exist is silently skipped, not an error.
    assert fetches(box.ok("UID FETCH 1 (FLAGS)")) == {}
    assert fetches(box.ok("UID FETCH 1000:2000 (FLAGS)")) == {}
    # "*" in a UID set is the highest UID in use.
    assert fetches(box.ok("UID FETCH * UID")) == {2: b"UID 3"}


def test_sequence_errors_are_bad(box: Transcript) -> None:
    box.bad("FETCH 0 FLAGS")
    box.bad("FETCH 3 FLAGS")  # two messages only
    box.bad("FETCH 1:5 FLAGS")
    box.bad("FETCH a FLAGS")
    box.bad("FETCH 1:")
    box.bad("FETCH 1 (FLAGS")
    box.bad("FETCH 1 (BOGUS)")
    box.bad("FETCH 1 BODY[SIDEWAYS]")
    box.bad("FETCH 1 BODY[]<5>")
    box.bad("FETCH 1")
    box.ok("FETCH 2 FLAGS")


def test_fetch_in_an_empty_mailbox(imap: Transcript) -> None:
    imap.ok("SELECT INBOX")
    imap.bad("FETCH 1 FLAGS")
    assert imap.ok("UID FETCH 1:* FLAGS").untagged == []


def test_fetch_needs_a_selected_mailbox(imap: Transcript) -> None:
    r = imap.bad("FETCH 1 FLAGS")
    assert b"Select a mailbox first" in r.tagged


def test_imaplib_fetch_rfc822(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        append(s, MULTIPART)
    client = server.imap_client(account)
    try:
        client.select("INBOX")
        typ, data = client.fetch("1", "(RFC822)")
        assert typ == "OK"
        raw = data[0][1]
        assert raw == MULTIPART
        parsed = email.message_from_bytes(raw)
        assert parsed.get_content_type() == "multipart/mixed"
        typ, data = client.uid("FETCH", "1", "(FLAGS)")
        assert typ == "OK"
        assert b"UID 1" in data[0]
        assert b"\\Seen" in data[0]
    finally:
        client.logout()


NESTED = (
    b"From: a@example.test\r\nSubject: Fwd: inner\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="OUT"\r\n\r\n'
    b"--OUT\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--OUT\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: b@example.test\r\nSubject: inner\r\nX-Tag: one\r\nX-Tag: two\r\n"
    b"Content-Type: multipart/alternative; boundary=IN\r\n\r\n"
    b"--IN\r\nContent-Type: text/plain\r\n\r\nplain inner\r\n"
    b"--IN\r\nContent-Type: text/html\r\n\r\n<p>html inner</p>\r\n"
    b"--IN--\r\n"
    b"--OUT--\r\n"
)
INNER_HEADER = (
    b"From: b@example.test\r\nSubject: inner\r\nX-Tag: one\r\nX-Tag: two\r\n"
    b"Content-Type: multipart/alternative; boundary=IN\r\n\r\n"
)


def test_attached_message_sections(imap: Transcript) -> None:
    append(imap, NESTED)
    imap.ok("SELECT INBOX")

    def section(name: str) -> bytes:
        item = one(imap, f"FETCH 1 BODY.PEEK[{name}]")
        label, _, data = item.partition(b"\r\n")
        assert label.startswith(f"BODY[{name.upper()}] {{".encode()), item
        return data

    assert section("1") == b"See attached."
    assert section("2.HEADER") == INNER_HEADER
    assert section("2.TEXT").startswith(b"--IN\r\nContent-Type: text/plain\r\n")
    assert section("2.1") == b"plain inner"
    assert section("2.2") == b"<p>html inner</p>"
    assert section("2.2.MIME") == b"Content-Type: text/html\r\n\r\n"
    assert section("2.MIME") == b"Content-Type: message/rfc822\r\n\r\n"
    assert section("2.HEADER.FIELDS (X-Tag)") == b"X-Tag: one\r\nX-Tag: two\r\n\r\n"
    structure = one(imap, "FETCH 1 BODYSTRUCTURE")
    # message/rfc822: its own ENVELOPE and BODYSTRUCTURE, then its size in lines.
    assert b'("message" "rfc822" NIL NIL NIL "7bit" 219 (NIL "inner" ' in structure
    assert b'"alternative" ("boundary" "IN") NIL NIL NIL) 14 NIL NIL NIL NIL)' in structure
    assert structure.endswith(b' "mixed" ("boundary" "OUT") NIL NIL NIL)')


def test_header_fields_keep_folding_and_repeats(imap: Transcript) -> None:
    append(
        imap,
        b"From: a@example.test\r\nSubject: a folded\r\n subject line\r\nX-Tag: one\r\n"
        b"Received: r1\r\nX-Tag: two\r\n\r\nbody\r\n",
    )
    imap.ok("SELECT INBOX")
    item = one(imap, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject X-TAG)] ENVELOPE)")
    assert item.startswith(
        b"BODY[HEADER.FIELDS (SUBJECT X-TAG)] {60}\r\n"
        b"Subject: a folded\r\n subject line\r\nX-Tag: one\r\nX-Tag: two\r\n\r\n"
    )
    assert b'ENVELOPE (NIL "a folded subject line" ' in item  # unfolded in the ENVELOPE


def test_bare_lf_message_size_matches_its_bytes(imap: Transcript) -> None:
    append(imap, b"Subject: lf\nFrom: a@example.test\n\nbody\n")
    imap.ok("SELECT INBOX")
    item = one(imap, "FETCH 1 (RFC822.SIZE BODY.PEEK[])")
    size = int(item.split()[1])
    literal = item.split(b"BODY[] ", 1)[1]
    head, _, data = literal.partition(b"\r\n")
    assert int(head.strip(b"{}")) == len(data) == size


def test_header_fields_echo_the_clients_list_repeats_included(box: Transcript) -> None:
    """imaptest's fetch-body: the response names the section as asked, each field sent once."""
    item = one(box, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (from from)])")
    wanted = b"From: Alice Example <alice@example.test>\r\n\r\n"
    assert item == b"BODY[HEADER.FIELDS (FROM FROM)] {%d}\r\n" % len(wanted) + wanted


def test_envelope_groups_empty_and_with_only_a_comment(imap: Transcript) -> None:
    """imaptest's fetch-envelope: RFC 3501 group syntax in ENVELOPE; a group holding only a
    comment is an empty group, not an address made of the comment."""
    append(
        imap,
        b"Date: Thu, 15 Feb 2007 01:02:03 +0200\r\nFrom: user@domain (Real Name)\r\n"
        b"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\n"
        b"Cc: group:;, group2: (foo) ;\r\n\r\nbody\r\n",
    )
    imap.ok("SELECT INBOX")
    assert one(imap, "FETCH 1 ENVELOPE") == (
        b'ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" "domain")) '
        b'(("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
        b'((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)'
        b'(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) '
        b'((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) '
        b"NIL NIL NIL)"
    )


def test_envelope_reports_a_source_route_as_the_adl(imap: Transcript) -> None:
    """imaptest's fetch-envelope: <@route:user@domain> (RFC 5322 §4.4 obsolete syntax) keeps its
    route in the address's second member, as RFC 3501 §7.4.2 defines it."""
    append(imap, b"From: <@route:user@domain>\r\n\r\nbody\r\n")
    imap.ok("SELECT INBOX")
    assert b'((NIL "@route" "user" "domain"))' in one(imap, "FETCH 1 ENVELOPE")
