"""The AgentMail IMAP/SMTP guide's Python examples, run verbatim against mailgate.

The examples are copied from the guide character for character; only the host, port, inbox
address and recipient are substituted (each substitution is asserted to apply, so the code
cannot drift from the guide unnoticed). Like the guide, they pass no TLS context: imaplib and
smtplib then encrypt without verifying the certificate, so mailgate's self-signed one works
with them as printed (`mailgate check --ca-file` is where verification is tested).
"""

from __future__ import annotations

import email
import imaplib
import smtplib
import ssl

import pytest

from tests.harness import Account, Server
from tests.smtp.helpers import read_mailbox

GUIDE_IMAP = """\
import imaplib
import os
import email

# Your credentials from AgentMail Console
inbox_email = "myinbox@agentmail.to" # From Dashboard → Inboxes
api_key = os.getenv("AGENTMAIL_API_KEY") # From Dashboard → API Keys

# Connect with SSL (required)
imap = imaplib.IMAP4_SSL("imap.agentmail.to", 993)

try:
    # Authenticate using inbox email as username
    imap.login(inbox_email, api_key)

    # Select a folder (INBOX, Sent, Trash, or Spam)
    imap.select("INBOX")

    # Search for all messages
    status, message_ids = imap.search(None, "ALL")

    if status == "OK":
        for msg_id in message_ids[0].split():
            # Fetch message
            status, msg_data = imap.fetch(msg_id, "(RFC822)")
            if status == "OK":
                email_body = msg_data[0][1]
                message = email.message_from_bytes(email_body)
                print(f"Subject: {message['subject']}")
finally:
    imap.logout()
"""

GUIDE_SMTP = """\
import smtplib
import os
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart

# Your credentials from AgentMail Console
inbox_email = "myinbox@agentmail.to" # From Dashboard → Inboxes
api_key = os.getenv("AGENTMAIL_API_KEY") # From Dashboard → API Keys

# Create message
msg = MIMEMultipart()
msg["Subject"] = "Hello from AgentMail"
msg["From"] = inbox_email # Use your inbox email as the From address
msg["To"] = "recipient@example.com"
msg.attach(MIMEText("This is a test email sent via SMTP.", "plain"))

# Connect with implicit TLS on port 465 and send
with smtplib.SMTP_SSL("smtp.agentmail.to", 465) as server:
    server.login(inbox_email, api_key)
    server.send_message(msg)
    print("Email sent successfully!")

# Alternatively, use STARTTLS on port 587:
# with smtplib.SMTP("smtp.agentmail.to", 587) as server:
#     server.starttls()
#     server.login(inbox_email, api_key)
#     server.send_message(msg)
"""


