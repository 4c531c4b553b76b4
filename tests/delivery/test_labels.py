"""Labels, both ways: what the API shows for folders and flags, and what a label change does to
them, checked against the IMAP side (folders and flags) of a real server."""

from __future__ import annotations

import uuid

import pytest

from mailgate.delivery import labels
from mailgate.delivery.labels import InvalidLabel, LabelChange, plan
from mailgate.store.conversations import Criterion, Mail
from mailgate.store.records import FLAGGED, SEEN, Parcel, Target
from tests.harness import Account, Server
from tests.transcript import Transcript


def deliver(
    server: Server, account: Account, *mailboxes: str, sender: str = "a@example.test"
) -> Mail:
    async def go() -> Mail:
        inbox = await server.store.get_inbox(account.address)
        targets = [Target((await server.store.get_mailbox(inbox.id, m)).id) for m in mailboxes]
        msgid = f"<{uuid.uuid4().hex}@example.test>"
        raw = f"From: {sender}\r\nSubject: hi\r\nMessage-ID: {msgid}\r\n\r\nhi\r\n"
        await server.store.deliver([Parcel(raw.encode(), tuple(targets))])
        (mail,) = await server.store.mail_by_ids([inbox.id], [msgid])
        return mail

    return server.call(go())


def reread(server: Server, mail: Mail) -> Mail:
    (found,) = server.call(server.store.mail_by_ids([mail.inbox_id], [mail.message_id]))
    return found


def imap_view(server: Server, account: Account) -> dict[str, list[bytes]]:
    """Mailbox name -> the FLAGS of each message in it, as an IMAP client sees them."""
    found = {}
    with Transcript.login(server, account) as s:
        for box in ("INBOX", "Sent", "Spam", "Trash"):
            (exists,) = s.ok(f"SELECT {box}").lines(b"EXISTS")
            if exists == b"* 0 EXISTS":
                found[box] = []
                continue
            fetched = s.ok("FETCH 1:* FLAGS").untagged
            found[box] = [line.split(b"FLAGS ", 1)[1] for line in fetched]
    return found


def test_labels_of_folders_and_flags(server: Server, account: Account) -> None:
    mail = deliver(server, account, "INBOX")
    assert labels.labels_of(mail) == ["received", "unread"]
    labels_apply(server, mail, plan(["read", "starred", "Invoices"], []))
    assert labels.labels_of(reread(server, mail)) == ["received", "read", "starred", "Invoices"]
    # \Recent too: this is the first session to select the INBOX since the message came.
    assert imap_view(server, account)["INBOX"] == [b"(\\Recent \\Seen \\Flagged Invoices))"]


def labels_apply(server: Server, mail: Mail, change: LabelChange) -> None:
    server.call(labels.apply(server.store, mail, change))


def test_a_sent_copy_is_read_and_a_self_sent_message_both(server: Server, account: Account) -> None:
    mail = deliver(server, account, "Sent", "INBOX", sender=account.address)
    assert labels.labels_of(mail)[:3] == ["received", "sent", "unread"]
    only_sent = deliver(server, server.account(), "Sent")
    assert "read" in labels.labels_of(only_sent)


def test_trash_and_spam_move_the_message_and_back(server: Server, account: Account) -> None:
    mail = deliver(server, account, "INBOX")
    labels_apply(server, mail, plan(["trash"], []))
    trashed = reread(server, mail)
    assert [c.mailbox for c in trashed.copies] == ["Trash"]
    assert "trash" in labels.labels_of(trashed)
    labels_apply(server, trashed, plan([], ["trash"]))
    back = reread(server, mail)
    assert [c.mailbox for c in back.copies] == ["INBOX"]
    labels_apply(server, back, plan(["spam"], []))
    view = imap_view(server, account)
    assert (len(view["INBOX"]), len(view["Spam"])) == (0, 1)
    # A message the inbox sent goes back to Sent.
    own = deliver(server, account, "Sent", sender=account.address)
    labels_apply(server, own, plan(["trash"], []))
    labels_apply(server, reread(server, own), plan([], ["trash"]))
    assert [c.mailbox for c in reread(server, own).copies] == ["Sent"]


def test_label_filters() -> None:
    assert labels.criteria(["sent", "UNREAD", "starred", "Invoices"]) == (
        Criterion("mailbox", "Sent"),
        Criterion("unseen", "Sent Drafts"),
        Criterion("flag", FLAGGED),
        Criterion("flag", "Invoices"),
    )
    assert labels.criteria(["read"]) == (Criterion("unseen", "Sent Drafts", present=False),)


def test_plans() -> None:
    assert plan(["read", "starred"], ["x"]) == LabelChange((SEEN, FLAGGED), ("x",), None)
    assert plan([], ["unread"]) == LabelChange((SEEN,), (), None)
    assert plan(["trash"], []).move_to == "Trash"
    assert plan([], ["spam"]).move_to == ""
    for bad_add, bad_remove in [
        (["sent"], []),
        ([], ["received"]),
        (["two words"], []),
        (["a(b"], []),
        (["x"], ["X"]),
        ([""], []),
    ]:
        with pytest.raises(InvalidLabel):
            plan(bad_add, bad_remove)
