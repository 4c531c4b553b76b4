"""What an accepted message becomes: a \\Seen copy in the sender's Sent, a copy in each hosted
recipient's INBOX (Bcc kept only in Sent), trace headers added, and the 250 only after the
commit, so the message is visible over IMAP the moment the client has its 250."""

from __future__ import annotations

import email.utils
import re

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import (
    SMTPSession,
    dot_stuff,
    imap_login,
    mailbox_count,
    read_mailbox,
    smtp_login,
)
from tests.transcript import Transcript

ACCEPTED = re.compile(r"^250 2\.0\.0 Message accepted (\S+)$")


def _raw_message(sender: str, to: str, *, headers: str = "", body: str = "Hi.\r\n") -> bytes:
    """A message with exactly the header fields given (make_message adds Date and Message-ID)."""
    return f"From: {sender}\r\nTo: {to}\r\nSubject: raw\r\n{headers}\r\n{body}".encode()


def test_250_means_visible_over_imap_at_once(
    server: Server, account: Account, other: Account
) -> None:
    watcher = imap_login(server, other)
    try:
        assert watcher.select("INBOX")[0] == "OK"
        with SMTPSession.login_as(server, account) as s:
            for n in range(1, 6):
                message = make_message(account.address, other.address, subject=f"n{n}")
                reply = s.send_mail(account.address, [other.address], message)
                assert ACCEPTED.match(reply.line), reply.text
                # No wait: the commit happened before the 250, so the selected session learns
                # of it at its next command, and a new session sees it too.
                assert watcher.noop()[0] == "OK"
                status, data = watcher.uid("SEARCH", "ALL")
                assert status == "OK"
                assert data[0].split() == [str(u).encode() for u in range(1, n + 1)]
                assert mailbox_count(server, account, "Sent") == n
    finally:
        watcher.logout()


def test_idle_session_gets_exists_when_mail_is_committed(
    server: Server, account: Account, other: Account
) -> None:
    with Transcript.login(server, other) as idling:
        idling.ok("SELECT INBOX")
        idling.send(b"i1 IDLE\r\n")
        assert idling.read_line().startswith(b"+")
        with SMTPSession.login_as(server, account) as s:
            for n in (1, 2):
                message = make_message(account.address, other.address)
                assert s.send_mail(account.address, [other.address], message).code == 250
                # Pushed without the idling client asking (bounded wait, well over the aim).
                lines = idling.read_until(lambda line, n=n: line == b"* %d EXISTS" % n, timeout=5)
                assert lines[-1] == b"* %d EXISTS" % n
        idling.send(b"DONE\r\n")
        assert idling.finish("i1").status == "OK"


def test_sent_copy_is_seen_and_inbox_copy_is_not(
    server: Server, account: Account, other: Account
) -> None:
    message = make_message(account.address, other.address, subject="copies")
    with smtp_login(server, account) as smtp:
        assert smtp.sendmail(account.address, [other.address], message) == {}
    [sent] = read_mailbox(server, account, "Sent")
    [received] = read_mailbox(server, other)
    assert "\\Seen" in sent.flags
    assert "\\Seen" not in received.flags
    assert sent.header("Subject") == received.header("Subject") == ["copies"]
    # The sender's own INBOX and the recipient's Sent stay empty.
    assert read_mailbox(server, account) == []
    assert read_mailbox(server, other, "Sent") == []
    # Both copies are the same bytes: the submitted message under the added trace header.
    assert sent.raw == received.raw
    assert sent.raw.endswith(message)


def test_every_hosted_recipient_gets_one_copy(server: Server, account: Account) -> None:
    recipients = [server.account() for _ in range(3)]
    addresses = [r.address for r in recipients]
    with smtp_login(server, account) as smtp:
        assert (
            smtp.sendmail(account.address, addresses, make_message(account.address, addresses))
            == {}
        )
    for recipient in recipients:
        [stored] = read_mailbox(server, recipient)
        assert stored.uid == 1
    assert len(read_mailbox(server, account, "Sent")) == 1


def test_mail_to_self_lands_in_sent_and_inbox(server: Server, account: Account) -> None:
    with smtp_login(server, account) as smtp:
        smtp.sendmail(
            account.address, [account.address], make_message(account.address, account.address)
        )
    [sent] = read_mailbox(server, account, "Sent")
    [inbox] = read_mailbox(server, account)
    assert "\\Seen" in sent.flags
    assert "\\Seen" not in inbox.flags


def test_bcc_is_kept_only_in_sent(server: Server, account: Account, other: Account) -> None:
    hidden = server.account()
    data = make_message(account.address, other.address, extra={"Bcc": hidden.address})
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(account.address, [other.address, hidden.address], data)
        assert reply.line.startswith("250 2.0.0")
    [sent] = read_mailbox(server, account, "Sent")
    assert sent.header("Bcc") == [hidden.address]
    for recipient in (other, hidden):
        [stored] = read_mailbox(server, recipient)
        assert stored.header("Bcc") == []
        assert stored.header("To") == [other.address]
        assert stored.raw.endswith(b"\r\n\r\nHello there.\r\n")


