"""Unit tests for mailgate.delivery.dsn: the bounce as RFC 3464 / RFC 6522 describe it.

Bounces are read back with the stdlib `email` parser (as a mail client would) and with our
own message.index_message (as IMAP FETCH will show them).
"""

from __future__ import annotations

import datetime
import email
import email.message
import email.policy
import email.utils
import random
import re

import pytest

from mailgate.delivery.dsn import MAX_ORIGINAL_HEADER, SUBJECT, Failure, bounce
from mailgate.mime.imapview import index_message

HOST = "mail.example.test"
SENDER = "alice@example.test"
ARRIVAL = datetime.datetime(2026, 3, 1, 8, 0, 0, tzinfo=datetime.UTC)
LAST = datetime.datetime(2026, 3, 6, 8, 0, 0, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 3, 6, 8, 0, 5, tzinfo=datetime.UTC)

ORIGINAL = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.org, carol@example.net\r\n"
    b"Subject: Quarterly numbers\r\n"
    b"Date: Sun, 01 Mar 2026 08:00:00 +0000\r\n"
    b"Message-ID: <q1@example.test>\r\n"
    b"\r\n"
    b"The secret body.\r\n"
)
UNKNOWN_USER = Failure(
    recipient="bob@example.org",
    status="5.1.1",
    diagnostic="550 5.1.1 No such user",
    remote_mta="mx.example.org",
)
GAVE_UP = Failure(
    recipient="carol@example.net",
    status="4.4.1",
    diagnostic="connection refused by mx.example.net after 5 days",
    remote_mta=None,
)


def make(
    original: bytes = ORIGINAL, failures: tuple[Failure, ...] = (UNKNOWN_USER, GAVE_UP)
) -> bytes:
    return bounce(
        hostname=HOST,
        sender=SENDER,
        original=original,
        failures=failures,
        arrival=ARRIVAL,
        last_attempt=LAST,
        now=NOW,
    )


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def parts(raw: bytes) -> list[email.message.EmailMessage]:
    message = parse(raw)
    assert message.get_content_type() == "multipart/report"
    found = list(message.iter_parts())
    assert [p.get_content_type() for p in found] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    return found  # type: ignore[return-value]


def status_blocks(raw: bytes) -> list[dict[str, str]]:
    """The delivery-status fields, one dict per block (the per-message block first)."""
    blocks = parts(raw)[1].get_payload()
    assert isinstance(blocks, list)
    return [{k: str(v) for k, v in block.items()} for block in blocks]


def returned_header(raw: bytes) -> bytes:
    part = parts(raw)[2]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def assert_well_formed(raw: bytes) -> None:
    """CRLF line ends only, no line over 998 octets, no NUL, no parser defect anywhere."""
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.count(b"\r") == raw.count(b"\r\n")
    assert b"\x00" not in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parse(raw)
    for entity in message.walk():
        assert not entity.defects, (entity.get_content_type(), entity.defects)


# ---------------------------------------------------------------------------------------------
# The outer message


def test_outer_header_fields() -> None:
    message = parse(make())
    assert message["From"] == f"Mail Delivery System <MAILER-DAEMON@{HOST}>"
    assert message["To"] == SENDER
    assert message["Subject"] == SUBJECT == "Undelivered Mail Returned to Sender"
    assert email.utils.parsedate_to_datetime(message["Date"]) == NOW
    assert re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.test>", message["Message-ID"])
    assert message["Auto-Submitted"] == "auto-replied"  # RFC 3834 §5
    assert message["MIME-Version"] == "1.0"
    assert message.get_param("report-type") == "delivery-status"
    assert message.get_boundary()
    # It threads with the message it reports on.
    assert message["In-Reply-To"] == message["References"] == "<q1@example.test>"


def test_each_bounce_has_its_own_message_id_and_boundary() -> None:
    a, b = parse(make()), parse(make())
    assert a["Message-ID"] != b["Message-ID"]
    assert a.get_boundary() != b.get_boundary()


def test_the_result_is_well_formed() -> None:
    assert_well_formed(make())


def test_date_defaults_to_now_and_naive_datetimes_are_utc() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    raw = bounce(
        hostname=HOST,
        sender=SENDER,
        original=ORIGINAL,
        failures=[UNKNOWN_USER],
        arrival=ARRIVAL.replace(tzinfo=None),
        last_attempt=LAST.replace(tzinfo=None),
    )
    assert email.utils.parsedate_to_datetime(parse(raw)["Date"]) >= before
    per_message, recipient = status_blocks(raw)
    assert email.utils.parsedate_to_datetime(per_message["Arrival-Date"]) == ARRIVAL
    assert email.utils.parsedate_to_datetime(recipient["Last-Attempt-Date"]) == LAST


