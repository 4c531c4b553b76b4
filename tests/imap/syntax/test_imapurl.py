"""IMAP URLs as CATENATE takes them (syntax/imapurl.py, RFC 5092): what is followed, and what
is not (None: the server answers NO [BADURL])."""

from __future__ import annotations

import pytest

from mailgate.imap.syntax.imapurl import ImapUrl, parse_imap_url
from mailgate.imap.syntax.values import Section


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("/INBOX/;UID=3", ImapUrl(None, "INBOX", None, 3, None, None)),
        (
            "/inbox/;uid=3/;section=header",
            ImapUrl(None, "INBOX", None, 3, Section((), "HEADER"), None),
        ),
        (
            "/Work%20Stuff;UIDVALIDITY=77/;UID=9/;SECTION=1.2.MIME/;PARTIAL=10.20",
            ImapUrl(None, "Work Stuff", 77, 9, Section((1, 2), "MIME"), (10, 20)),
        ),
        ("/INBOX/;UID=2/;PARTIAL=5", ImapUrl(None, "INBOX", None, 2, None, (5, None))),
        ("/a/b/;UID=2", ImapUrl(None, "a/b", None, 2, None, None)),
        ("/Entw%C3%BCrfe/;UID=1", ImapUrl(None, "Entwürfe", None, 1, None, None)),
        ("/Entw&APw-rfe/;UID=1", ImapUrl(None, "Entwürfe", None, 1, None, None)),
        (
            "/INBOX/;UID=2/;SECTION=HEADER.FIELDS%20(From%20To)",
            ImapUrl(None, "INBOX", None, 2, Section((), "HEADER.FIELDS", ("FROM", "TO")), None),
        ),
        (
            "imap://bob%40x.test;AUTH=*@mail.x.test:993/INBOX/;UID=20",
            ImapUrl("bob@x.test", "INBOX", None, 20, None, None),
        ),
    ],
)
def test_urls(text: str, url: ImapUrl) -> None:
    assert parse_imap_url(text) == url


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INBOX/;UID=1",
        "/INBOX",
        "/INBOX/;UID=0",
        "/INBOX/;UID=4294967296",
        "/INBOX;UIDVALIDITY=0/;UID=1",
        "/INBOX/;UID=1/;SECTION=0",
        "/INBOX/;UID=1/;SECTION=1.",
        "/INBOX/;UID=1/;SECTION=HEADER.FIELDS",
        "/INBOX/;UID=1/;PARTIAL=1.0",
        "/INBOX/;UID=1;URLAUTH=anonymous:internal:0123",
        "/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z",
        "/INBOX?SUBJECT%20x",
        "/&Jjo/;UID=1",
        "imap://host/INBOX/;UID=1",
        "imap://bob@/INBOX/;UID=1",
        "//bob@host/INBOX/;UID=1",
    ],
)
def test_not_followed(text: str) -> None:
    assert parse_imap_url(text) is None