def _substitute(code: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in code, f"the guide's code no longer contains {old!r}"
        code = code.replace(old, new)
    return code


def _uncomment_starttls(code: str) -> str:
    """The guide's alternative: the commented STARTTLS block instead of the 465 one."""
    head, _, alternative = code.partition("# Connect with implicit TLS on port 465 and send\n")
    block = alternative.split("# Alternatively, use STARTTLS on port 587:\n", 1)[1]
    lines = [line.removeprefix("# ") for line in block.splitlines()]
    return head + "\n".join(lines) + "\n"


def run_guide_imap(server: Server, account: Account, folder: str = "INBOX") -> None:
    code = _substitute(
        GUIDE_IMAP,
        {
            '"myinbox@agentmail.to"': repr(account.address),
            '"imap.agentmail.to", 993': f'"127.0.0.1", {server.imaps}',
        },
    )
    if folder != "INBOX":
        code = _substitute(code, {'imap.select("INBOX")': f"imap.select({folder!r})"})
    exec(compile(code, "agentmail-guide-imap", "exec"), {"__name__": "guide"})


def run_guide_smtp(server: Server, account: Account, recipient: str, *, starttls: bool) -> None:
    code = _uncomment_starttls(GUIDE_SMTP) if starttls else GUIDE_SMTP
    port = server.submission if starttls else server.smtps
    host_port = '"smtp.agentmail.to", 587' if starttls else '"smtp.agentmail.to", 465'
    code = _substitute(
        code,
        {
            '"myinbox@agentmail.to"': repr(account.address),
            '"recipient@example.com"': repr(recipient),
            host_port: f'"127.0.0.1", {port}',
        },
    )
    exec(compile(code, "agentmail-guide-smtp", "exec"), {"__name__": "guide"})


@pytest.mark.parametrize("starttls", [False, True], ids=["465-implicit-tls", "587-starttls"])
def test_guide_send_then_read(
    server: Server,
    account: Account,
    other: Account,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    starttls: bool,
) -> None:
    monkeypatch.setenv("AGENTMAIL_API_KEY", account.key)
    run_guide_smtp(server, account, other.address, starttls=starttls)
    # The STARTTLS alternative prints nothing in the guide.
    assert capsys.readouterr().out == ("" if starttls else "Email sent successfully!\n")

    monkeypatch.setenv("AGENTMAIL_API_KEY", other.key)
    run_guide_imap(server, other)
    assert capsys.readouterr().out == "Subject: Hello from AgentMail\n"

    # What the guide's reader fetched is the guide's message, with mailgate's trace header.
    [stored] = read_mailbox(server, other)
    message = email.message_from_bytes(stored.raw)
    assert message["From"] == account.address
    assert message["Received"] is not None
    assert message.get_payload()[0].get_payload() == "This is a test email sent via SMTP."
    # The guide fetched RFC822 (not BODY.PEEK), which marks the message read.
    assert "\\Seen" in stored.flags


def test_guide_reader_on_the_sent_folder(
    server: Server,
    account: Account,
    other: Account,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AGENTMAIL_API_KEY", account.key)
    run_guide_smtp(server, account, other.address, starttls=False)
    run_guide_imap(server, account, folder="Sent")
    assert capsys.readouterr().out == "Email sent successfully!\nSubject: Hello from AgentMail\n"
    for folder in ("Trash", "Spam"):
        run_guide_imap(server, account, folder=folder)
        assert capsys.readouterr().out == ""


def test_guide_recipient_outside_mailgate_is_queued(
    server: Server, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as printed (to recipient@example.com), the example succeeds: the message is in the
    sender's Sent folder and queued for delivery to example.com."""
    monkeypatch.setenv("AGENTMAIL_API_KEY", account.key)
    run_guide_smtp(server, account, "recipient@example.com", starttls=False)
    queued = server.call(server.store.list_outbound())
    assert [q.recipient for q in queued if q.mail_from == account.address] == [
        "recipient@example.com"
    ]


def test_guide_folders(server: Server, account: Account) -> None:
    """'IMAP exposes the following folders: INBOX, Sent, Trash, and Spam. A Drafts folder is
    also listed'; names other than INBOX are case-sensitive."""
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.imaps)
    try:
        imap.login(account.address, account.key)
        status, listing = imap.list()
        assert status == "OK"
        names = {
            line.rsplit(b" ", 1)[1].strip(b'"').decode()
            for line in listing
            if isinstance(line, bytes)
        }
        assert {"INBOX", "Sent", "Trash", "Spam", "Drafts"} <= names
        assert imap.select("inbox")[0] == "OK"
        assert imap.select("Sent")[0] == "OK"
        assert imap.select("sent")[0] == "NO"
    finally:
        imap.logout()


def test_guide_troubleshooting_authentication_failed(server: Server, account: Account) -> None:
    with (
        smtplib.SMTP_SSL("127.0.0.1", server.smtps) as smtp,
        pytest.raises(smtplib.SMTPAuthenticationError) as smtp_failure,
    ):
        smtp.login(account.address, "not-the-api-key")
    assert smtp_failure.value.smtp_code == 535
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.imaps)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(account.address, "not-the-api-key")
    finally:
        imap.shutdown()


def test_guide_troubleshooting_wrong_encryption_mode(server: Server) -> None:
    """'Connection refused / handshake error: wrong encryption mode for the port'."""
    with pytest.raises(ssl.SSLError):
        smtplib.SMTP_SSL("127.0.0.1", server.submission, timeout=10)
    with pytest.raises(ssl.SSLError):
        imaplib.IMAP4_SSL("127.0.0.1", server.imap, timeout=10)
