"""mailgate.mime.reply: what a reply or forward carries; each is composed and read back."""

from __future__ import annotations

import datetime

from mailgate.mime.apiview import attachments, body, summarize
from mailgate.mime.compose import Attachment, NamedAddress, compose
from mailgate.mime.imapview import index_message
from mailgate.mime.reply import (
    MAX_REFERENCES,
    Reply,
    forward,
    forward_subject,
    reply,
    reply_subject,
)
from tests.mime.helpers import crlf

INBOX = "agent@example.test"
WHEN = datetime.datetime(2026, 3, 3, 10, 0, tzinfo=datetime.UTC)

ORIGINAL = crlf(
    b"From: Alice Example <alice@example.com>\n"
    b"To: Agent <AGENT@example.test>, Bob <bob@example.org>, undisclosed-recipients:;\n"
    b"Cc: carol@example.org, BOB@example.org, agent@example.test\n"
    b"Subject: Plans for Thursday\n"
    b"Date: Tue, 3 Mar 2026 10:00:00 +0000\n"
    b"Message-ID: <m3@example.com>\n"
    b"In-Reply-To: <m2@example.com>\n"
    b"References: <m1@example.com> <m2@example.com>\n"
    b"\n"
    b"Shall we meet?\n"
)


def test_reply_goes_to_the_sender() -> None:
    assert reply(ORIGINAL, INBOX) == Reply(
        to=(NamedAddress("alice@example.com", "Alice Example"),),
        cc=(),
        subject="Re: Plans for Thursday",
        in_reply_to="<m3@example.com>",
        references=("<m1@example.com>", "<m2@example.com>", "<m3@example.com>"),
    )


def test_reply_all_adds_to_and_cc_without_the_inbox_or_duplicates() -> None:
    answer = reply(ORIGINAL, "Agent@Example.TEST", reply_all=True)
    assert answer.to == (
        NamedAddress("alice@example.com", "Alice Example"),
        NamedAddress("bob@example.org", "Bob"),
    )
    assert answer.cc == (NamedAddress("carol@example.org"),)


def test_reply_to_wins_over_from() -> None:
    raw = crlf(
        b"From: Alice <alice@example.com>\n"
        b"Reply-To: List <list@example.com>, alice@example.com\n"
        b"To: agent@example.test\n"
        b"\n"
        b"x\n"
    )
    assert reply(raw, INBOX).to == (
        NamedAddress("list@example.com", "List"),
        NamedAddress("alice@example.com"),
    )
    assert reply(raw, INBOX, reply_all=True).to == reply(raw, INBOX).to


def test_replying_to_ones_own_message_answers_its_recipients() -> None:
    raw = crlf(
        b"From: Agent <agent@example.test>\n"
        b"To: bob@example.org\n"
        b"Cc: carol@example.org\n"
        b"Subject: Re: Plans\n"
        b"\n"
        b"x\n"
    )
    assert reply(raw, INBOX).to == (NamedAddress("bob@example.org"),)
    assert reply(raw, INBOX).cc == ()
    assert reply(raw, INBOX, reply_all=True).cc == (NamedAddress("carol@example.org"),)


def test_subjects() -> None:
    assert reply_subject("Plans") == "Re: Plans"
    assert reply_subject("Re: Plans") == "Re: Plans"
    assert reply_subject("RE: Plans") == "RE: Plans"
    assert reply_subject("re : Plans") == "re : Plans"
    assert reply_subject("Re[2]: Plans") == "Re[2]: Plans"
    assert reply_subject("Fwd: Plans") == "Re: Fwd: Plans"
    assert reply_subject("Rebate offer") == "Re: Rebate offer"
    assert reply_subject(None) == "Re:"
    assert reply_subject("two\r\n lines\x00") == "Re: two lines"
    assert forward_subject("Plans") == "Fwd: Plans"
    assert forward_subject("Fwd: Plans") == "Fwd: Plans"
    assert forward_subject("FW: Plans") == "FW: Plans"
    assert forward_subject("Re: Plans") == "Fwd: Re: Plans"
    assert forward_subject("") == "Fwd:"


def test_references_fall_back_to_in_reply_to_and_stay_short() -> None:
    raw = crlf(b"From: a@example.com\nMessage-ID: <m2@x>\nIn-Reply-To: <m1@x>\n\nx\n")
    assert reply(raw, INBOX).references == ("<m1@x>", "<m2@x>")
    ids = " ".join(f"<r{i}@x>" for i in range(50))
    raw = crlf(
        b"From: a@example.com\nMessage-ID: <new@x>\nReferences: " + ids.encode() + b"\n\nx\n"
    )
    references = reply(raw, INBOX).references
    assert len(references) == MAX_REFERENCES
    assert references[0] == "<r0@x>"  # the thread's first message
    assert references[1:] == (*(f"<r{i}@x>" for i in range(32, 50)), "<new@x>")


def test_ids_compose_would_refuse_are_left_out() -> None:
    raw = crlf(
        b"From: a@example.com\n"
        b"Message-ID: <caf\xc3\xa9@x>\n"
        b"References: <good@x> <b\x01ad@x>\n"
        b"Subject: =?utf-8?q?line=0Abreak?=\n"
        b"\n"
        b"x\n"
    )
    answer = reply(raw, INBOX)
    assert answer.in_reply_to is None
    assert answer.references == ("<good@x>",)
    assert answer.subject == "Re: line break"