def test_no_bounce_for_a_null_reverse_path_or_for_nothing() -> None:
    with pytest.raises(ValueError, match="null reverse-path"):
        bounce(
            hostname=HOST,
            sender="",
            original=ORIGINAL,
            failures=[UNKNOWN_USER],
            arrival=ARRIVAL,
            last_attempt=LAST,
        )
    with pytest.raises(ValueError, match="at least one"):
        make(failures=())


# ---------------------------------------------------------------------------------------------
# Part 1: text for people


def test_the_explanation_names_each_recipient_and_reason() -> None:
    text = parts(make())[0]
    assert text.get_content_charset() == "utf-8"
    content = text.get_content()
    assert HOST in content
    assert '"Quarterly numbers"' in content
    assert "<bob@example.org>" in content
    assert "mx.example.org said: 550 5.1.1 No such user" in content
    assert "<carol@example.net>" in content
    assert "connection refused by mx.example.net after 5 days" in content
    assert "The secret body" not in content


def test_the_explanation_carries_non_ascii_text() -> None:
    original = b"From: a@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nhi\r\n"
    failure = Failure("jörg@example.org", "5.1.1", "550 5.1.1 Unbekannter Empfänger", "mx")
    raw = make(original, (failure,))
    content = parts(raw)[0].get_content()
    assert '"Grüße"' in content
    assert "<jörg@example.org>" in content
    assert "Unbekannter Empfänger" in content
    assert_well_formed(raw)


# ---------------------------------------------------------------------------------------------
# Part 2: message/delivery-status (RFC 3464 §2.2, §2.3)


def test_per_message_and_per_recipient_fields() -> None:
    per_message, bob, carol = status_blocks(make())
    assert per_message == {
        "Reporting-MTA": f"dns; {HOST}",
        "Arrival-Date": email.utils.format_datetime(ARRIVAL),
    }
    assert bob == {
        "Final-Recipient": "rfc822; bob@example.org",
        "Action": "failed",
        "Status": "5.1.1",
        "Remote-MTA": "dns; mx.example.org",
        "Diagnostic-Code": "smtp; 550 5.1.1 No such user",
        "Last-Attempt-Date": email.utils.format_datetime(LAST),
    }
    # No Remote-MTA without a remote; our own words are not an SMTP reply.
    assert carol == {
        "Final-Recipient": "rfc822; carol@example.net",
        "Action": "failed",
        "Status": "4.4.1",
        "Diagnostic-Code": "X-mailgate; connection refused by mx.example.net after 5 days",
        "Last-Attempt-Date": email.utils.format_datetime(LAST),
    }


def test_delivery_status_syntax_exactly() -> None:
    raw = make(failures=(UNKNOWN_USER,))
    body = raw.split(b"Content-Type: message/delivery-status\r\n", 1)[1]
    body = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--=_mailgate_", 1)[0]
    assert body == (
        b"Reporting-MTA: dns; mail.example.test\r\n"
        b"Arrival-Date: Sun, 01 Mar 2026 08:00:00 +0000\r\n"
        b"\r\n"
        b"Final-Recipient: rfc822; bob@example.org\r\n"
        b"Action: failed\r\n"
        b"Status: 5.1.1\r\n"
        b"Remote-MTA: dns; mx.example.org\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n"
        b"Last-Attempt-Date: Fri, 06 Mar 2026 08:00:00 +0000\r\n"
    )


def test_multi_line_reply_becomes_one_field() -> None:
    failure = Failure(
        "bob@example.org",
        "5.1.1",
        "550-5.1.1 The account does not exist.\r\n550 5.1.1 Check the address.",
        "mx.example.org",
    )
    _, bob = status_blocks(make(failures=(failure,)))
    assert bob["Diagnostic-Code"] == (
        "smtp; 550-5.1.1 The account does not exist. 550 5.1.1 Check the address."
    )


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("", "550 5.7.1 Blocked", "5.7.1"),  # taken from the reply
        ("5.1", "451-4.3.0 Busy", "4.3.0"),
        ("2.0.0", "250 OK", "5.0.0"),  # a success code cannot describe a failure
        ("bogus", "452 Mailbox full", "4.0.0"),  # RFC 3463 §3.1: class.0.0
        ("x", "no route to host", "5.0.0"),
        (" 4.4.7 ", "expired", "4.4.7"),
    ],
)
def test_malformed_status_falls_back(status: str, diagnostic: str, expected: str) -> None:
    _, block = status_blocks(make(failures=(Failure("b@example.org", status, diagnostic, None),)))
    assert block["Status"] == expected


