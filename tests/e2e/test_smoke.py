"""The AgentMail guide's Python examples, run unchanged in spirit against mailgate."""

from __future__ import annotations

import email
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from tests.harness import Account, Server


def test_send_with_smtp_then_read_with_imap(
    server: Server, account: Account, other: Account
) -> None:
    msg = MIMEMultipart()
    msg["Subject"] = "Hello from AgentMail"
    msg["From"] = account.address
    msg["To"] = other.address
    msg.attach(MIMEText("This is a test email sent via SMTP.", "plain"))
    with server.smtp_client(account) as smtp:
        assert smtp.send_message(msg) == {}

    imap = server.imap_client(other)
    try:
        assert imap.select("INBOX") == ("OK", [b"1"])
        status, ids = imap.search(None, "ALL")
        assert status == "OK"
        assert ids == [b"1"]
        status, data = imap.fetch(b"1", "(RFC822)")
        assert status == "OK"
        message = email.message_from_bytes(data[0][1])
        assert message["subject"] == "Hello from AgentMail"
        assert message["received"] is not None
    finally:
        imap.logout()
