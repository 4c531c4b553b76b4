"""mailgate.mime.compose: fields in, RFC 5322 bytes out; read back with our own parser."""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import re
from typing import Any

import pytest

from mailgate.mime.addresses import address_list
from mailgate.mime.compose import Attachment, Composed, NamedAddress, compose
from mailgate.mime.headers import header_values, split_header
from mailgate.mime.imapview import MessageIndex, extract_section, index_message
from mailgate.mime.parts import body_text
from tests.mime.helpers import parse_wire

WHEN = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"


def make(**fields: Any) -> Composed:
    fields.setdefault("sender", "agent@example.test")
    fields.setdefault("hostname", "mx.example.test")
    fields.setdefault("to", ["bob@example.org"])
    fields.setdefault("date", WHEN)
    return compose(**fields)


def read(composed: Composed) -> tuple[MessageIndex, list[Any]]:
    """The index of the composed message and its parsed BODYSTRUCTURE."""
    raw = composed.raw
    # RFC 5322 §2.1.1 and §2.3: CRLF only, no line over 998 octets.
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    ix = index_message(raw)
    return ix, parse_wire(ix.bodystructure)


def header(composed: Composed) -> bytes:
    return split_header(composed.raw)[0]


def section(composed: Composed, *part: int) -> bytes:
    data = extract_section(composed.raw, index_message(composed.raw).parts, part, "")
    assert data is not None
    return data


# ---------------------------------------------------------------------------------------------
# Structure


def test_text_only_is_one_text_part() -> None:
    composed = make(subject="Hello", text="Hi Bob,\nsee you.\n")
    ix, structure = read(composed)
    assert structure[:3] == [b"text", b"plain", [b"charset", b"utf-8"]]
    assert body_text(composed.raw) == "Hi Bob,\r\nsee you.\r\n"
    assert header_values(ix.header, "Subject") == ["Hello"]
    assert header_values(ix.header, "MIME-Version") == ["1.0"]
    assert ix.sent_date == WHEN
    assert ix.message_id == composed.message_id


def test_nothing_to_say_is_an_empty_text_part() -> None:
    composed = make()
    _, structure = read(composed)
    assert structure[:2] == [b"text", b"plain"]
    assert body_text(composed.raw).strip() == ""


def test_html_only_is_one_html_part() -> None:
    composed = make(html="<p>Hi</p>")
    _, structure = read(composed)
    assert structure[:2] == [b"text", b"html"]
    assert body_text(composed.raw).strip() == "<p>Hi</p>"


def test_text_and_html_are_alternatives() -> None:
    composed = make(text="plain caf\u00e9", html="<p>caf\u00e9</p>")
    _, structure = read(composed)
    assert structure[2] == b"alternative"
    assert [p[:2] for p in structure[:2]] == [[b"text", b"plain"], [b"text", b"html"]]
    assert body_text(composed.raw) == "plain caf\u00e9\r\n\n<p>caf\u00e9</p>\r\n"
    # Only the message says MIME-Version, not its parts.
    assert composed.raw.count(b"MIME-Version") == 1


def test_attachments_make_a_mixed_message() -> None:
    composed = make(
        text="see attached",
        html="<p>see attached</p>",
        attachments=[
            Attachment("report.pdf", "application/pdf", PDF),
            Attachment("notes.txt", "Text/Plain", b"line one\nline two\n"),
        ],
    )
    _, structure = read(composed)
    assert structure[3] == b"mixed"
    assert structure[0][2] == b"alternative"
    pdf, notes = structure[1], structure[2]
    assert pdf[:2] == [b"application", b"pdf"]
    assert pdf[8] == [b"attachment", [b"filename", b"report.pdf"]]
    assert notes[:2] == [b"text", b"plain"]
    # The bytes come back exactly, whatever they hold.
    assert base64.b64decode(section(composed, 2)) == PDF
    assert base64.b64decode(section(composed, 3)) == b"line one\nline two\n"
    assert body_text(composed.raw).startswith("see attached")