def test_non_ascii_recipient_is_a_utf8_xtext_address() -> None:
    # RFC 6533 §3: "+", "=" and "\" are escaped too.
    failure = Failure("jörg+x=y@example.org", "5.1.1", "550 5.1.1 No", "mx.example.org")
    raw = make(failures=(failure,))
    _, block = status_blocks(raw)
    assert block["Final-Recipient"] == r"utf-8; j\x{F6}rg\x{2B}x\x{3D}y@example.org"
    status_part = raw.split(b"message/delivery-status", 1)[1].split(b"rfc822-headers", 1)[0]
    assert status_part.isascii()


def test_an_internationalized_original_gets_an_internationalized_report() -> None:
    """RFC 6533: message/global-delivery-status with the UTF-8 address as it is, and the
    original header, raw UTF-8, as message/global-headers; both 8bit."""
    original = "From: Jörg <alice@example.test>\r\nSubject: Grüße\r\n\r\nbody\r\n".encode()
    failure = Failure("δοκιμή@xn--r8jz45g.jp", "5.6.7", "no SMTPUTF8 there", "mx.example.jp")
    raw = bounce(
        hostname=HOST,
        sender=SENDER,
        original=original,
        failures=(failure,),
        arrival=ARRIVAL,
        last_attempt=LAST,
        smtputf8=True,
    )
    assert_well_formed(raw)
    message = parse(raw)
    assert message.get_param("report-type") == "delivery-status"
    found = list(message.iter_parts())
    assert [p.get_content_type() for p in found] == [
        "text/plain",
        "message/global-delivery-status",
        "message/global-headers",
    ]
    assert [p["Content-Transfer-Encoding"] for p in found[1:]] == ["8bit", "8bit"]
    assert "Final-Recipient: utf-8; δοκιμή@xn--r8jz45g.jp\r\n".encode() in raw
    assert b"Status: 5.6.7\r\n" in raw
    assert original.split(b"\r\n\r\n")[0] + b"\r\n" in raw


# ---------------------------------------------------------------------------------------------
# Part 3: text/rfc822-headers (RFC 6522 §4)


def test_returned_header_is_the_original_header_only() -> None:
    raw = make()
    assert returned_header(raw) == ORIGINAL.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert b"The secret body" not in raw


def test_original_without_a_separator_is_all_header() -> None:
    original = b"From: a@example.test\r\nSubject: cut short"
    assert returned_header(make(original)) == b"From: a@example.test\r\nSubject: cut short\r\n"


def test_original_without_a_header_returns_none_of_its_body() -> None:
    original = b"just a body line\r\nand the secret\r\n"
    raw = make(original)
    assert returned_header(raw).strip() == b""
    assert b"secret" not in raw
    assert_well_formed(raw)


def test_header_ends_at_the_first_line_that_is_no_field() -> None:
    original = b"Subject: hi\r\n  folded on\r\nthe secret body without a blank line\r\nX: y\r\n"
    raw = make(original)
    assert returned_header(raw) == b"Subject: hi\r\n  folded on\r\n"
    assert b"secret" not in raw


def test_bare_lf_original_and_8bit_junk() -> None:
    original = b"From: a@example.test\nSubject: caf\xe9 \xff\xfe\x00junk\n\nbody\xff\n"
    raw = make(original)
    assert_well_formed(raw)
    assert returned_header(raw) == b"From: a@example.test\r\nSubject: caf\xe9 \xff\xfejunk\r\n"
    assert b"Content-Transfer-Encoding: 8bit" in raw
    assert b"body\xff" not in raw


def test_very_long_header_line_is_quoted_printable_and_round_trips() -> None:
    long_line = b"X-Long: " + b"a" * 5000
    original = b"From: a@example.test\r\n" + long_line + b"\r\nSubject: s\r\n\r\nbody\r\n"
    raw = make(original)
    assert_well_formed(raw)
    assert parts(raw)[2]["Content-Transfer-Encoding"] == "quoted-printable"
    assert returned_header(raw) == original.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def test_huge_header_section_is_bounded() -> None:
    original = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 60) for i in range(10_000))
    raw = make(original + b"\r\nbody\r\n")
    header = returned_header(raw)
    assert 0 < len(header) <= MAX_ORIGINAL_HEADER
    assert header.endswith(b"\r\n")
    assert original.startswith(header)


