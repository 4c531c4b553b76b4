"""PREVIEW (RFC 8970): FETCH PREVIEW and PREVIEW (LAZY) give the start of a message's text, the
very preview the HTTP API lists (one function computes both, once, at ingest), so an agent
lists messages with their previews in one round trip."""

from __future__ import annotations

import re

from tests.harness import Account, Server
from tests.http.sdk import Api
from tests.imap.helpers import MULTIPART, PLAIN, append, fetches, message
from tests.transcript import Transcript

HTML_ONLY = (
    b"From: alice@example.test\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><body><p>Gr\xc3\xbc\xc3\x9fe &amp; <b>welcome</b></p></body></html>\r\n"
)
LONG = message("long", body="word " * 200 + "\r\n")
EMPTY = b"From: alice@example.test\r\nSubject: nothing\r\n\r\n"


def previews(r_untagged: dict[int, bytes]) -> dict[int, str]:
    out = {}
    for seq, text in r_untagged.items():
        m = re.search(rb'PREVIEW (?:"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n)', text, re.S)
        assert m is not None, text
        if m.group(2) is not None:
            value = text[m.end() : m.end() + int(m.group(2))]
        else:
            value = re.sub(rb"\\(.)", rb"\1", m.group(1))
        out[seq] = value.decode("utf-8")
    return out


def test_previews_agree_with_the_http_api(
    server: Server, account: Account, imap: Transcript
) -> None:
    assert b"PREVIEW" in imap.ok("CAPABILITY").untagged[0].split()
    for raw in (PLAIN, MULTIPART, HTML_ONLY, LONG, EMPTY):
        append(imap, raw)
    imap.ok("SELECT INBOX")
    got = previews(fetches(imap.ok("FETCH 1:* (UID PREVIEW)")))
    lazy = previews(fetches(imap.ok("FETCH 1:* (PREVIEW (LAZY))")))
    assert got == lazy
    assert got[1] == "The numbers are in. See you on Monday."
    assert got[3] == "Grüße & welcome"
    assert got[5] == ""
    assert all(len(text) <= 256 for text in got.values())  # RFC 8970 §3
    api = Api(server, account.key)
    try:
        listed = api.client.inboxes.messages.list(account.address, limit=10).messages
        by_subject = {m.subject: m.preview or "" for m in listed}
    finally:
        api.close()
    for seq, subject in enumerate(
        ("Quarterly report", "With attachment", "html", "long", "nothing"), 1
    ):
        assert got[seq] == by_subject[subject], subject


def test_preview_does_not_set_seen(imap: Transcript) -> None:
    append(imap, PLAIN)
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 (PREVIEW FLAGS)")
    assert b"\\Seen" not in fetches(r)[1]


def test_malformed_previews_are_bad(imap: Transcript) -> None:
    append(imap, PLAIN)
    imap.ok("SELECT INBOX")
    for command, reason in (
        ("FETCH 1 (PREVIEW (LAZY FUZZY))", b"Unknown PREVIEW modifier"),
        ("FETCH 1 (PREVIEW ())", b"Expected a FETCH item"),
        ("FETCH 1 (PREVIEW (FUZZY))", b"Expected a FETCH item"),
        ("FETCH 1 PREVIEW (FUZZY)", b"Unknown FETCH modifier"),
        ("FETCH 1 PREVIEW[]", b"Unexpected characters"),
        ("FETCH 1 PREVIEW.PEEK", b"Unknown FETCH item"),
    ):
        r = imap.command(command)
        assert r.status == "BAD", (command, r)
        assert reason in r.tagged, (command, r)