def test_attachments_without_text_or_html() -> None:
    composed = make(attachments=[Attachment("a.bin", "application/octet-stream", b"\x00\xff")])
    _, structure = read(composed)
    assert structure[0][:2] == [b"text", b"plain"]
    assert structure[1][:2] == [b"application", b"octet-stream"]
    assert base64.b64decode(section(composed, 2)) == b"\x00\xff"


def test_inline_parts_with_a_content_id_are_related_to_the_html() -> None:
    composed = make(
        text="logo below",
        html='<p><img src="cid:logo@x"></p>',
        attachments=[
            Attachment("logo.png", "image/png", PNG, content_id="<logo@x>", inline=True),
            Attachment("report.pdf", "application/pdf", PDF),
        ],
    )
    _, structure = read(composed)
    # mixed(alternative(text, related(html, image)), pdf)
    assert structure[2] == b"mixed"
    alternative = structure[0]
    assert alternative[2] == b"alternative"
    related = alternative[1]
    assert related[2] == b"related"
    html, image = related[0], related[1]
    assert html[:2] == [b"text", b"html"]
    assert image[:4] == [b"image", b"png", None, b"<logo@x>"]
    assert image[8] == [b"inline", [b"filename", b"logo.png"]]
    assert base64.b64decode(section(composed, 1, 2, 2)) == PNG
    assert structure[1][:2] == [b"application", b"pdf"]


def test_content_ids_get_their_angle_brackets() -> None:
    composed = make(
        html='<img src="cid:logo">',
        attachments=[Attachment("logo.png", "image/png", PNG, content_id="logo", inline=True)],
    )
    _, structure = read(composed)
    assert structure[2] == b"related"
    assert structure[1][3] == b"<logo>"


def test_inline_parts_without_html_are_plain_attachments() -> None:
    composed = make(
        text="no html",
        attachments=[Attachment("logo.png", "image/png", PNG, content_id="logo", inline=True)],
    )
    _, structure = read(composed)
    assert structure[2] == b"mixed"
    assert structure[1][3] == b"<logo>"
    assert structure[1][8] == [b"inline", [b"filename", b"logo.png"]]


def test_an_attached_message_stays_a_message() -> None:
    inner = b"From: carol@example.net\nSubject: original\n\noriginal text\n"
    composed = make(
        text="forwarding",
        attachments=[Attachment("original.eml", "message/rfc822", inner)],
    )
    _, structure = read(composed)
    forwarded = structure[1]
    assert forwarded[:2] == [b"message", b"rfc822"]
    assert forwarded[5] == b"7bit"  # RFC 2046 §5.2.1: never base64
    assert forwarded[7][1] == b"original"  # its ENVELOPE's subject
    assert section(composed, 2, 1) == b"original text\r\n"


def test_long_and_non_ascii_text_lines_are_encoded() -> None:
    text = "\u00e9" * 1500 + "\n" + "x" * 2000 + "\n"
    composed = make(text=text, html="<p>" + "y" * 3000 + "</p>")
    read(composed)  # no line over 998 octets
    assert body_text(composed.raw).startswith(text.replace("\n", "\r\n"))


# ---------------------------------------------------------------------------------------------
# Header fields