def test_no_message_id_and_no_sender() -> None:
    answer = reply(b"Subject: hi\r\n\r\nx\r\n", INBOX)
    assert answer == Reply(to=(), cc=(), subject="Re: hi", in_reply_to=None, references=())


def test_a_reply_composes_and_threads() -> None:
    answer = reply(ORIGINAL, INBOX, reply_all=True)
    raw = compose(
        sender=INBOX,
        hostname="example.test",
        to=answer.to,
        cc=answer.cc,
        subject=answer.subject,
        text="Yes.",
        in_reply_to=answer.in_reply_to,
        references=answer.references,
        date=WHEN,
    ).raw
    ix = index_message(raw)
    assert ix.in_reply_to == "<m3@example.com>"
    assert ix.references == ("<m1@example.com>", "<m2@example.com>", "<m3@example.com>")
    summary = summarize(raw)
    assert summary.subject == "Re: Plans for Thursday"
    assert summary.to == ("Alice Example <alice@example.com>", "Bob <bob@example.org>")
    assert summary.cc == ("carol@example.org",)


# ---------------------------------------------------------------------------------------------
# Forward

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
RICH = compose(
    sender=NamedAddress("alice@example.com", "Alice Example"),
    hostname="example.com",
    to=[NamedAddress("agent@example.test", "Agent")],
    cc=["carol@example.org"],
    subject="Quarterly <numbers>",
    text="The numbers are in.\n",
    html=(
        "<html><head><style>p { color: red }</style></head><body>"
        '<p>The numbers are in.</p><img src="cid:chart@example.com"></body></html>'
    ),
    attachments=[
        Attachment("chart.png", "image/png", PNG, content_id="chart@example.com", inline=True),
        Attachment("numbers.csv", "text/csv", b"q,n\r\n1,2\r\n"),
    ],
    date=WHEN,
).raw

BLOCK = (
    "---------- Forwarded message ---------\n"
    "From: Alice Example <alice@example.com>\n"
    "Date: Tue, 03 Mar 2026 10:00:00 +0000\n"
    "Subject: Quarterly <numbers>\n"
    "To: Agent <agent@example.test>\n"
    "Cc: carol@example.org\n"
)


def test_forward_of_a_rich_message() -> None:
    fwd = forward(RICH, text="FYI, see below.")
    assert fwd.subject == "Fwd: Quarterly <numbers>"
    assert fwd.text == "FYI, see below.\n\n" + BLOCK + "\nThe numbers are in.\n"
    assert fwd.html is not None
    assert fwd.html.startswith("FYI, see below.<br><br><div>---------- Forwarded message")
    assert "Subject: Quarterly &lt;numbers&gt;<br>" in fwd.html
    assert '<p>The numbers are in.</p><img src="cid:chart@example.com"></div>' in fwd.html
    assert "<style>" not in fwd.html  # the original's head stays behind
    assert fwd.attachments == (
        Attachment("chart.png", "image/png", PNG, content_id="chart@example.com", inline=True),
        Attachment("numbers.csv", "text/csv", b"q,n\r\n1,2\r\n"),
    )


def test_a_forward_composes_with_the_original_attachments() -> None:
    fwd = forward(RICH, html="<p>FYI</p>")
    raw = compose(
        sender=INBOX,
        hostname="example.test",
        to=["dave@example.org"],
        subject=fwd.subject,
        text=fwd.text,
        html=fwd.html,
        attachments=fwd.attachments,
        date=WHEN,
    ).raw
    assert [(a.filename, a.content_id, data) for a, data in attachments(raw)] == [
        ("chart.png", "chart@example.com", PNG),
        ("numbers.csv", None, b"q,n\r\n1,2\r\n"),
    ]
    result = body(raw)
    assert result.text is not None
    assert result.text.startswith("FYI\n\n---------- Forwarded message ---------\n")
    assert result.html is not None
    assert result.html.startswith("<p>FYI</p><br><br><div>")
    assert summarize(raw).preview.startswith("FYI ---------- Forwarded message --------- From:")


def test_forward_of_plain_text_and_of_html_only() -> None:
    plain = crlf(b"From: a@example.com\nSubject: hi\n\n1 < 2\n")
    fwd = forward(plain)
    assert (
        fwd.text
        == "---------- Forwarded message ---------\nFrom: a@example.com\nSubject: hi\n\n1 < 2\n"
    )
    assert fwd.html is None
    with_html = forward(plain, html="<b>see</b>")
    assert with_html.html is not None
    assert with_html.html.endswith("<br>1 &lt; 2<br>\n</div>")
    html_only = crlf(b"From: a@example.com\nContent-Type: text/html\n\n<p>Hello</p><p>there</p>\n")
    assert forward(html_only).text.endswith("\n\nHello\n\nthere")


def test_forward_mends_what_compose_would_refuse() -> None:
    raw = crlf(
        b"From: a@example.com\n"
        b"Content-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nsee attached\n"
        b"--b\nContent-Type: image/png\nContent-ID: <bad id>\nContent-Disposition: inline\n"
        b"Content-Transfer-Encoding: base64\n\niVBORw0K\n"
        b"--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n"
        b"Subject: caf\xc3\xa9\n\n8-bit body\n"
        b"--b--\n"
    )
    fwd = forward(raw)
    assert [(a.content_type, a.content_id, a.inline) for a in fwd.attachments] == [
        ("image/png", None, False),
        ("application/octet-stream", None, False),  # compose() attaches messages 7-bit only
    ]
    compose(
        sender=INBOX,
        hostname="example.test",
        to=["d@example.org"],
        text=fwd.text,
        attachments=fwd.attachments,
    )
