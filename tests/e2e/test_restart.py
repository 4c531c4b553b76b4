"""A restart keeps everything: inboxes, keys (and revocations), messages with their UIDs and
flags, UIDVALIDITY and UIDNEXT, user mailboxes, the generated certificate. Sessions open at
shutdown are told goodbye (IMAP `* BYE`, SMTP `421 4.3.2`)."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailgate.auth import split_token
from tests.conftest import make_message
from tests.harness import Account, Loop, Server, postgres, settings_for
from tests.smtp.helpers import SMTPSession, imap_login, plain, read_mailbox, smtp_login
from tests.transcript import Transcript


def _status(server: Server, account: Account, mailbox: str) -> dict[str, int]:
    client = imap_login(server, account)
    try:
        status, data = client.status(mailbox, "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        assert status == "OK", data
        raw = data[0]
        assert isinstance(raw, bytes)
        return {k.decode(): int(v) for k, v in re.findall(rb"([A-Z]+) (\d+)", raw)}
    finally:
        client.logout()


@pytest.fixture
def restart(backend: str, tmp_path: Path) -> Iterator[tuple[Server, Callable[[], Server]]]:
    """A server, and a function that stops it and starts a new one on the same data directory
    (and, on PostgreSQL, the same database)."""
    settings, database = settings_for(tmp_path, backend)
    started = [Server(settings, backend, None)]  # stopping it keeps the database

    def again() -> Server:
        started[-1].stop()
        started.append(Server(settings, backend, None))
        return started[-1]

    try:
        yield started[0], again
    finally:
        for server in started:
            server.stop()
        pg = postgres()
        if database is not None and pg is not None:
            Loop.get().run(pg.drop(database))


def _revoked_key(server: Server, address: str) -> Account:
    account = Account(address, server.pod_key("default"))
    parts = split_token(account.key)
    assert parts is not None
    server.call(server.store.revoke_key(parts[0]))
    return account


def test_restart_keeps_everything(restart: tuple[Server, Callable[[], Server]]) -> None:
    first, again = restart
    alice, bob = first.account(), first.account()
    spare = Account(bob.address, first.pod_key("default"))
    revoked = _revoked_key(first, alice.address)
    with smtp_login(first, alice) as smtp:
        for n in range(3):
            message = make_message(alice.address, bob.address, subject=f"m{n}")
            assert smtp.sendmail(alice.address, [bob.address], message) == {}
    imap = imap_login(first, bob)
    try:
        assert imap.create("Projects/2026")[0] == "OK"
        imap.select("INBOX")
        imap.uid("STORE", "2", "+FLAGS", "(\\Flagged $Important)")
        imap.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        assert imap.expunge()[0] == "OK"
        assert imap.uid("COPY", "3", "Projects/2026")[0] == "OK"
    finally:
        imap.logout()
    boxes = ("INBOX", "Projects/2026", "Sent")
    before = {box: _status(first, bob, box) for box in boxes}
    sent_before = read_mailbox(first, alice, "Sent")
    inbox_before = read_mailbox(first, bob)
    assert [m.uid for m in inbox_before] == [2, 3]
    assert {"\\Flagged", "$Important"} <= inbox_before[0].flags
    assert first.app.certificate is not None
    fingerprint = first.app.certificate.fingerprint

    second = again()

    assert second.app.certificate is not None
    assert second.app.certificate.fingerprint == fingerprint
    assert {box: _status(second, bob, box) for box in boxes} == before
    assert read_mailbox(second, bob) == inbox_before
    assert read_mailbox(second, alice, "Sent") == sent_before
    [copied] = read_mailbox(second, bob, "Projects/2026")
    assert copied.raw == inbox_before[1].raw

    # Keys: those kept still open their inboxes; the revoked one stays revoked.
    imap_login(second, spare).logout()
    with SMTPSession.connect(second) as s:
        s.ehlo()
        s.expect(f"AUTH PLAIN {plain(revoked.address, revoked.key)}", "535 5.7.8")
        s.login(alice)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap_login(second, revoked)

    # New mail continues the UID sequence: no UID is ever reused.
    with smtp_login(second, alice) as smtp:
        smtp.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
    assert [m.uid for m in read_mailbox(second, bob)] == [2, 3, before["INBOX"]["UIDNEXT"]]


def test_sessions_open_at_shutdown_are_told(restart: tuple[Server, Callable[[], Server]]) -> None:
    first, again = restart
    alice, bob = first.account(), first.account()
    selected = Transcript.login(first, bob)
    selected.ok("SELECT INBOX")
    idling = Transcript.login(first, bob)
    idling.ok("SELECT INBOX")
    idling.send(b"i1 IDLE\r\n")
    assert idling.read_line().startswith(b"+")
    sender = SMTPSession.login_as(first, alice)
    sender.expect(f"MAIL FROM:<{alice.address}>", "250 2.1.0")
    try:
        second = again()
        for t in (selected, idling):
            lines = t.read_until(lambda line: line.startswith(b"* BYE"), timeout=10)
            assert lines[-1].startswith(b"* BYE")
        assert sender.read_until_closed().startswith(b"421 4.3.2")
    finally:
        for session in (selected, idling, sender):
            session.close()
    # The new server serves the same accounts.
    with smtp_login(second, alice) as smtp:
        assert (
            smtp.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
            == {}
        )
