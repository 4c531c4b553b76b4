"""A session's view of its selected mailbox: the sequence-number map, and catching up.

The view holds only what a session needs between commands: the UID of each sequence number
(4 bytes per message) and the MODSEQ it has caught up to. When the event bus says the mailbox
changed, the view asks the store what changed since that MODSEQ and turns it into EXISTS,
EXPUNGE and FETCH (FLAGS) responses, so a change made by this node, another node, or during a
lost connection to the database all reach the client the same way. The store's change events
are read here only: open_view(), SelectedMailbox.listen() and SelectedMailbox.hear().
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailgate.imap.errors import bad
from mailgate.imap.syntax.values import SequenceSet
from mailgate.imap.wire import flag_list, flags_fetch, uid_set
from mailgate.store.api import Store
from mailgate.store.events import Change, MailboxRenamed, Subscription
from mailgate.store.records import SYSTEM_FLAGS, Changes, Mailbox, Snapshot


class MailboxGone(Exception):
    """The selected mailbox was deleted by another session."""


class Watcher(Protocol):
    """Told when the mailbox a view listens to changes (the session, to push while IDLE)."""

    def mailbox_changed(self) -> None: ...


async def open_view(store: Store, box: Mailbox, readonly: bool) -> tuple[SelectedMailbox, Snapshot]:
    """A view of `box` as it is now, and the snapshot it was made from. A change committed while
    the snapshot was taken leaves the view dirty, so the first catch-up reports it."""
    # Listen before taking the snapshot, so a change committed meanwhile is not missed.
    missed: list[Change] = []
    subscription = store.bus.subscribe(box.id, missed.append)
    try:
        snapshot = await store.snapshot(box.id)
    finally:
        subscription.close()
    selected = SelectedMailbox(snapshot, box.name, readonly)
    for event in missed:
        selected.hear(event)
    return selected, snapshot


@dataclass(slots=True)
class LiveSearch:
    """A SEARCH or SORT RETURN (UPDATE) result kept live (RFC 5267 §4.3, ext/context.py)."""

    uid: bool  # UID SEARCH/SORT: the updates name UIDs, else sequence numbers
    ordered: bool  # SORT: ADDTO gives each run its position in the sort order
    refresh: Callable[[], Awaitable[list[int]]]  # the result's UIDs now, in its order
    result: list[int]


class SelectedMailbox:
    __slots__ = (
        "_pending_expunges",
        "_reported",
        "_subscription",
        "_watcher",
        "dirty",
        "keywords",
        "live",
        "mailbox_id",
        "modseq",
        "name",
        "readonly",
        "recent",
        "recent_from",
        "saved",
        "uids",
        "uidvalidity",
    )

    def __init__(self, snapshot: Snapshot, name: str, readonly: bool) -> None:
        box = snapshot.mailbox
        self.mailbox_id = box.id
        self.name = name
        self.readonly = readonly
        self.uidvalidity = box.uidvalidity
        self.uids: array[int] = snapshot.uids
        self.modseq = box.highestmodseq
        self.keywords = box.keywords
        self.dirty = False
        self._subscription: Subscription | None = None
        self._watcher: Watcher | None = None
        # Expunged by others while we could not say so (RFC 3501 §7.4.1); still numbered.
        # Made when first needed: most sessions never need them, and an empty set is 216 bytes.
        self._pending_expunges: set[int] | None = None
        # FETCH (FLAGS) this session already sent for its own STORE: uid -> modseq.
        self._reported: dict[int, int] | None = None
        # UID ranges that are \Recent in this session (RFC 3501 §2.3.2): claimed from the store
        # by SELECT and by each catch-up that finds new mail, so that one session, on any node,
        # sees each new message as recent; EXAMINE only looks. None: none (most sessions).
        self.recent: list[tuple[int, int]] | None = None
        # New mail a catch-up found, from this UID on, still to be claimed (see catch_up).
        self.recent_from: int | None = None
        # RFC 5182: the UIDs the last SEARCH RETURN (SAVE) found, as ranges; "$" names them.
        # A new selection starts with none, which "$" reads as the empty set (§2.1).
        self.saved: tuple[tuple[int, int], ...] = ()
        # RFC 5267 §4.3: SEARCH/SORT RETURN (UPDATE) results kept live, by tag; they end with
        # the selection. None: none (most sessions).
        self.live: dict[str, LiveSearch] | None = None

    # ---------------------------------------------------------------- numbering

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def last_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def uid_ranges(self, sequence: SequenceSet, by_uid: bool) -> list[tuple[int, int]]:
        """The UID ranges a sequence set names, limited to messages this session knows of."""
        if sequence.saved:
            # RFC 5182 §2.1: "$" names the saved UIDs in FETCH and UID FETCH alike; expunged
            # ones simply match nothing.
            return list(self.saved)
        if by_uid:
            last = self.last_uid
            # RFC 3501 §9: "*" is the largest UID in use; UIDs we do not know are ignored.
            return [(lo, min(hi, last)) for lo, hi in sequence.resolve(last) if lo <= last]
        count = len(self.uids)
        ranges = sequence.resolve(count)
        if not count or any(lo < 1 or hi > count for lo, hi in ranges):
            raise bad("Invalid message sequence number", "CLIENTBUG")
        return [(self.uids[lo - 1], self.uids[hi - 1]) for lo, hi in ranges]

    # ---------------------------------------------------------------- \Recent

    async def take_recent(self, store: Store, recent_uid: int) -> None:
        """Make the messages from `recent_uid` (the mailbox's first unclaimed UID, as last read)
        to the last one this view knows recent here: claimed from the store when the mailbox
        is selected read-write (nothing to write when there is nothing to claim), looked at
        only under EXAMINE (RFC 3501 §6.3.2: EXAMINE does not take \\Recent away)."""
        last = self.last_uid
        if recent_uid > last:
            return
        if self.readonly:
            self._add_recent(recent_uid, last)
            return
        claimed = await store.claim_recent(self.mailbox_id, last)
        if claimed is not None:
            self._add_recent(*claimed)

    async def recent_after_exists(self, store: Store) -> bytes:
        """After a catch-up that found new mail (recent_from set): claim it and say RECENT."""
        recent_from, self.recent_from = self.recent_from, None
        if recent_from is not None:
            await self.take_recent(store, recent_from)
        return b"%d RECENT" % self.recent_count

    def drop_recent(self) -> None:
        """The session enabled IMAP4rev2 with the mailbox selected: it has no \\Recent from
        now on (what it claimed stays claimed: no other session sees those as recent)."""
        self.recent = None
        self.recent_from = None

    def _add_recent(self, first: int, last: int) -> None:
        ranges = self.recent
        if ranges is None:
            self.recent = [(first, last)]
        elif ranges[-1][1] + 1 >= first:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((first, last))

    def is_recent(self, uid: int) -> bool:
        ranges = self.recent
        return ranges is not None and any(lo <= uid <= hi for lo, hi in ranges)

    def with_recent(self, uid: int, flags: tuple[str, ...]) -> tuple[str, ...]:
        """A message's flags as this session reports them: \\Recent first where it applies."""
        return ("\\Recent", *flags) if self.is_recent(uid) else flags

    @property
    def recent_count(self) -> int:
        if not self.recent:
            return 0
        uids = self.uids
        return sum(
            bisect.bisect_right(uids, hi) - bisect.bisect_left(uids, lo) for lo, hi in self.recent
        )

    @property
    def expunges_pending(self) -> bool:
        """Whether messages expunged meanwhile are still numbered, not yet told."""
        return bool(self._pending_expunges)

    @property
    def needs_catch_up(self) -> bool:
        return self.dirty or bool(self._pending_expunges)

    def note_reported(self, uid: int, modseq: int) -> None:
        if self._reported is None:
            self._reported = {}
        self._reported[uid] = modseq

    def forget(self, uids: Sequence[int], *, vanished: bool = False) -> list[bytes]:
        """Drop expunged UIDs; returns the untagged responses that say so: an EXPUNGE per
        message, highest number first so that each is right at the moment it is read, or
        with QRESYNC enabled one VANISHED naming the UIDs (RFC 7162 §3.2.10)."""
        gone = set(uids)
        removed = [(i + 1, uid) for i, uid in enumerate(self.uids) if uid in gone]
        if removed:
            self.uids = array("I", (u for u in self.uids if u not in gone))
        if self._pending_expunges:
            self._pending_expunges -= gone
        if vanished:
            return [b"VANISHED " + uid_set(uid for _, uid in removed)] if removed else []
        return [b"%d EXPUNGE" % seq for seq, _ in reversed(removed)]

    def vanished_earlier(self, changes: Changes, known: Sequence[tuple[int, int]]) -> bytes:
        """The UIDs within `known` that left the mailbox after the MODSEQ `changes` answers
        for and that this session no longer counts, as a set for VANISHED (EARLIER) (RFC 7162
        §3.2.5.2, §3.2.6). Where the records of that time are forgotten, every UID below
        UIDNEXT that is not present is named, as the RFC allows."""
        if changes.present is None:
            return uid_set(
                uid
                for uid in changes.expunged
                if any(lo <= uid <= hi for lo, hi in known) and self.seq_of(uid) is None
            )
        keep = sorted(changes.present.union(self.uids))
        top = changes.uidnext - 1
        gaps: list[bytes] = []
        for lo, hi in known:
            hi = min(hi, top)
            i = bisect.bisect_left(keep, lo)
            while lo <= hi:
                end = keep[i] - 1 if i < len(keep) and keep[i] <= hi else hi
                if end >= lo:
                    gaps.append(b"%d" % lo if end == lo else b"%d:%d" % (lo, end))
                lo = end + 2
                i += 1
        return b",".join(gaps)

    # ---------------------------------------------------------------- listening

    def listen(self, store: Store, watcher: Watcher) -> None:
        """Hear of every commit to this mailbox until stop_listening(): each makes the view
        dirty and tells the watcher."""
        self._watcher = watcher
        self._subscription = store.bus.subscribe(self.mailbox_id, self.hear)

    def stop_listening(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        self._watcher = None

    def hear(self, event: Change) -> None:
        """A change event from the store; news unless this view has caught up past it (an
        event's MODSEQ 0 means "check": events may have been missed)."""
        if event.mailbox_id != self.mailbox_id:
            return
        if isinstance(event, MailboxRenamed):
            # Renamed by any session: DELETE of the new name means this mailbox.
            self.name = event.name
        if event.modseq and event.modseq <= self.modseq:
            return
        self.dirty = True
        if self._watcher is not None:
            self._watcher.mailbox_changed()

    # ---------------------------------------------------------------- catching up

    async def catch_up(
        self,
        store: Store,
        *,
        expunges_ok: bool,
        condstore: bool,
        vanished: bool,
        recent: bool = True,
        flags: bool = True,
    ) -> list[bytes]:
        """Untagged responses (without "* ") telling the client what changed since last time.
        `recent`: the session has \\Recent (IMAP4rev1; an IMAP4rev2 one neither claims nor
        hears of it). Without `flags`, other sessions' flag changes are not told (NOTIFY
        without FlagChange for the selected mailbox, RFC 5465 §5.1)."""
        lines: list[bytes] = []
        self.dirty = False
        changes = await store.changes_since(self.mailbox_id, self.modseq)
        if not changes.exists:
            raise MailboxGone(self.name)
        known_last = self.last_uid
        fresh: list[int] = []
        reported = self._reported or {}
        pending = self._pending_expunges or set()
        for entry in changes.changed:
            if entry.uid > known_last:
                fresh.append(entry.uid)
                continue
            if not flags or reported.get(entry.uid) == entry.modseq:
                continue
            seq = self.seq_of(entry.uid)
            if seq is None or entry.uid in pending:
                continue
            lines.append(
                flags_fetch(
                    seq,
                    self.with_recent(entry.uid, entry.flags),
                    uid=entry.uid,
                    modseq=entry.modseq if condstore else None,
                )
            )
        self._reported = None
        gone = set(changes.expunged) & set(self.uids) if changes.expunged else set()
        if changes.present is not None:
            gone.update(uid for uid in self.uids if uid not in changes.present)
        if expunges_ok:
            lines.extend(self.forget(sorted(gone | pending), vanished=vanished))
            self._pending_expunges = None
        elif gone:
            self._pending_expunges = pending | gone
        if fresh:
            self.uids.extend(fresh)
            lines.append(b"%d EXISTS" % len(self.uids))
            if recent and self.readonly:
                await self.take_recent(store, max(changes.recent_uid, fresh[0]))
                lines.append(b"%d RECENT" % self.recent_count)
            elif recent:
                # Claimed by recent_after_exists() once EXISTS is on its way: the claim is a
                # durable write, and new mail must not wait for it.
                self.recent_from = max(changes.recent_uid, fresh[0])
        # New keywords are announced first: RFC 3501 §7.2.6, a FETCH may carry only flags the
        # session has been told of (and imaptest checks that it was).
        known = set(self.keywords)
        if any(k not in known for k in changes.keywords):
            self.keywords = (
                *changes.keywords,
                *(k for k in self.keywords if k not in changes.keywords),
            )
            lines[:0] = self.flags_lines()
        self.modseq = max(self.modseq, changes.highestmodseq)
        return lines

    def unknown_keywords(self, flags: tuple[str, ...]) -> bool:
        """Whether `flags` has a keyword this session has not been told of (cheap: flags of a
        message are few, and so, mostly, are a mailbox's keywords)."""
        keywords = self.keywords
        return any(f not in keywords and not f.startswith("\\") for f in flags)

    def announce_keywords(self, flags: Iterable[str]) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS to send before a FETCH that carries keywords among `flags`
        that this session has not been told of (RFC 3501 §7.2.6); nothing if there are none.
        A keyword another session added reaches this one here or at its next catch-up."""
        known = set(self.keywords)
        new = sorted({f for f in flags if f not in known and not f.startswith("\\")})
        if not new:
            return []
        self.keywords = (*self.keywords, *new)
        return self.flags_lines()

    def flags_lines(self) -> list[bytes]:
        flags = SYSTEM_FLAGS + self.keywords
        permanent = () if self.readonly else (*flags, "\\*")
        return [
            b"FLAGS " + flag_list(flags),
            b"OK [PERMANENTFLAGS " + flag_list(permanent) + b"] Flags permitted",
        ]
