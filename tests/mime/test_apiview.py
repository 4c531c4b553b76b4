"""mailgate.mime.apiview: the summary kept at ingest, the body served on request, attachments.

Messages come from compose(), from the standard library's email package, and by hand.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os
import random
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from mailgate.mime.apiview import (
    MAX_QUOTE_SCAN_TEXT,
    PREVIEW_LENGTH,
    AttachmentInfo,
    Body,
    Summary,
    attachment,
    attachments,
    attachments_from_json,
    attachments_to_json,
    body,
    format_address,
    html_to_text,
    summarize,
    texts,
)
from mailgate.mime.compose import Attachment, NamedAddress, compose
from mailgate.mime.decoding import decode_transfer
from mailgate.mime.headers import first_fields, normalize_crlf
from mailgate.mime.imapview import extract_section, index_message
from mailgate.mime.parts import transfer_encoding
from tests.mime.helpers import crlf, fuzz

WHEN = datetime.datetime(2026, 3, 3, 10, 0, tzinfo=datetime.UTC)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + os.urandom(3000)


def composed(**fields: object) -> bytes:
    fields.setdefault("sender", NamedAddress("alice@example.com", "Alice Example"))
    fields.setdefault("hostname", "mx.example.com")
    fields.setdefault("to", ["agent@example.test"])
    fields.setdefault("date", WHEN)
    return compose(**fields).raw  # type: ignore[arg-type]


def stdlib(message: EmailMessage) -> bytes:
    return normalize_crlf(message.as_bytes(policy=SMTP))


def check_part_numbers(raw: bytes) -> None:
    """Every attachment id addresses, through the IMAP part map, the bytes attachment() gives."""
    parts = index_message(raw).parts
    for info, data in attachments(raw):
        path = tuple(int(n) for n in info.attachment_id.split("."))
        encoded = extract_section(raw, parts, path, "")
        assert encoded is not None, info.attachment_id
        mime = extract_section(raw, parts, path, "MIME") or b""
        encoding = transfer_encoding(first_fields(mime, frozenset({b"content-transfer-encoding"})))
        assert decode_transfer(encoded, encoding) == data


# ---------------------------------------------------------------------------------------------
# Plain text, by hand

PLAIN = crlf(
    b"Date: Tue, 3 Mar 2026 10:00:00 +0000\n"
    b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\n"
    b'To: agent@example.test, "Doe, Jane" <jane@example.org>\n'
    b"Cc: Team: carol@example.org, Dave <dave@example.org>;, erin@example.org\n"
    b"Bcc: hidden@example.net\n"
    b"Reply-To: replies@example.de\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus\n"
    b" Berlin\n"
    b"Message-ID: <plain-1@example.de>\n"
    b"X-Trace: one\n"
    b"x-trace: two\n"
    b"\n"
    b"Hello,\n"
    b"\n"
    b"   the   meeting moved\tto Thursday.\n"
)


def test_plain_summary() -> None:
    summary = summarize(PLAIN)
    assert summary == Summary(
        subject="Grüße aus Berlin",
        from_="Jörg Müller <joerg@example.de>",
        to=("agent@example.test", '"Doe, Jane" <jane@example.org>'),
        cc=("carol@example.org", "Dave <dave@example.org>", "erin@example.org"),
        bcc=("hidden@example.net",),
        reply_to=("replies@example.de",),
        preview="Hello, the meeting moved to Thursday.",
        attachments=(),
    )


def test_plain_body() -> None:
    result = body(PLAIN)
    text = "Hello,\n\n   the   meeting moved\tto Thursday.\n"
    assert result.text == text
    assert result.html is None
    assert result.extracted_text == text  # nothing quoted: the text itself
    assert result.extracted_html is None
    assert result.headers["Subject"] == "Grüße aus Berlin"
    assert result.headers["From"] == "Jörg Müller <joerg@example.de>"
    assert result.headers["Message-ID"] == "<plain-1@example.de>"
    # A field that occurs twice keeps both values, named as first written.
    assert result.headers["X-Trace"] == "one\ntwo"
    assert "x-trace" not in result.headers
    assert list(result.headers)[:2] == ["Date", "From"]


def test_message_without_anything() -> None:
    for raw in (b"", b"\r\n", b"Subject: only a header\r\n"):
        summary = summarize(raw)
        assert summary.preview == ""
        assert summary.attachments == ()
        assert summary.from_ is None
        assert summary.to == ()
        result = body(raw)
        assert result.html is None
        assert result.text in ("", None)
    assert summarize(b"Subject: only a header\r\n").subject == "only a header"
    assert summarize(b"\r\n").subject is None


def test_addresses_are_display_strings() -> None:
    assert format_address("", "a@example.com") == "a@example.com"
    assert format_address("Alice", "a@example.com") == "Alice <a@example.com>"
    assert format_address("Doe, Jane", "j@x.org") == '"Doe, Jane" <j@x.org>'
    assert format_address('Say "hi"', "h@x.org") == '"Say \\"hi\\"" <h@x.org>'
    assert format_address("Two\r\n  lines", "t@x.org") == "Two lines <t@x.org>"
    assert format_address("Zoë", "z@x.org") == "Zoë <z@x.org>"


def test_address_forms_from_the_wire() -> None:
    raw = crlf(
        b"From: bob@example.org (Bob Roberts)\n"
        b"To: undisclosed-recipients:;\n"
        b'Cc: "=?utf-8?b?5bGx55Sw?=" <yamada@example.jp>, <bare@example.org>, "Empty" <>\n'
        b"\n"
        b"x\n"
    )
    summary = summarize(raw)
    assert summary.from_ == "Bob Roberts <bob@example.org>"
    assert summary.to == ()
    assert summary.cc == ("山田 <yamada@example.jp>", "bare@example.org")


def test_subject_never_carries_nul() -> None:
    raw = b"Subject: =?utf-8?q?a=00b?=\r\nFrom: =?utf-8?q?N=00?= <n@x.org>\r\n\r\n"
    summary = summarize(raw)
    assert summary.subject == "a\ufffdb"
    assert summary.from_ is not None
    assert "\x00" not in summary.from_
    assert "\x00" not in "".join(body(raw).headers.values())


# ---------------------------------------------------------------------------------------------
# Structures


def test_alternative_from_compose() -> None:
    raw = composed(subject="Plans", text="Hi,\nsee you.\n", html="<p>Hi,</p><p>see you.</p>")
    summary = summarize(raw)
    assert summary.subject == "Plans"
    assert summary.from_ == "Alice Example <alice@example.com>"
    assert summary.preview == "Hi, see you."
    assert summary.attachments == ()
    result = body(raw)
    assert result.text == "Hi,\nsee you.\n"
    assert result.html == "<p>Hi,</p><p>see you.</p>\n"
    assert result.extracted_text == result.text
    assert result.extracted_html == result.html


def test_alternative_from_the_standard_library() -> None:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = "agent@example.test"
    message["Subject"] = "Grüße"
    message.set_content("Grüße aus Köln\n", charset="iso-8859-1", cte="quoted-printable")
    message.add_alternative("<p>Grüße aus <b>Köln</b></p>\n", subtype="html", cte="base64")
    raw = stdlib(message)
    assert b"=DF" in raw  # the text really is quoted-printable Latin-1
    assert texts(raw) == ("Grüße aus Köln\n", "<p>Grüße aus <b>Köln</b></p>\n")
    assert summarize(raw).subject == "Grüße"
    assert summarize(raw).preview == "Grüße aus Köln"


def test_html_only_preview_is_the_text_a_reader_sees() -> None:
    html = (
        "<!DOCTYPE html><html><head><title>Newsletter</title>"
        "<style>p { color: red }</style></head><body>"
        '<div style="display:none">Preheader&nbsp;&zwnj;&nbsp;&zwnj;</div>'
        "<h1>Big&nbsp;news</h1><p>Caf&eacute; &amp; more <!-- not this --></p>"
        "<script>var x = '<p>nor this</p>';</script></body></html>"
    )
    raw = composed(html=html)
    summary = summarize(raw)
    assert summary.preview == "Preheader Big news Café & more"
    result = body(raw)
    assert result.text is None
    assert result.html == html + "\n"


def test_preview_is_cut_and_collapsed() -> None:
    raw = composed(text="\n\n" + "word " * 100 + "\n")
    preview = summarize(raw).preview
    assert len(preview) == PREVIEW_LENGTH - 1  # cut at 200, the trailing space dropped
    assert preview == ("word " * 40).strip()


def test_preview_reads_past_a_long_blank_start() -> None:
    raw = composed(text=" \n" * 20_000 + "At last.\n")
    assert summarize(raw).preview == "At last."


def test_preview_of_a_long_base64_text_does_not_keep_a_split_character() -> None:
    encoded = base64.encodebytes(("é" * 50_000).encode()).replace(b"\n", b"\r\n")
    raw = (
        b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
    )
    assert summarize(raw).preview == "é" * PREVIEW_LENGTH


MIXED_ATTACHMENTS = composed(
    subject="Report",
    text="See attached.\n",
    html='<p>See attached.</p><img src="cid:logo@example.com">',
    attachments=[
        Attachment("logo.png", "image/png", PNG, content_id="<logo@example.com>", inline=True),
        Attachment("Quartalsbericht Q1, März.pdf", "application/pdf", PDF),
        Attachment("notes.txt", "text/plain", b"a text file\r\n"),
        Attachment("ünïcødé.csv", "text/csv", "a,b\r\nä,ö\r\n".encode()),
    ],
)


def test_mixed_related_attachments() -> None:
    summary = summarize(MIXED_ATTACHMENTS)
    assert summary.attachments == (
        AttachmentInfo("1.2.2", "logo.png", len(PNG), "image/png", "inline", "logo@example.com"),
        AttachmentInfo(
            "2", "Quartalsbericht Q1, März.pdf", len(PDF), "application/pdf", "attachment", None
        ),
        AttachmentInfo("3", "notes.txt", 13, "text/plain", "attachment", None),
        AttachmentInfo(
            "4", "ünïcødé.csv", len("a,b\r\nä,ö\r\n".encode()), "text/csv", "attachment", None
        ),
    )
    assert summary.preview == "See attached."
    result = body(MIXED_ATTACHMENTS)
    assert result.text == "See attached.\n"  # the attached notes.txt is no body
    assert result.html is not None
    assert result.html.startswith("<p>See attached.</p>")


def test_attachment_bytes() -> None:
    assert attachment(MIXED_ATTACHMENTS, "1.2.2") == (
        summarize(MIXED_ATTACHMENTS).attachments[0],
        PNG,
    )
    found = attachment(MIXED_ATTACHMENTS, "2")
    assert found is not None
    assert found[1] == PDF
    assert attachment(MIXED_ATTACHMENTS, "4") is not None
    for missing in ("1", "1.1", "1.2.1", "5", "0", "", "2.1", "x", "1.2.2.1"):
        assert attachment(MIXED_ATTACHMENTS, missing) is None, missing
    check_part_numbers(MIXED_ATTACHMENTS)


def test_sizes_agree_with_the_bytes() -> None:
    for info, data in attachments(MIXED_ATTACHMENTS):
        assert info.size == len(data)
    assert [info for info, _ in attachments(MIXED_ATTACHMENTS)] == list(
        summarize(MIXED_ATTACHMENTS).attachments
    )


def test_attachments_json_round_trip() -> None:
    items = summarize(MIXED_ATTACHMENTS).attachments
    text = attachments_to_json(items)
    assert attachments_from_json(text) == items
    assert '"attachment_id":"1.2.2"' in text  # the SDK's field names
    assert attachments_from_json(attachments_to_json(())) == ()


# A message/rfc822 part forwarded as an attachment: one attachment, nothing inside it counts.
NESTED = crlf(
    b"From: carol@example.org\n"
    b"To: agent@example.test\n"
    b"Subject: Fwd: old thread\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="outer"\n'
    b"\n"
    b"--outer\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"Forwarding this.\n"
    b"--outer\n"
    b"Content-Type: message/rfc822\n"
    b"Content-Disposition: inline\n"
    b"\n"
    b"From: dave@example.org\n"
    b"Subject: old thread\n"
    b'Content-Type: multipart/mixed; boundary="inner"\n'
    b"\n"
    b"--inner\n"
    b"Content-Type: text/html\n"
    b"\n"
    b"<p>inner html</p>\n"
    b"--inner\n"
    b'Content-Type: image/gif; name="inner.gif"\n'
    b"Content-Transfer-Encoding: base64\n"
    b"\n"
    b"R0lGODlhAQABAAAAACw=\n"
    b"--inner--\n"
    b"--outer--\n"
)


def test_nested_message_is_one_attachment() -> None:
    summary = summarize(NESTED)
    inner = NESTED[NESTED.index(b"From: dave") : NESTED.index(b"\r\n--outer--")]
    assert summary.attachments == (
        AttachmentInfo("2", None, len(inner), "message/rfc822", "inline", None),
    )
    assert texts(NESTED) == ("Forwarding this.", None)
    found = attachment(NESTED, "2")
    assert found is not None
    assert found[1] == inner
    assert attachment(NESTED, "2.2") is None
    check_part_numbers(NESTED)


def test_message_that_is_one_attachment() -> None:
    raw = crlf(
        b"Content-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="whole.pdf"\n'
        b"Content-Transfer-Encoding: base64\n"
        b"\n"
        b"JVBERi0xLjQK\n"
    )
    summary = summarize(raw)
    assert summary.attachments == (
        AttachmentInfo("1", "whole.pdf", 9, "application/pdf", "attachment", None),
    )
    assert summary.preview == ""
    assert attachment(raw, "1") == (summary.attachments[0], b"%PDF-1.4\n")
    check_part_numbers(raw)


def test_which_parts_are_attachments() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=b\n"
        b"\n"
        b"--b\n"
        b"Content-Type: multipart/alternative; boundary=a\n"
        b"\n"
        b"--a\n"
        b"Content-Type: text/plain\n\nbody\n"
        b"--a\n"
        b"Content-Type: text/html\n\n<p>body</p>\n"
        b"--a\n"
        b"Content-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\n"
        b"--a--\n"
        b"--b\n"
        b"Content-Type: text/plain\n\nsecond text, not a file\n"
        b"--b\n"
        b"Content-Type: text/plain\nContent-ID: <snippet@x>\n\nreferenced text\n"
        b"--b\n"
        b"Content-Type: text/html\nContent-Disposition: attachment\n\n<p>page</p>\n"
        b"--b\n"
        b"Content-Type: text/plain\nContent-Disposition: inline; filename=inline.txt\n\nx\n"
        b"--b\n"
        b"Content-Type: application/octet-stream\n\nno name\n"
        b"--b\n"
        b"Content-Type: image/jpeg\nContent-Disposition: form-data\n\njpeg\n"
        b"--b--\n"
    )
    found = [
        (a.attachment_id, a.content_type, a.content_disposition) for a in summarize(raw).attachments
    ]
    assert found == [
        ("1.3", "text/calendar", None),
        ("3", "text/plain", None),
        ("4", "text/html", "attachment"),
        ("5", "text/plain", "inline"),
        ("6", "application/octet-stream", None),
        ("7", "image/jpeg", "attachment"),  # RFC 2183 §2.8: unknown types are attachments
    ]
    assert texts(raw) == ("body", "<p>body</p>")
    assert summarize(raw).attachments[1].content_id == "snippet@x"
    check_part_numbers(raw)


# ---------------------------------------------------------------------------------------------
# Encodings and charsets


@pytest.mark.parametrize(
    ("charset", "cte"),
    [
        ("utf-8", "base64"),
        ("utf-8", "quoted-printable"),
        ("iso-8859-1", "quoted-printable"),
        ("windows-1252", "base64"),
        ("koi8-r", "base64"),
        ("shift_jis", "base64"),
        ("iso-2022-jp", "7bit"),
        ("utf-8", "8bit"),
    ],
)
def test_text_in_charsets_and_transfer_encodings(charset: str, cte: str) -> None:
    samples = {
        "koi8-r": "Привет, мир",
        "shift_jis": "こんにちは世界",
        "iso-2022-jp": "こんにちは世界",
        "iso-8859-1": "Grüße, café",
        "windows-1252": "Grüße “quoted” €5",
    }
    text = samples.get(charset, "Grüße, 世界 €")
    data = text.encode(charset)
    if cte == "base64":
        encoded = base64.encodebytes(data)
    elif cte == "quoted-printable":
        encoded = binascii.b2a_qp(data)
    else:
        encoded = data
    raw = crlf(
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\n"
        b"Content-Transfer-Encoding: " + cte.encode() + b"\n\n" + encoded + b"\n"
    )
    assert body(raw).text is not None
    assert (body(raw).text or "").strip() == text
    assert summarize(raw).preview == text


def test_unknown_charset_and_eight_bit_junk() -> None:
    raw = b"Content-Type: text/plain; charset=x-no-such\r\n\r\nbad \xff\xfe bytes caf\xc3\xa9\r\n"
    assert body(raw).text == "bad \ufffd\ufffd bytes café\n"
    junk = b"From: \xff\xfe <a@b.c>\r\nSubject: caf\xe9\r\nX-\xff: \x80\r\n\r\nbody\r\n"
    summary = summarize(junk)
    assert summary.subject == "caf\ufffd"
    assert body(junk).headers["X-\ufffd"] == "\ufffd"


def test_filenames_rfc2231_and_rfc2047() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nsee files\n"
        b"--b\nContent-Type: application/pdf\n"
        b"Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf\n\nx\n"
        b"--b\nContent-Type: application/pdf\n"
        b"Content-Disposition: attachment;\n filename*0*=iso-8859-1''Gr%FC%DFe;\n"
        b' filename*1=" und mehr.pdf"\n\nx\n'
        b'--b\nContent-Type: application/pdf; name="=?utf-8?b?w5xiZXJzaWNodC5wZGY=?="\n\nx\n'
        b"--b\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="C:\\\\Users\\\\x\\\\secret.pdf"\n\nx\n'
        b"--b\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="../../etc/passwd"\n\nx\n'
        b"--b\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename=".."\n\nx\n'
        b"--b\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="a\\"b\x07.pdf"\n\nx\n'
        b"--b--\n"
    )
    names = [a.filename for a in summarize(raw).attachments]
    assert names == [
        "€ rates.pdf",
        "Grüße und mehr.pdf",
        "Übersicht.pdf",
        "secret.pdf",  # RFC 2183 §2.3: no directories
        "passwd",
        None,
        'a"b.pdf',
    ]


def test_filenames_from_the_standard_library() -> None:
    message = EmailMessage()
    message["Subject"] = "files"
    message.set_content("see files")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="日本語の資料.pdf")
    message.add_attachment(b"x" * 100, maintype="application", subtype="zip", filename="a" * 120)
    raw = stdlib(message)
    infos = summarize(raw).attachments
    assert [(a.filename, a.size) for a in infos] == [
        ("日本語の資料.pdf", len(PDF)),
        ("a" * 120, 100),
    ]
    check_part_numbers(raw)


def test_quoted_printable_attachment_size_is_decoded() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nhi\n"
        b"--b\nContent-Type: text/csv; name=a.csv\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"a=3Db,=C3=A4=\nsoft break\n"
        b"--b--\n"
    )
    info = summarize(raw).attachments[0]
    assert attachment(raw, info.attachment_id) == (info, b"a=b,\xc3\xa4soft break")
    assert info.size == 16


# ---------------------------------------------------------------------------------------------
# Broken MIME never raises


def test_bad_base64_sizes_agree_with_the_bytes() -> None:
    for encoded in (b"QUJD*QUJD", b"QQ==QUJD", b"QUJDQ", b"!!!!", b"QUJD\nQU", b"Q", b"=", b""):
        raw = (
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: image/png; name=x.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + encoded
            + b"\r\n--b--\r\n"
        )
        info = summarize(raw).attachments[0]
        found = attachment(raw, "1")
        assert found is not None
        assert info.size == len(found[1]), encoded


def test_base64_size_is_counted_as_decoding_counts_it() -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = rng.randbytes(rng.randint(0, 200))
        encoded = base64.b64encode(data)
        if rng.random() < 0.5:
            encoded = encoded.rstrip(b"=")  # senders that drop the padding
        width = rng.choice([4, 60, 76, 1000])
        body_bytes = b"\r\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
        body_bytes += rng.choice([b"", b"\r\n", b" \t", b"\r\n\r\n"])
        raw = (
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + body_bytes
        )
        info = summarize(raw).attachments[0]
        assert info.size == len(data)
        assert attachment(raw, "1") == (info, data)


def test_missing_boundaries() -> None:
    no_boundary = b"Content-Type: multipart/mixed\r\n\r\nsome text\r\n"
    assert texts(no_boundary) == ("some text\n", None)  # read as text/plain, as imapview does
    unclosed = crlf(
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhello\n"
        b"--b\nContent-Type: image/png; name=a.png\nContent-Transfer-Encoding: base64\n\niVBORw0K"
    )
    assert texts(unclosed) == ("hello", None)
    assert [a.filename for a in summarize(unclosed).attachments] == ["a.png"]
    never_found = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--b\r\n\r\nx\r\n"
    assert summarize(never_found).attachments == ()


def check_everything(data: bytes) -> None:
    summarize(data)  # callers normalize, but never raise anyway
    body(data)
    raw = normalize_crlf(data)
    summary = summarize(raw)
    result = body(raw)
    assert isinstance(result, Body)
    assert len(summary.preview) <= PREVIEW_LENGTH
    strings = [summary.subject or "", summary.from_ or "", summary.preview]
    strings += [*summary.to, *summary.cc, *summary.bcc, *summary.reply_to]
    for info in summary.attachments:
        strings += [info.filename or "", info.content_id or ""]
    assert "\x00" not in "".join(strings)  # all of it goes into text columns
    assert attachments_from_json(attachments_to_json(summary.attachments)) == summary.attachments
    assert [info for info, _ in attachments(raw)] == list(summary.attachments)
    for info in summary.attachments:
        assert attachment(raw, info.attachment_id) is not None
    check_part_numbers(raw)


def test_fuzz_never_raises_and_sizes_agree() -> None:
    seeds = [PLAIN, MIXED_ATTACHMENTS[:3000], NESTED, composed(text=GMAIL_TEXT, html=GMAIL_HTML)]
    fuzz(check_everything, seeds, seed=20260303)


# ---------------------------------------------------------------------------------------------
# The reply without its quoted history

GMAIL_TEXT = (
    "Sounds good, see you Thursday.\n"
    "\n"
    "On Tue, Mar 3, 2026 at 10:00 AM Alice Example <alice@example.com> wrote:\n"
    "> Shall we meet on Thursday?\n"
    ">\n"
    "> Alice\n"
)
GMAIL_HTML = (
    '<div dir="ltr">Sounds good, see you Thursday.</div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, Mar 3, 2026 at 10:00 AM'
    " Alice Example &lt;alice@example.com&gt; wrote:<br></div>"
    '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">'
    "<div>Shall we meet on Thursday?</div><div>Alice</div></blockquote></div>"
)
OUTLOOK_TEXT = (
    "Done, the report is attached.\r\n"
    "\r\n"
    "-----Original Message-----\r\n"
    "From: Bob Boss <bob@example.com>\r\n"
    "Sent: Monday, March 2, 2026 9:00 AM\r\n"
    "To: Agent <agent@example.test>\r\n"
    "Subject: Report\r\n"
    "\r\n"
    "Please send the report.\r\n"
)
APPLE_HTML = (
    "<html><head></head><body>Yes, Thursday works.<br><br>"
    '<div><blockquote type="cite"><div>On 3 Mar 2026, at 10:00, Alice Example'
    " &lt;alice@example.com&gt; wrote:</div><br><div>Shall we meet on Thursday?</div>"
    "</blockquote></div></body></html>"
)


def test_gmail_reply() -> None:
    result = body(composed(text=GMAIL_TEXT, html=GMAIL_HTML))
    assert result.text == GMAIL_TEXT
    assert result.extracted_text == "Sounds good, see you Thursday."
    assert result.extracted_html is not None
    assert "Sounds good" in result.extracted_html
    assert "Shall we meet" not in result.extracted_html
    assert "wrote:" not in result.extracted_html
    assert html_to_text(result.extracted_html) == "Sounds good, see you Thursday."


def test_outlook_reply() -> None:
    raw = crlf(b"Content-Type: text/plain; charset=utf-8\n\n" + OUTLOOK_TEXT.encode())
    result = body(raw)
    assert result.text == OUTLOOK_TEXT.replace("\r\n", "\n")
    assert result.extracted_text == "Done, the report is attached."


def test_apple_mail_reply_with_blockquote() -> None:
    result = body(composed(html=APPLE_HTML))
    assert result.extracted_html is not None
    assert html_to_text(result.extracted_html) == "Yes, Thursday works."


def test_nothing_quoted_leaves_the_bodies_as_they_are() -> None:
    html = "<html><body><p>Just <i>news</i>.</p><blockquote>A quotation we mean.</blockquote>"
    result = body(composed(text="Just news.\n> not a reply, a markdown quote\n", html=html))
    assert result.extracted_text == result.text
    assert result.extracted_html == result.html


def test_interleaved_reply_is_left_whole() -> None:
    text = "On Tue, Mar 3, 2026 at 10:00 AM Alice <a@example.com> wrote:\n> Thursday?\nYes.\n"
    result = body(composed(text=text))
    assert result.extracted_text == text


def test_long_text_is_not_cut_and_quotes_far_down_are_not_looked_for() -> None:
    long = "".join(f"line {i} of a long message\n" for i in range(5000))
    result = body(composed(text=long))
    assert result.extracted_text == long  # quotequail alone would quote past line 1000
    late = long + GMAIL_TEXT
    assert len(long) > MAX_QUOTE_SCAN_TEXT
    assert body(composed(text=late)).extracted_text == late
    early = "Short reply.\n\n" + GMAIL_TEXT[GMAIL_TEXT.index("On Tue") :] + long
    assert body(composed(text=early)).extracted_text == "Short reply."


def test_hostile_html_never_raises() -> None:
    nested = b"<div>" * 5000 + b"On Tue, Mar 3 wrote:" + b"</div>" * 5000
    for html in [nested, b'<b"x>a</b"x>', b"<addr@domain>", b"\x00\x01<p>\xed\xa0\x80</p>", b"<"]:
        raw = b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html
        assert body(raw).extracted_html is not None


def test_html_to_text() -> None:
    html = (
        "<html><head><meta charset=utf-8><style>p{}</style></head><body>"
        "<div>one</div><div><br></div><div>two</div><p>three &lt;3</p>"
        "<table><tr><td>a</td><td>b</td></tr></table>four<br>five"
    )
    assert html_to_text(html) == "one\n\ntwo\n\nthree <3\n\na b\n\nfour\nfive"
    assert html_to_text("<head><title>t</title><body>no end of head") == "no end of head"
    assert html_to_text("<style>never closed") == ""
    assert html_to_text("a < b and c > d") == "a < b and c > d"


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_quoted_printable_is_decoded_as_rfc_2045_says(newline: bytes) -> None:
    """Trailing white space is transport padding and "=" before it is still a soft break
    (binascii.a2b_qp keeps the one and misses the other); line breaks stay as they come."""
    encoded = newline.join([b"caf=C3=A9 au lait   ", b"one line= ", b"continued=", b"", b"end"])
    assert decode_transfer(encoded, b"quoted-printable") == newline.join(
        ["café au lait".encode(), b"one linecontinued", b"end"]
    )
