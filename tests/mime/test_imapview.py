"""mailgate.mime.imapview: ENVELOPE, BODYSTRUCTURE, sections, IMAP strings, the index.

Expected wire values are written out by hand from RFC 3501 §7.4.2 in the form Dovecot uses
(lower-case types, "7bit" default, charset us-ascii added to text/* parts, line counts = LFs).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mailgate.mime.addresses import address_list
from mailgate.mime.headers import MAX_STRUCTURED, header_fields, header_values, normalize_crlf
from mailgate.mime.imapview import (
    MAX_REFERENCES,
    extract_section,
    index_message,
    nstring,
    quoted,
    string,
    utf8_quoted,
)
from mailgate.mime.parts import body_text
from tests.mime.helpers import crlf, fuzz, leaf_sizes, parse_wire, section

# ---------------------------------------------------------------------------------------------
# Encoders (RFC 3501 §4.3)


def test_quoted_escapes_backslash_and_quote() -> None:
    assert quoted(b'a"b\\c') == b'"a\\"b\\\\c"'
    assert quoted(b"") == b'""'


def test_string_is_quoted_when_it_can_be() -> None:
    assert string(b"hello world") == b'"hello world"'
    assert string("plain") == b'"plain"'
    assert string(b"x" * 999) == b'"' + b"x" * 999 + b'"'


@pytest.mark.parametrize(
    "value",
    [b"caf\xe9", b"two\r\nlines", b"nul\x00", b"lf\n", b"x" * 1000, "caf\u00e9"],
)
def test_string_uses_a_literal_otherwise(value: bytes | str) -> None:
    octets = value.encode() if isinstance(value, str) else value
    assert string(value) == b"{%d}\r\n" % len(octets) + octets


def test_nstring() -> None:
    assert nstring(None) == b"NIL"
    assert nstring(b"") == b'""'
    assert nstring("a") == b'"a"'


def test_string_for_a_utf8_client_quotes_utf8() -> None:
    assert string("Grüße", utf8=True) == '"Grüße"'.encode()
    assert string("two\r\nlines", utf8=True) == b"{10}\r\ntwo\r\nlines"


def test_utf8_quoted_turns_only_utf8_literals_into_quoted_strings() -> None:
    # RFC 6855 §3: what a client that enabled UTF8=ACCEPT is sent instead of the stored form.
    wire = b" ".join(
        [
            b"(" + string('Grüße "aus" Köln'),  # becomes quoted, escapes and all
            string(b"caf\xe9"),  # not UTF-8: stays a literal
            string("a\r\nb {3}\r\nxyz"),  # CRLF (and a "{3}" CRLF inside): stays
            string("x" * 1000),  # too long to quote
            b'"plain" NIL)',
        ]
    )
    assert utf8_quoted(wire) == b" ".join(
        [
            b"(" + '"Grüße \\"aus\\" Köln"'.encode(),
            b"{4}\r\ncaf\xe9",
            b"{13}\r\na\r\nb {3}\r\nxyz",
            b"{1000}\r\n" + b"x" * 1000,
            b'"plain" NIL)',
        ]
    )
    assert utf8_quoted(b'("ascii" NIL)') == b'("ascii" NIL)'


# ---------------------------------------------------------------------------------------------
# A simple text message (the RFC 3501 §8 sample)

SIMPLE = crlf(
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\n"
    b"Subject: afternoon meeting\n"
    b"To: mooch@owatagu.siam.edu.example\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.example>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    b"\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\n"
)


def test_simple_message_envelope() -> None:
    fred = b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example"))'
    expected = [
        b'("Mon, 7 Feb 1994 21:52:25 -0800"',
        b'"afternoon meeting"',
        fred,  # from
        fred,  # sender: absent, so the same as from
        fred,  # reply-to: likewise
        b'((NIL NIL "mooch" "owatagu.siam.edu.example"))',
        b"NIL NIL NIL",  # cc, bcc, in-reply-to
        b'"<B27397-0100000@Blurdybloop.example>")',
    ]
    assert index_message(SIMPLE).envelope == b" ".join(expected)


def test_simple_message_structure() -> None:
    ix = index_message(SIMPLE)
    # 53 characters of text + CRLF = 55 octets, one line. Attribute names keep their case.
    assert ix.body == b'("text" "plain" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1)'
    assert ix.bodystructure == (
        b'("text" "plain" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1 NIL NIL NIL NIL)'
    )


def test_simple_message_values_and_sections() -> None:
    ix = index_message(SIMPLE)
    header_end = SIMPLE.index(b"\r\n\r\n") + 4
    assert ix.size == len(SIMPLE)
    assert ix.header == SIMPLE[:header_end]
    assert ix.message_id == "<B27397-0100000@Blurdybloop.example>"
    assert ix.sent_date == datetime.datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=datetime.timezone(datetime.timedelta(hours=-8))
    )
    body = b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    assert section(SIMPLE, ix, ()) == SIMPLE
    assert section(SIMPLE, ix, (), "HEADER") == ix.header
    assert section(SIMPLE, ix, (), "TEXT") == body
    assert section(SIMPLE, ix, (1,)) == body  # a non-multipart message's part 1 is its body
    assert section(SIMPLE, ix, (1,), "MIME") == ix.header
    assert section(SIMPLE, ix, (2,)) is None
    assert section(SIMPLE, ix, (1, 1)) is None
    assert len(ix.parts) < 40


def test_missing_content_type_defaults_to_text_plain_us_ascii() -> None:
    raw = crlf(b"Subject: hi\n\nline one\nline two\n")
    assert index_message(raw).bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL)'
    )


# ---------------------------------------------------------------------------------------------
# multipart/mixed with an attachment

MIXED = crlf(
    b"From: Alice <alice@example.com>\n"
    b"To: bob@example.org\n"
    b"Subject: report\n"
    b"Date: Tue, 14 May 2024 12:22:30 +0200\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="XX"\n'
    b"\n"
    b"preamble\n"
    b"--XX\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"\n"
    b"See attached.\n"
    b"Second line.\n"
    b"--XX\n"
    b'Content-Type: application/pdf; name="a.pdf"\n'
    b'Content-Disposition: attachment; filename="a.pdf"\n'
    b"Content-Transfer-Encoding: base64\n"
    b"\n"
    b"JVBERi0xLjQK\n"
    b"JSVFT0YK\n"
    b"--XX--\n"
    b"epilogue\n"
)


def test_mixed_bodystructure() -> None:
    ix = index_message(MIXED)
    # Part 1: "See attached.\r\nSecond line." = 27 octets, 1 LF (the CRLF before the delimiter
    # belongs to the delimiter, RFC 2046 §5.1.1). Part 2: "JVBERi0xLjQK\r\nJSVFT0YK" = 22.
    assert ix.bodystructure == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 27 1 NIL NIL NIL NIL)'
        b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 22 NIL'
        b' ("attachment" ("filename" "a.pdf")) NIL NIL)'
        b' "mixed" ("boundary" "XX") NIL NIL NIL)'
    )
    assert ix.body == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 27 1)'
        b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 22) "mixed")'
    )


def test_mixed_sections() -> None:
    ix = index_message(MIXED)
    header_end = MIXED.index(b"\r\n\r\n") + 4
    assert section(MIXED, ix, (), "HEADER") == MIXED[:header_end]
    assert section(MIXED, ix, (), "TEXT") == MIXED[header_end:]
    assert section(MIXED, ix, (), "TEXT").startswith(b"preamble\r\n--XX\r\n")
    assert section(MIXED, ix, (1,)) == b"See attached.\r\nSecond line."
    assert section(MIXED, ix, (1,), "MIME") == b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    assert section(MIXED, ix, (2,)) == b"JVBERi0xLjQK\r\nJSVFT0YK"
    assert section(MIXED, ix, (2,), "MIME") == (
        b'Content-Type: application/pdf; name="a.pdf"\r\n'
        b'Content-Disposition: attachment; filename="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    assert section(MIXED, ix, (3,)) is None
    assert section(MIXED, ix, (0,)) is None
    assert section(MIXED, ix, (2, 1)) is None
    assert section(MIXED, ix, (1,), "HEADER") is None  # HEADER addresses messages only
    assert section(MIXED, ix, (), "MIME") is None
    assert len(ix.parts) < 80


def test_sections_are_byte_exact_slices() -> None:
    ix = index_message(MIXED)
    for path, size in leaf_sizes(parse_wire(ix.bodystructure)).items():
        part = section(MIXED, ix, path)
        assert part is not None
        assert len(part) == size
        assert part in MIXED


def test_mixed_search_text_skips_attachments() -> None:
    assert body_text(MIXED) == "See attached.\r\nSecond line."


# ---------------------------------------------------------------------------------------------
# multipart/alternative inside multipart/mixed

NESTED = crlf(
    b"Subject: nested\n"
    b"Content-Type: multipart/mixed; boundary=outer\n"
    b"\n"
    b"--outer\n"
    b"Content-Type: multipart/alternative; boundary=inner\n"
    b"\n"
    b"--inner\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"plain body\n"
    b"--inner\n"
    b"Content-Type: text/html\n"
    b"\n"
    b"<b>html body</b>\n"
    b"--inner--\n"
    b"\n"
    b"--outer\n"
    b"Content-Type: image/png\n"
    b"Content-Transfer-Encoding: base64\n"
    b"Content-ID: <img1@x>\n"
    b"\n"
    b"iVBORw0K\n"
    b"--outer--\n"
)


def test_nested_bodystructure() -> None:
    assert index_message(NESTED).bodystructure == (
        b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 16 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "inner") NIL NIL NIL)'
        b'("image" "png" NIL "<img1@x>" NIL "base64" 8 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )


def test_nested_sections() -> None:
    ix = index_message(NESTED)
    assert section(NESTED, ix, (1, 1)) == b"plain body"
    assert section(NESTED, ix, (1, 2)) == b"<b>html body</b>"
    assert section(NESTED, ix, (1, 2), "MIME") == b"Content-Type: text/html\r\n\r\n"
    # A multipart part's body is everything after its header, up to the outer delimiter.
    assert section(NESTED, ix, (1,)) == (
        b"--inner\r\nContent-Type: text/plain\r\n\r\nplain body\r\n"
        b"--inner\r\nContent-Type: text/html\r\n\r\n<b>html body</b>\r\n--inner--\r\n"
    )
    assert section(NESTED, ix, (2,)) == b"iVBORw0K"
    assert section(NESTED, ix, (1, 3)) is None
    assert body_text(NESTED) == "plain body\n<b>html body</b>"


# ---------------------------------------------------------------------------------------------
# message/rfc822

FORWARD = crlf(
    b"From: a@example.com\n"
    b"To: b@example.com\n"
    b"Subject: fwd\n"
    b'Content-Type: multipart/mixed; boundary="b1"\n'
    b"\n"
    b"--b1\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"see below\n"
    b"--b1\n"
    b"Content-Type: message/rfc822\n"
    b"Content-Disposition: attachment\n"
    b"\n"
    b'From: "Carol C." <carol@example.net>\n'
    b"To: dave@example.net\n"
    b"Subject: original\n"
    b"Date: Wed, 1 May 2024 08:00:00 +0000\n"
    b"Message-ID: <orig@example.net>\n"
    b"\n"
    b"original text\n"
    b"--b1--\n"
)

INNER_HEADER = (
    b'From: "Carol C." <carol@example.net>\r\n'
    b"To: dave@example.net\r\n"
    b"Subject: original\r\n"
    b"Date: Wed, 1 May 2024 08:00:00 +0000\r\n"
    b"Message-ID: <orig@example.net>\r\n"
    b"\r\n"
)


def test_rfc822_bodystructure_carries_envelope_and_structure() -> None:
    carol = b'(("Carol C." NIL "carol" "example.net"))'
    envelope = [
        b'("Wed, 1 May 2024 08:00:00 +0000" "original"',
        carol,
        carol,
        carol,
        b'((NIL NIL "dave" "example.net")) NIL NIL NIL "<orig@example.net>")',
    ]
    rfc822 = [
        b'("message" "rfc822" NIL NIL NIL "7bit"',
        b"164",  # the encapsulated message: 38+22+19+38+32+2+13 octets
        *envelope,
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 0 NIL NIL NIL NIL)',
        b"6",  # its lines: 6 LFs
        b'NIL ("attachment" NIL) NIL NIL)',
    ]
    assert index_message(FORWARD).bodystructure == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL)'
        + b" ".join(rfc822)
        + b' "mixed" ("boundary" "b1") NIL NIL NIL)'
    )


def test_rfc822_sections() -> None:
    ix = index_message(FORWARD)
    assert section(FORWARD, ix, (2,)) == INNER_HEADER + b"original text"
    assert section(FORWARD, ix, (2,), "HEADER") == INNER_HEADER
    assert section(FORWARD, ix, (2,), "TEXT") == b"original text"
    assert section(FORWARD, ix, (2, 1)) == b"original text"
    assert section(FORWARD, ix, (2, 2)) is None
    assert section(FORWARD, ix, (2,), "MIME") == (
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
    )
    assert extract_section(FORWARD, ix.parts, (2,), "header.fields", ("subject", "X-None")) == (
        b"Subject: original\r\n\r\n"
    )
    assert extract_section(FORWARD, ix.parts, (2,), "HEADER.FIELDS.NOT", ("From", "To")) == (
        b"Subject: original\r\nDate: Wed, 1 May 2024 08:00:00 +0000\r\n"
        b"Message-ID: <orig@example.net>\r\n\r\n"
    )
    assert body_text(FORWARD) == "see below\noriginal text"


def test_rfc822_with_multipart_inside() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=o\n\n"
        b"--o\n\ntop text\n"
        b"--o\nContent-Type: message/rfc822\n\n"
        b"Subject: inner\nContent-Type: multipart/alternative; boundary=i\n\n"
        b"--i\n\nalt one\n--i\nContent-Type: text/html\n\nalt two\n--i--\n"
        b"--o--\n"
    )
    ix = index_message(raw)
    assert section(raw, ix, (1,)) == b"top text"  # no header fields: "\r\n" then the body
    assert section(raw, ix, (1,), "MIME") == b"\r\n"
    assert section(raw, ix, (2, 1)) == b"alt one"
    assert section(raw, ix, (2, 2)) == b"alt two"
    assert section(raw, ix, (2, 2), "MIME") == b"Content-Type: text/html\r\n\r\n"
    # The CRLF after "--i--" belongs to the outer delimiter.
    assert section(raw, ix, (2,), "TEXT") == (
        b"--i\r\n\r\nalt one\r\n--i\r\nContent-Type: text/html\r\n\r\nalt two\r\n--i--"
    )
    structure = parse_wire(ix.bodystructure)
    inner = structure[1]
    assert inner[:2] == [b"message", b"rfc822"]
    assert inner[7][1] == b"inner"  # the envelope's subject
    assert inner[8][-5:] == [b"alternative", [b"boundary", b"i"], None, None, None]


def test_digest_parts_default_to_message_rfc822() -> None:
    # RFC 2046 §5.1.5
    raw = crlf(
        b"Content-Type: multipart/digest; boundary=d\n\n"
        b"--d\n\nSubject: one\n\nfirst\n"
        b"--d\n\nSubject: two\n\nsecond\n"
        b"--d--\n"
    )
    ix = index_message(raw)
    structure = parse_wire(ix.bodystructure)
    assert [p[:2] for p in structure[:2]] == [[b"message", b"rfc822"]] * 2
    assert structure[1][7][1] == b"two"
    assert section(raw, ix, (2,), "TEXT") == b"second"
    assert section(raw, ix, (2, 1)) == b"second"


# ---------------------------------------------------------------------------------------------
# Extension data


def test_other_extension_fields() -> None:
    raw = crlf(
        b"Content-Type: text/plain\n"
        b"Content-Transfer-Encoding: Quoted-Printable\n"
        b"Content-ID: <id@x>\n"
        b"Content-Description: =?utf-8?q?d=C3=A9scription?=\n"
        b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        b"Content-Disposition: INLINE\n"
        b"Content-Language: en, fi (finnish)\n"
        b"Content-Location: http://example.com/a.txt\n"
        b"\n"
        b"caf=C3=A9\n"
    )
    assert index_message(raw).bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") "<id@x>" "=?utf-8?q?d=C3=A9scription?="'
        b' "quoted-printable" 11 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" NIL) ("en" "fi")'
        b' "http://example.com/a.txt")'
    )


# ---------------------------------------------------------------------------------------------
# ENVELOPE details


def envelope_of(header: bytes) -> list[Any]:
    return parse_wire(index_message(crlf(header + b"\n\nbody\n")).envelope)


def test_encoded_word_subject_stays_encoded_in_envelope_and_is_decoded_for_search() -> None:
    raw = crlf(b"Subject: =?utf-8?q?Caf=C3=A9?=\n =?utf-8?b?IG5vdw==?=\n\nbody\n")
    ix = index_message(raw)
    # Unfolding removes the CRLF and keeps the WSP (RFC 5322 §2.2.3); IMAP does not decode.
    assert parse_wire(ix.envelope)[1] == b"=?utf-8?q?Caf=C3=A9?= =?utf-8?b?IG5vdw==?="
    assert header_values(ix.header, "subject") == ["Caf\u00e9 now"]


def test_group_syntax() -> None:
    env = envelope_of(
        b"From: a@example.com\n"
        b"To: undisclosed-recipients:;\n"
        b'Cc: team: a@b.example, "C D" <c@d.example>;, e@f.example'
    )
    assert env[5] == [[None, None, b"undisclosed-recipients", None], [None, None, None, None]]
    assert env[6] == [
        [None, None, b"team", None],
        [None, None, b"a", b"b.example"],
        [b"C D", None, b"c", b"d.example"],
        [None, None, None, None],
        [None, None, b"e", b"f.example"],
    ]


def test_group_wire_form() -> None:
    raw = crlf(b"To: team: a@b, c@d;\n\n")
    assert index_message(raw).envelope == (
        b'(NIL NIL NIL NIL NIL ((NIL NIL "team" NIL)(NIL NIL "a" "b")(NIL NIL "c" "d")'
        b"(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
    )


def test_address_forms() -> None:
    env = envelope_of(
        b"From: user@domain (Real Name)\n"
        b"Sender:\n"
        b'Reply-To: "Doe, John" <john@example.com>\n'
        b"To: localuser, <@route.example:x@y.example>, =?utf-8?q?J=C3=B6rg?= <j@z.example>\n"
        b"Bcc:"
    )
    assert env[2] == [[b"Real Name", None, b"user", b"domain"]]
    assert env[3] == env[2]  # present but empty: same as from (RFC 3501 §7.4.2)
    assert env[4] == [[b"Doe, John", None, b"john", b"example.com"]]
    assert env[5] == [
        [None, None, b"localuser", None],  # no @: host NIL
        [None, b"@route.example", b"x", b"y.example"],  # the source route is the adl
        [b"=?utf-8?q?J=C3=B6rg?=", None, b"j", b"z.example"],  # name stays encoded
    ]
    assert env[7] is None  # empty address list


def test_missing_fields_are_nil() -> None:
    assert index_message(b"").envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


@pytest.mark.parametrize(
    "header",
    [
        b'From: "unterminated <a@b',
        b"From: <a@b",
        b"From: a@b>, >>, <<, (((, )))",
        b"From: \\",
        b"From: ;;;:::,,,",
        b"From: group: a@b",  # unterminated group
        b"From: \x00\xff\xfe <\xff@\xfe>",
    ],
)
def test_malformed_addresses_never_raise(header: bytes) -> None:
    env = envelope_of(header)
    assert len(env) == 10


def test_eight_bit_header_bytes_come_out_as_literals() -> None:
    raw = crlf(b"Subject: caf\xe9\nFrom: J\xc3\xb6rg <j@x>\n\nbody\n")
    ix = index_message(raw)
    assert b" {4}\r\ncaf\xe9 " in ix.envelope
    assert parse_wire(ix.envelope)[2] == [[b"J\xc3\xb6rg", None, b"j", b"x"]]


def test_nul_bytes_never_reach_the_wire() -> None:
    # CHAR8 excludes NUL even in literals (RFC 3501 §9); it is sent as 0x80 instead.
    raw = crlf(
        b"Subject: a\x00b\nFrom: \x00 <x\x00@y>\n"
        b"Content-Type: text/plain; name*=utf-8''a%00b\n\nbody\n"
    )
    ix = index_message(raw)
    assert b"\x00" not in ix.envelope + ix.body + ix.bodystructure
    assert parse_wire(ix.envelope)[1] == b"a\x80b"
    assert parse_wire(ix.bodystructure)[2] == [b"charset", b"us-ascii", b"name", b"a\x80b"]


def test_sent_date() -> None:
    def date_of(value: bytes) -> datetime.datetime | None:
        return index_message(crlf(b"Date: " + value + b"\n\n")).sent_date

    assert date_of(b"Tue, 14 May 2024 12:22:30 +0200") == datetime.datetime(
        2024, 5, 14, 10, 22, 30, tzinfo=datetime.UTC
    )
    unknown_zone = date_of(b"Tue, 14 May 2024 12:22:30 -0000")
    assert unknown_zone is not None
    assert unknown_zone.tzinfo is not None
    assert date_of(b"not a date") is None
    assert date_of(b"Tue, 14 May 99999 12:22:30 +0200") is None
    assert index_message(b"Subject: x\r\n\r\n").sent_date is None


def test_message_id_missing() -> None:
    assert index_message(crlf(b"Subject: x\n\n")).message_id is None


# ---------------------------------------------------------------------------------------------
# What threading needs: Message-ID, In-Reply-To, References, Subject


def test_threading_fields() -> None:
    ix = index_message(
        crlf(
            b"Message-ID: <reply@example.net>\n"
            b"In-Reply-To: <parent@example.net> (Carol's message)\n"
            b"References: <root@example.net>\n"
            b"  <middle@example.net> (folded)\n"
            b"\t<parent@example.net>\n"
            b"Subject: Re: =?utf-8?q?Caf=C3=A9?=\n"
            b"  =?utf-8?b?IG5vdw==?=\n"
            b"\nbody\n"
        )
    )
    assert ix.message_id == "<reply@example.net>"
    assert ix.in_reply_to == "<parent@example.net>"
    assert ix.references == ("<root@example.net>", "<middle@example.net>", "<parent@example.net>")
    assert ix.subject == "Re: Caf\u00e9 now"


def test_threading_fields_missing() -> None:
    ix = index_message(crlf(b"From: a@b\n\nbody\n"))
    assert (ix.in_reply_to, ix.references, ix.subject) == (None, (), None)
    assert index_message(b"").references == ()


def test_in_reply_to_is_the_first_msg_id() -> None:
    def in_reply_to(value: bytes) -> str | None:
        return index_message(crlf(b"In-Reply-To: " + value + b"\n\n")).in_reply_to

    assert in_reply_to(b"<a@x> <b@x>") == "<a@x>"
    assert in_reply_to(b"a@x") == "<a@x>"  # a bare token
    assert in_reply_to(b"Your message of Monday") is None
    assert in_reply_to(b"") is None


def test_references_tolerate_junk_and_keep_the_last_ones() -> None:
    def references(value: bytes) -> tuple[str, ...]:
        return index_message(crlf(b"References: " + value + b"\n\n")).references

    assert references(b"junk <a@x> more junk <> <b@x") == ("<a@x>",)
    assert references(b"a@x") == ("<a@x>",)
    many = b" ".join(b"<%d@x>" % i for i in range(MAX_REFERENCES + 50))
    kept = references(many)
    assert len(kept) == MAX_REFERENCES
    assert kept[0] == "<50@x>"
    assert kept[-1] == f"<{MAX_REFERENCES + 49}@x>"
    # A field longer than MAX_STRUCTURED is read from its end, where the parent is.
    huge = b"<old@x> " + b"x" * (2 * MAX_STRUCTURED) + b" <parent@x>"
    assert references(huge) == ("<parent@x>",)


def test_subject_is_decoded_and_never_carries_nul() -> None:
    def subject(value: bytes) -> str | None:
        return index_message(crlf(b"Subject: " + value + b"\n\n")).subject

    assert subject(b"") == ""
    assert subject(b"caf\xe9") == "caf\ufffd"
    assert subject(b"=?utf-8?q?a=00b?=") == "a\ufffdb"
    assert subject(b"a\x00b") == "a\ufffdb"
    assert index_message(crlf(b"Subject: first\nSubject: second\n\n")).subject == "first"


# ---------------------------------------------------------------------------------------------
# Fuzzing: random bytes and mutations of valid messages never raise and always give
# well-formed wire values whose part sizes agree with the sections. Runs briefly by default;
# MAILGATE_FUZZ_ITERATIONS=100000 runs it longer.

SEEDS = [SIMPLE, MIXED, NESTED, FORWARD]


def check_everything(data: bytes) -> None:
    parse_wire(index_message(data).bodystructure)  # callers normalize, but never raise anyway
    raw = normalize_crlf(data)
    ix = index_message(raw)
    assert b"\x00" not in ix.envelope + ix.body + ix.bodystructure
    parse_wire(ix.envelope)
    parse_wire(ix.body)
    for path, size in leaf_sizes(parse_wire(ix.bodystructure)).items():
        part = extract_section(raw, ix.parts, path, "")
        assert part is not None, path
        assert len(part) == size, path
        extract_section(raw, ix.parts, path, "MIME")
        extract_section(raw, ix.parts, path, "HEADER.FIELDS", ("From", "Subject"))
    assert extract_section(raw, ix.parts, (), "HEADER") == ix.header
    body_text(raw)
    header_values(ix.header, "Subject")
    address_list(ix.header, "From")
    header_fields(ix.header, ("To", "Cc"), exclude=True)


def test_fuzz_never_raises_and_output_is_well_formed() -> None:
    fuzz(check_everything, SEEDS, seed=20240514)
