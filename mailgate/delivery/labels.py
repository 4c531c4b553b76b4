"""Labels: what the HTTP API calls the folders and flags IMAP clients see, both ways.

    label        is, over IMAP                    set over the API
    received     a copy in INBOX                  (system: not set by hand)
    sent         a copy in Sent                   (system)
    draft        a copy in Drafts                 (system)
    spam         a copy in Spam                   moves the message to Spam; removing it, back
    trash        a copy in Trash                  moves it to Trash; removing it, back
    unread       a copy not \\Seen (not in Sent, Drafts)   -\\Seen / +\\Seen everywhere
    read         no such copy                     +\\Seen / -\\Seen
    starred      \\Flagged                         +\\Flagged / -\\Flagged
    bounced      $Bounced (a sent message some    (system: set when delivery fails for good)
                 server refused for good)
    <folder>     a copy in a folder of that name  (a folder made over IMAP: shown, not set)
    <keyword>    the IMAP keyword                 the keyword, on every copy

A message back from Spam or Trash goes to Sent if the inbox sent it, else to INBOX. Labels are
compared without regard to case, as keywords are by mail clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailgate.store.api import Store
from mailgate.store.conversations import Criterion, Mail
from mailgate.store.labelling import (
    BOUNCED_LABEL,
    DRAFT,
    FOLDER_LABELS,
    OWN,
    READ,
    RECEIVED,
    SENT_LABEL,
    SPAM_LABEL,
    STARRED,
    TRASH_LABEL,
    UNREAD,
    labels_of_copies,
)
from mailgate.store.records import BOUNCED, FLAGGED, INBOX, SEEN, SENT, SPAM, TRASH

MAILBOX_OF = {label: mailbox for mailbox, label in FOLDER_LABELS.items()}
SYSTEM = frozenset({RECEIVED, SENT_LABEL, DRAFT, BOUNCED_LABEL, BOUNCED.casefold()})
_MAX_LABEL = 200
_ATOM_SPECIALS = frozenset('(){%*"\\]')


class InvalidLabel(ValueError):
    """A label that cannot be set (a system label, or not a valid IMAP keyword)."""


def labels_of(mail: Mail) -> list[str]:
    """A message's labels (store/labelling.py)."""
    return labels_of_copies((copy.mailbox, copy.flags) for copy in mail.copies)


def criteria(labels: Iterable[str]) -> tuple[Criterion, ...]:
    """What a message must show to have every one of `labels` (a list's filter)."""
    found = []
    for raw in labels:
        label = raw.casefold()
        if label in MAILBOX_OF:
            found.append(Criterion("mailbox", MAILBOX_OF[label]))
        elif label in (UNREAD, READ):
            found.append(Criterion("unseen", " ".join(OWN), present=label == UNREAD))
        elif label == STARRED:
            found.append(Criterion("flag", FLAGGED))
        elif label == BOUNCED_LABEL:
            found.append(Criterion("flag", BOUNCED))
        else:
            # A folder made over IMAP, or a keyword: either makes the label.
            found.append(Criterion("flag", raw))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class LabelChange:
    """What a label change does: flags to add and remove on every copy, and a move."""

    add_flags: tuple[str, ...] = ()
    remove_flags: tuple[str, ...] = ()
    move_to: str | None = None  # a mailbox name; "" means back where it came from


def plan(add: Sequence[str], remove: Sequence[str]) -> LabelChange:
    """The change `add_labels`/`remove_labels` ask for; InvalidLabel naming a bad one."""
    adding = {label.casefold(): label for label in add}
    removing = {label.casefold(): label for label in remove}
    both = set(adding) & set(removing)
    if both:
        raise InvalidLabel(f"label {sorted(both)[0]!r} is both added and removed")
    for label in [*adding, *removing]:
        if label in SYSTEM:
            raise InvalidLabel(f"{label!r} is a system label: it follows where the mail is")
    add_flags: list[str] = []
    remove_flags: list[str] = []
    move_to: str | None = None
    for label, given in adding.items():
        if label in (SPAM_LABEL, TRASH_LABEL):
            move_to = MAILBOX_OF[label]
        elif label == READ:
            add_flags.append(SEEN)
        elif label == UNREAD:
            remove_flags.append(SEEN)
        elif label == STARRED:
            add_flags.append(FLAGGED)
        else:
            add_flags.append(keyword(given))
    for label, given in removing.items():
        if label in (SPAM_LABEL, TRASH_LABEL):
            if move_to is None:
                move_to = ""
        elif label == READ:
            remove_flags.append(SEEN)
        elif label == UNREAD:
            add_flags.append(SEEN)
        elif label == STARRED:
            remove_flags.append(FLAGGED)
        else:
            remove_flags.append(keyword(given))
    return LabelChange(tuple(dict.fromkeys(add_flags)), tuple(dict.fromkeys(remove_flags)), move_to)


def keyword(label: str) -> str:
    """The IMAP keyword a user label is (RFC 3501 atom: no spaces, controls or specials)."""
    if (
        not label
        or len(label) > _MAX_LABEL
        or any(c in _ATOM_SPECIALS or ord(c) <= 0x20 or ord(c) == 0x7F for c in label)
    ):
        raise InvalidLabel(f"{label!r} is not a label mailgate can keep (an IMAP keyword)")
    return label


async def apply(store: Store, mail: Mail, change: LabelChange) -> None:
    """Make `change` to every copy of `mail`: flags first, then the move."""
    by_mailbox: dict[int, list[int]] = {}
    for copy in mail.copies:
        by_mailbox.setdefault(copy.mailbox_id, []).append(copy.uid)
    for mailbox_id, uids in by_mailbox.items():
        ranges = [(uid, uid) for uid in uids]
        if change.add_flags:
            await store.store_flags(mailbox_id, ranges, "+", change.add_flags)
        if change.remove_flags:
            await store.store_flags(mailbox_id, ranges, "-", change.remove_flags)
    if change.move_to is None:
        return
    target = change.move_to or _home(mail)
    destination = await store.get_mailbox(mail.inbox_id, target)
    for copy in mail.copies:
        if change.move_to == "" and copy.mailbox not in (SPAM, TRASH):
            continue  # only what is in Spam or Trash comes back
        if copy.mailbox != target:
            await store.move(copy.mailbox_id, [(copy.uid, copy.uid)], destination.id)


def _home(mail: Mail) -> str:
    """Where a message goes back to from Spam or Trash."""
    sender = (mail.from_ or "").rpartition("<")[2].rstrip(">").strip().lower()
    return SENT if sender == mail.inbox else INBOX