def test_round_trip_of_names_addresses_and_subject() -> None:
    composed = make(
        sender=NamedAddress("agent@example.test", "J\u00f6rg M\u00fcller, Jr."),
        to=["bob@example.org", NamedAddress("carol@example.org", 'Carol "CC" Smith')],
        cc=[NamedAddress("dave@example.org", "\u6771\u4eac")],
        reply_to=[NamedAddress("replies@example.test", "Replies")],
        subject="Gr\u00fc\u00dfe aus K\u00f6ln \u2014 " + "lang " * 30 + "Ende",
    )
    ix, _ = read(composed)
    head = header(composed)
    assert head.isascii()  # non-ASCII goes out as encoded-words
    assert address_list(head, "From") == [
        ("J\u00f6rg M\u00fcller, Jr.", "agent@example.test"),
    ]
    assert address_list(head, "To") == [
        ("", "bob@example.org"),
        ('Carol "CC" Smith', "carol@example.org"),
    ]
    assert address_list(head, "Cc") == [("\u6771\u4eac", "dave@example.org")]
    assert address_list(head, "Reply-To") == [("Replies", "replies@example.test")]
    assert ix.subject == "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 " + "lang " * 30 + "Ende"
    envelope = parse_wire(ix.envelope)
    assert envelope[2][0][2:] == [b"agent", b"example.test"]
    assert envelope[4][0][2:] == [b"replies", b"example.test"]


def test_bcc_is_routed_not_written() -> None:
    composed = make(
        to=["bob@example.org", "Carol@Example.org"],
        cc=["carol@example.org", "dave@example.org"],
        bcc=["hidden@example.net", "BOB@example.org"],
    )
    assert b"hidden" not in composed.raw
    assert b"Bcc" not in composed.raw
    assert parse_wire(index_message(composed.raw).envelope)[7] is None  # ENVELOPE's bcc
    # Each recipient once, in order, as first spelled; Reply-To is no recipient.
    assert composed.recipients == (
        "bob@example.org",
        "Carol@Example.org",
        "dave@example.org",
        "hidden@example.net",
    )


def test_message_id_is_made_on_the_hostname_and_unique() -> None:
    one, two = make(), make()
    assert re.fullmatch(r"<[0-9a-f]{32}@mx\.example\.test>", one.message_id)
    assert one.message_id != two.message_id
    assert index_message(one.raw).message_id == one.message_id


def test_given_message_id_and_date_are_used() -> None:
    composed = make(message_id="given@example.test")
    assert composed.message_id == "<given@example.test>"
    assert header_values(header(composed), "Message-ID") == ["<given@example.test>"]
    assert header_values(header(composed), "Date") == ["Wed, 01 May 2024 12:30:00 +0200"]


def test_date_defaults_to_now() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    sent = index_message(make(date=None).raw).sent_date
    assert sent is not None
    assert before <= sent <= datetime.datetime.now(datetime.UTC)


def test_threading_fields_round_trip() -> None:
    long_id = "<" + "x" * 120 + "@example.net>"  # longer than a folded line: still not encoded
    references = ["<root@example.net>", "middle@example.net", long_id]
    composed = make(in_reply_to=long_id, references=references, subject="Re: thread")
    ix, _ = read(composed)
    assert ix.in_reply_to == long_id
    assert ix.references == ("<root@example.net>", "<middle@example.net>", long_id)
    assert b"=?" not in header(composed)


def test_extra_headers_are_written_and_encoded() -> None:
    composed = make(headers={"X-Agent": "b\u00fcro bot", "List-Unsubscribe": "<mailto:u@x>"})
    head = header(composed)
    assert header_values(head, "X-Agent") == ["b\u00fcro bot"]
    assert header_values(head, "List-Unsubscribe") == ["<mailto:u@x>"]
    assert head.isascii()