def test_folded_bcc_is_removed_whole(server: Server, account: Account, other: Account) -> None:
    hidden = server.account()
    headers = f"Bcc: {hidden.address},\r\n\tsecret-two@example.test\r\nX-After: kept\r\n"
    data = _raw_message(account.address, other.address, headers=headers)
    with SMTPSession.login_as(server, account) as s:
        assert s.send_mail(account.address, [other.address, hidden.address], data).line.startswith(
            "250"
        )
    [stored] = read_mailbox(server, hidden)
    assert b"secret-two" not in stored.raw
    assert stored.header("X-After") == ["kept"]


def test_received_header_is_added_first(server: Server, account: Account, other: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(
            account.address, [other.address], make_message(account.address, other.address)
        )
    match = ACCEPTED.match(reply.line)
    assert match is not None, reply.text
    [stored] = read_mailbox(server, other)
    assert stored.raw.startswith(b"Received: ")
    [received] = stored.header("Received")
    assert received.startswith("from client.example.test ([127.0.0.1])")
    assert "by mail.example.test" in received
    # RFC 3848: ESMTPSA is authenticated ESMTP over TLS; the id is the one in the 250 reply.
    assert f"with ESMTPSA id {match.group(1)}" in received
    assert f"for <{other.address}>;" in received
    stamp = received.rsplit(";", 1)[1].strip()
    assert email.utils.parsedate_to_datetime(stamp) is not None


def test_message_id_and_date_added_when_missing(
    server: Server, account: Account, other: Account
) -> None:
    with SMTPSession.login_as(server, account) as s:
        assert s.send_mail(
            account.address, [other.address], _raw_message(account.address, other.address)
        ).line.startswith("250")
    [stored] = read_mailbox(server, other)
    [sent] = read_mailbox(server, account, "Sent")
    [message_id] = stored.header("Message-ID")
    assert re.fullmatch(r"<[^<>@\s]+@mail\.example\.test>", message_id), message_id
    assert sent.header("Message-ID") == [message_id]
    [date] = stored.header("Date")
    assert email.utils.parsedate_to_datetime(date).tzinfo is not None


def test_existing_message_id_and_date_are_kept(
    server: Server, account: Account, other: Account
) -> None:
    headers = "Message-ID: <mine@client.example.test>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\n"
    with SMTPSession.login_as(server, account) as s:
        data = _raw_message(account.address, other.address, headers=headers)
        assert s.send_mail(account.address, [other.address], data).line.startswith("250")
    [stored] = read_mailbox(server, other)
    assert stored.header("Message-ID") == ["<mine@client.example.test>"]
    assert stored.header("Date") == ["Mon, 02 Mar 2026 10:00:00 +0100"]


def test_body_bytes_survive_dot_stuffing_and_8bit(
    server: Server, account: Account, other: Account
) -> None:
    body = ".leading dot\r\n..two dots\r\n.\r\nnaïve café 東京\r\n\r\n\r\ntrailing blank lines\r\n"
    headers = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    headers += "Content-Transfer-Encoding: 8bit\r\n"
    data = _raw_message(account.address, other.address, headers=headers, body=body)
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(account.address, [other.address], data)  # dot-stuffed on the wire
        assert reply.line.startswith("250 2.0.0")
    [stored] = read_mailbox(server, other)
    assert stored.raw.endswith(body.encode())


def test_several_messages_in_one_session_get_ascending_uids(
    server: Server, account: Account, other: Account
) -> None:
    with smtp_login(server, account) as smtp:
        for n in range(4):
            smtp.sendmail(
                account.address,
                [other.address],
                make_message(account.address, other.address, subject=f"m{n}"),
            )
            smtp.rset()
    stored = read_mailbox(server, other)
    assert [m.uid for m in stored] == [1, 2, 3, 4]
    assert [m.header("Subject") for m in stored] == [["m0"], ["m1"], ["m2"], ["m3"]]
    assert [m.uid for m in read_mailbox(server, account, "Sent")] == [1, 2, 3, 4]


def test_pipelined_transaction(server: Server, account: Account, other: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        assert "PIPELINING" in s.ehlo()
        s.send(
            f"MAIL FROM:<{account.address}>\r\nRCPT TO:<{other.address}>\r\n"
            f"RCPT TO:<nobody@example.com>\r\nDATA\r\n".encode()
        )
        assert s.read_reply().line.startswith("250 2.1.0")
        assert s.read_reply().line.startswith("250 2.1.5")
        assert s.read_reply().line.startswith("250 2.1.5")  # queued for example.com
        assert s.read_reply().code == 354
        s.send(dot_stuff(make_message(account.address, other.address)) + b".\r\nQUIT\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
        assert s.read_reply().line.startswith("221 2.0.0")
    assert len(read_mailbox(server, other)) == 1


def test_rset_discards_the_envelope(server: Server, account: Account, other: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{other.address}>", "250 2.1.5")
        s.expect("RSET", "250 2.0.0")
        s.expect("DATA", "503 5.5.1")
    assert read_mailbox(server, other) == []


def test_header_only_message(server: Server, account: Account, other: Account) -> None:
    data = f"From: {account.address}\r\nTo: {other.address}\r\nSubject: no body\r\n".encode()
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(account.address, [other.address], data)
        assert reply.line.startswith("250 2.0.0"), reply.text
    [stored] = read_mailbox(server, other)
    assert stored.header("Subject") == ["no body"]