# ---------------------------------------------------------------------------------------------
# Hostile diagnostics and addresses


def test_diagnostic_with_crlf_cannot_inject_fields() -> None:
    failure = Failure(
        "bob@example.org",
        "5.1.1",
        "550 no\r\nBcc: evil@example.com\r\n\r\nInjected: yes\r\n--=_mailgate_x--\r\n",
        "mx.example.org\r\nX-Evil: 1",
    )
    recipient = "bob@example.org>\r\nBcc: evil@example.com"
    raw = make(failures=(Failure(recipient, "5.1.1", failure.diagnostic, failure.remote_mta),))
    assert_well_formed(raw)
    message = parse(raw)
    assert message["Bcc"] is None
    blocks = status_blocks(raw)
    assert len(blocks) == 2
    assert set(blocks[1]) == {
        "Final-Recipient",
        "Action",
        "Status",
        "Remote-MTA",
        "Diagnostic-Code",
        "Last-Attempt-Date",
    }
    assert "\n" not in blocks[1]["Diagnostic-Code"]
    for part in parts(raw):
        assert part["Bcc"] is None
        assert part["X-Evil"] is None


def test_hostile_sender_stays_one_address() -> None:
    raw = bounce(
        hostname=HOST,
        sender="alice@example.test\r\nBcc: evil@example.com",
        original=ORIGINAL,
        failures=[UNKNOWN_USER],
        arrival=ARRIVAL,
        last_attempt=LAST,
    )
    message = parse(raw)
    assert message["Bcc"] is None
    assert len(message["To"].addresses) == 1


def test_long_non_ascii_values_stay_within_the_line_limit() -> None:
    address = "ü" * 2000 + "@example.test"
    raw = bounce(
        hostname=HOST,
        sender=address,
        original=ORIGINAL,
        failures=[Failure(address, "5.1.1", "550 5.1.1 " + "é" * 3000, "mx")],
        arrival=ARRIVAL,
        last_attempt=LAST,
    )
    assert_well_formed(raw)


def test_very_long_diagnostic_is_folded_and_truncated() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    raw = make(failures=(Failure("b@example.org", "5.0.0", "550 " + words, "mx"),))
    assert_well_formed(raw)
    field = raw.split(b"Diagnostic-Code: ", 1)[1].split(b"\r\nLast-Attempt-Date", 1)[0]
    assert all(len(line) <= 78 for line in field.split(b"\r\n")[1:])
    _, block = status_blocks(raw)
    assert block["Diagnostic-Code"].startswith("smtp; 550 word0 word1 ")
    assert block["Diagnostic-Code"].endswith("...")
    assert len(block["Diagnostic-Code"]) < 998

    unbroken = "550 " + "x" * 5000  # nowhere to fold: still no line over 998
    assert_well_formed(make(failures=(Failure("b@example.org", "5.0.0", unbroken, "mx"),)))


def test_random_junk_never_breaks_the_report() -> None:
    rng = random.Random(3464)
    alphabet = b'ab:\r\n \t\x00\xff<>;=-.\\"()@' + bytes(range(0x20, 0x7F))
    for _ in range(200):
        junk = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
        text = junk.decode("utf-8", "surrogateescape")
        failure = Failure(text[:40], text[40:50], text[50:], text[:20] or None)
        raw = make(junk, (failure, UNKNOWN_USER))
        assert_well_formed(raw)
        assert len(status_blocks(raw)) == 3
        index_message(raw)


# ---------------------------------------------------------------------------------------------
# As IMAP will show it


def test_index_message_gives_a_sane_bodystructure() -> None:
    index = index_message(make())
    structure = index.bodystructure
    assert structure.startswith(b'(("text" "plain" ("charset" "utf-8") NIL "Notification" "7bit" ')
    assert b'("message" "delivery-status" NIL NIL "Delivery report" "7bit" ' in structure
    assert b'("text" "rfc822-headers" ("charset" "us-ascii") NIL ' in structure
    assert re.search(
        rb'\) "report" \("report-type" "delivery-status" "boundary" "=_mailgate_[0-9a-f]{32}"\)',
        structure,
    )
    assert index.message_id is not None
    assert index.message_id.endswith(f"@{HOST}>")
    assert index.sent_date == NOW
    assert b'"Undelivered Mail Returned to Sender"' in index.envelope
    assert b'(("Mail Delivery System" NIL "MAILER-DAEMON" "mail.example.test"))' in index.envelope
    assert b'((NIL NIL "alice" "example.test"))' in index.envelope