# ---------------------------------------------------------------------------------------------
# What is refused


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"subject": "hi\r\nBcc: victim@example.org"}, "subject"),
        ({"subject": "hi\nX-Evil: 1"}, "subject"),
        ({"subject": "hi\rthere"}, "subject"),
        ({"subject": "hi\u2028there"}, "subject"),
        ({"subject": "nul\x00"}, "subject"),
        ({"sender": NamedAddress("agent@example.test", "Agent\r\nBcc: v@x")}, "sender"),
        ({"sender": "agent@example.test\r\nBcc: v@x"}, "sender"),
        ({"to": ["ok@example.org", "b@x\nBcc: v@x"]}, "to[1]"),
        ({"cc": [NamedAddress("c@x", "C\rD")]}, "cc[0]"),
        ({"bcc": ["v@x\r\n"]}, "bcc[0]"),
        ({"reply_to": ["r@x\n"]}, "reply_to[0]"),
        ({"headers": {"X-Note": "a\r\nBcc: v@x"}}, "X-Note"),
        ({"headers": {"X-Note\r\nBcc": "v@x"}}, "headers"),
        ({"in_reply_to": "<a@x>\r\nBcc: v@x"}, "in_reply_to"),
        ({"references": ["<a@x>", "<b@x>\nBcc: v@x"]}, "references[1]"),
        ({"message_id": "<a@x>\r\nBcc: v@x"}, "message_id"),
        ({"hostname": "mx.example\r\nBcc: v@x"}, "hostname"),
        (
            {"attachments": [Attachment("a.txt\r\nBcc: v@x", "text/plain", b"")]},
            "attachments[0].filename",
        ),
        (
            {"attachments": [Attachment("a.txt", "text/plain\r\nBcc: v@x", b"")]},
            "attachments[0]",
        ),
        (
            {"attachments": [Attachment("a", "image/png", b"", content_id="a@x>\r\nBcc: v@x")]},
            "attachments[0].content_id",
        ),
    ],
)
def test_line_breaks_in_header_values_are_refused(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        make(**fields)


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "CC",
        "Bcc",
        "Reply-To",
        "subject",
        "Message-ID",
        "Date",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Content-Type",
        "content-transfer-encoding",
        "Content-Disposition",
    ],
)
def test_extra_headers_may_not_override_what_compose_writes(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(name)):
        make(headers={name: "x"})


@pytest.mark.parametrize("name", ["", "X Note", "X:Note", "X-N\u00f6te"])
def test_extra_header_names_must_be_field_names(name: str) -> None:
    with pytest.raises(ValueError, match="headers"):
        make(headers={name: "x"})


@pytest.mark.parametrize(
    "address",
    [
        "",
        "plain",
        "@example.org",
        "a@",
        "a b@example.org",
        "a@b@c",
        "j\u00f6rg@example.org",
        "<a@example.org>",
        "a@example.org (comment)",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"cc\[0\]"):
        make(cc=[address])


@pytest.mark.parametrize("value", ["", "<>", "a b@x", "<a@x", "a<b@x", "\u00e9@x", "x" * 901])
def test_invalid_msg_ids_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="in_reply_to"):
        make(in_reply_to=value)


def test_a_date_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="date"):
        make(date=datetime.datetime(2024, 5, 1, 12, 0))


@pytest.mark.parametrize(
    ("attachment", "reason"),
    [
        (Attachment("a", "pdf", b""), "type/subtype"),
        (Attachment("a", "text/plain; charset=utf-8", b""), "type/subtype"),
        (Attachment("a", "multipart/mixed", b""), "multipart"),
        (Attachment("a.eml", "message/rfc822", b"Subject: caf\xc3\xa9\r\n\r\n"), "7-bit"),
    ],
)
def test_unsendable_attachments_are_refused(attachment: Attachment, reason: str) -> None:
    with pytest.raises(ValueError, match=r"attachments\[1\].*" + re.escape(reason)):
        make(attachments=[Attachment("ok.txt", "text/plain", b"ok"), attachment])


@pytest.mark.parametrize(
    ("text", "html"), [("é", None), ("Grüße aus Köln", None), (None, "<p>Grüße</p>")]
)
def test_short_non_ascii_single_part_bodies(text: str | None, html: str | None) -> None:
    composed = compose(
        sender="a@example.test", to=["b@example.test"], text=text, html=html, hostname="x.test"
    )
    parsed = email.message_from_bytes(composed.raw, policy=email.policy.default)
    assert parsed.get_content().strip() == (text or html)
