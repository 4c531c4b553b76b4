"""Load that goes on through crashes, and the books it keeps: the harness of the crash-safety
tests (tests/e2e/test_crash_safety.py) and, in its long form, of the benchmark's `crash` phase
(bench/crash.py).

Client threads submit and APPEND as fast as the server lets them while something else kills
the server with SIGKILL and starts it again (`kill_loop`), or cuts it off its database
(`outage_loop`). Each client writes down every attempt under a Message-ID of its own: whether
it was acknowledged (the 250 after DATA, an APPEND's OK with its APPENDUID) and, if not, what
came instead. A lost connection, a 4xx or a NO means "not acknowledged": the message may have
been committed all the same (the commit came, the reply did not), so it may be stored, but at
most once. A client that loses its connection connects again; retrying is a new attempt with a
new Message-ID, so nothing acknowledged can hide behind a retry.

An observer watches the shared INBOX meanwhile as a mail client would (SELECT, then the new
UIDs), and `verdict` holds every mailbox as IMAP lists it at the end, and every message the
remote SMTP peer received, against the books.
"""

from __future__ import annotations

import bisect
import contextlib
import imaplib
import itertools
import random
import re
import smtplib
import ssl
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import make_message
from tests.harness import Account

HOST = "127.0.0.1"
TIMEOUT = 15.0  # a client's socket timeout: a server that hangs is a failure, not a crash
PAUSE = 0.05  # between connection attempts while the server is down
OBSERVE_EVERY = 0.1  # the observer's polls
# A remote peer's 250 and the commit that records it cannot be one atomic step: a SIGKILL
# between them sends the message again after the restart (RFC 5321 §6.3 accepts the
# duplicate rather than risk a loss). A second copy is put down to that only if a kill came
# this soon after the copy before it.
RESEND_WINDOW = 2.0

Ports = Callable[[], Mapping[str, int]]  # the server's listening ports now, by listener name

LOCAL, APPEND, OUTBOUND = "local", "append", "outbound"  # Attempt.kind
_UID = re.compile(rb"\bUID (\d+)")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.I | re.M)
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


@dataclass(frozen=True)
class Attempt:
    """One message a client tried to store."""

    kind: str  # LOCAL (submitted to a hosted inbox), APPEND, OUTBOUND (for the world)
    client: str
    message_id: str
    sender: str  # the submitting inbox (whose Sent keeps a copy) or the appending one
    recipient: str
    acknowledged: bool
    reply: str  # "250" / "OK", or what came instead (a reply, or the exception)
    started: float  # time.monotonic()
    ended: float
    uidvalidity: int | None = None  # APPENDUID
    uid: int | None = None


@dataclass
class Load:
    """The clients, from start() until stop(). `ports` says where the server is now."""

    ports: Ports
    tls: ssl.SSLContext
    clients: list[Client] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)  # a client thread's unexpected error

    def submitter(self, account: Account, recipient: str, kind: str = LOCAL) -> None:
        """`recipient` may hold "{n}", the attempt's number: a recipient of its own each."""
        self.clients.append(Submitter(self, f"{kind}{len(self.clients)}", account, recipient, kind))

    def appender(self, account: Account) -> None:
        self.clients.append(Appender(self, f"append{len(self.clients)}", account))

    def observer(self, account: Account) -> Observer:
        watcher = Observer(self, f"observer{len(self.clients)}", account)
        self.clients.append(watcher)
        return watcher

    def start(self) -> None:
        for client in self.clients:
            client.start()

    def stop(self, timeout: float = 60) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for client in self.clients:
            client.join(max(0.0, deadline - time.monotonic()))
        stuck = [c.name for c in self.clients if c.is_alive()]
        assert not stuck, f"clients still running {timeout}s after being stopped: {stuck}"

    @property
    def attempts(self) -> list[Attempt]:
        return [a for c in self.clients for a in c.attempts]

    def acknowledged_since(self, moment: float) -> set[str]:
        """The writing clients that have had something acknowledged after `moment`."""
        return {
            c.name
            for c in self.clients
            if any(a.acknowledged and a.ended > moment for a in c.attempts)
        }

    @property
    def observers(self) -> list[Observer]:
        return [c for c in self.clients if isinstance(c, Observer)]

    @property
    def writers(self) -> set[str]:
        return {c.name for c in self.clients if not isinstance(c, Observer)}


class Client(threading.Thread):
    """Connects (again whenever the connection is lost) and takes steps until stopped."""

    def __init__(self, load: Load, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.load = load
        self.attempts: list[Attempt] = []
        self.connections = 0  # sessions opened (1 if one session lasted the whole run)
        self.refusals: list[str] = []  # logins refused, e.g. while the database is away
        self._serial = 0

    def run(self) -> None:
        try:
            while not self.load.stopping.is_set():
                session = self._connect()
                if session is None:
                    self.load.stopping.wait(PAUSE)
                    continue
                self.connections += 1
                try:
                    while not self.load.stopping.is_set() and self.step(session):
                        pass
                finally:
                    self.close(session)
        except Exception:
            self.load.failures.append(f"{self.name}: {traceback.format_exc()}")

    def _connect(self) -> Any | None:
        try:
            return self.connect()
        except (OSError, imaplib.IMAP4.error) as exc:  # smtplib's errors are OSErrors
            if not _is_connection_loss(exc):
                self.refusals.append(_describe(exc))
            return None

    def message_id(self) -> str:
        self._serial += 1
        return f"<{self.name}.{self._serial}.{uuid.uuid4().hex[:10]}@crash.test>"

    def connect(self) -> Any:
        raise NotImplementedError

    def step(self, session: Any) -> bool:
        """One attempt; False when the session is gone."""
        raise NotImplementedError

    def close(self, session: Any) -> None:
        raise NotImplementedError


class Submitter(Client):
    """SMTP submission over implicit TLS, one message after another on one session."""

    def __init__(self, load: Load, name: str, account: Account, recipient: str, kind: str) -> None:
        super().__init__(load, name)
        self.account = account
        self.recipient = recipient
        self.kind = kind

    def connect(self) -> smtplib.SMTP_SSL:
        port = self.load.ports()["submissions"]
        client = smtplib.SMTP_SSL(HOST, port, context=self.load.tls, timeout=TIMEOUT)
        try:
            client.login(self.account.address, self.account.key)
        except BaseException:
            self.close(client)
            raise
        return client

    def step(self, session: smtplib.SMTP_SSL) -> bool:
        message_id = self.message_id()
        sender = self.account.address
        recipient = self.recipient.format(n=self._serial)
        message = make_message(
            sender, recipient, f"{self.name} {self._serial}", extra={"Message-ID": message_id}
        )
        started = time.monotonic()
        alive = True
        try:
            session.sendmail(sender, [recipient], message)
            reply = "250"
        except smtplib.SMTPResponseException as exc:  # a reply to MAIL or DATA
            reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            alive = exc.smtp_code != 421
            self.load.stopping.wait(PAUSE)  # "try again later": not at once
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            reply = f"{code} {_text(text)}"
            self.load.stopping.wait(PAUSE)
        except OSError as exc:  # the connection is gone (smtplib's own errors included)
            reply, alive = _describe(exc), False
        self.attempts.append(
            Attempt(
                self.kind,
                self.name,
                message_id,
                sender,
                recipient,
                reply == "250",
                reply,
                started,
                time.monotonic(),
            )
        )
        return alive

    def close(self, session: smtplib.SMTP_SSL) -> None:
        with contextlib.suppress(OSError):
            session.close()


class Appender(Client):
    """IMAP APPEND to its own INBOX, one message after another on one session."""

    def __init__(self, load: Load, name: str, account: Account) -> None:
        super().__init__(load, name)
        self.account = account

    def connect(self) -> imaplib.IMAP4_SSL:
        return imap_login(self.load, self.account)

    def step(self, session: imaplib.IMAP4_SSL) -> bool:
        message_id = self.message_id()
        owner = self.account.address
        message = make_message(
            owner, owner, f"{self.name} {self._serial}", extra={"Message-ID": message_id}
        )
        started = time.monotonic()
        uidvalidity = uid = None
        alive = True
        try:
            status, data = session.append("INBOX", None, None, message)
            line = data[0] if data and isinstance(data[0], bytes) else b""
            reply = status if status == "OK" else f"{status} {_text(line)}"
            if status == "OK":
                m = _APPENDUID.search(line)
                assert m is not None, f"APPEND OK without APPENDUID: {line!r}"
                uidvalidity, uid = int(m.group(1)), int(m.group(2))
            else:
                self.load.stopping.wait(PAUSE)  # "try again later": not at once
        except imaplib.IMAP4.abort as exc:  # the connection is gone
            reply, alive = _describe(exc), False
        except imaplib.IMAP4.error as exc:  # imaplib raises for BAD
            reply, alive = f"BAD {exc}", False
        except OSError as exc:
            reply, alive = _describe(exc), False
        self.attempts.append(
            Attempt(
                APPEND,
                self.name,
                message_id,
                owner,
                owner,
                reply == "OK",
                reply,
                started,
                time.monotonic(),
                uidvalidity,
                uid,
            )
        )
        return alive

    def close(self, session: imaplib.IMAP4_SSL) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            session.shutdown()


class Observer(Client):
    """A mail client watching an INBOX: SELECT on every (re)connect, then the new UIDs.

    What it sees must hold for good: a UIDVALIDITY that never changes, UIDs that come one
    after another with no gap (nothing is expunged here), and a UID that names the same
    message every time it is seen (and at the end)."""

    def __init__(self, load: Load, name: str, account: Account) -> None:
        super().__init__(load, name)
        self.account = account
        self.seen: dict[int, str] = {}
        self.high = 0  # the highest UID seen
        self.uidvalidities: list[int] = []
        self.problems: list[str] = []
        self.polls = 0

    def connect(self) -> imaplib.IMAP4_SSL:
        client = imap_login(self.load, self.account)
        status, _ = client.select("INBOX", readonly=True)
        if status != "OK":
            self.close(client)
            raise imaplib.IMAP4.error(f"EXAMINE INBOX: {status}")
        validity = int(client.response("UIDVALIDITY")[1][0])
        if self.uidvalidities and validity != self.uidvalidities[0]:
            self.problems.append(f"UIDVALIDITY changed from {self.uidvalidities[0]} to {validity}")
        self.uidvalidities.append(validity)
        return client

    def step(self, session: imaplib.IMAP4_SSL) -> bool:
        try:
            found = fetch_message_ids(session, f"{self.high + 1}:*")
        except (imaplib.IMAP4.abort, OSError):
            return False
        except imaplib.IMAP4.error:  # NO: the store is away for a moment
            self.load.stopping.wait(OBSERVE_EVERY)
            return True
        self.polls += 1
        for uid, message_id in found:
            known = self.seen.get(uid)
            if known is not None and known != message_id:
                self.problems.append(f"UID {uid} was {known}, is now {message_id}")
            elif known is None:
                if uid != self.high + 1:
                    self.problems.append(f"saw UID {uid} right after UID {self.high}")
                self.seen[uid] = message_id
                self.high = max(self.high, uid)
        self.load.stopping.wait(OBSERVE_EVERY)
        return True

    def close(self, session: imaplib.IMAP4_SSL) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            session.shutdown()


def imap_login(load: Load, account: Account) -> imaplib.IMAP4_SSL:
    port = load.ports()["imaps"]
    client = imaplib.IMAP4_SSL(HOST, port, ssl_context=load.tls, timeout=TIMEOUT)
    try:
        client.login(account.address, account.key)
    except BaseException:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.shutdown()
        raise
    return client


def fetch_message_ids(client: imaplib.IMAP4_SSL, uids: str) -> list[tuple[int, str]]:
    """(UID, Message-ID) of the messages in `uids` of the selected mailbox."""
    status, data = client.uid("FETCH", uids, "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    if status != "OK":
        raise imaplib.IMAP4.error(f"UID FETCH: {status} {data!r}")
    found = []
    for item in data:
        if not isinstance(item, tuple):
            continue  # the ")" closing a FETCH, or None for an empty mailbox
        uid = _UID.search(item[0])
        assert uid is not None, f"FETCH without UID: {item!r}"
        message_id = _MESSAGE_ID.search(item[1])
        found.append((int(uid.group(1)), message_id.group(1).decode() if message_id else ""))
    return found


@dataclass(frozen=True)
class Listing:
    """A mailbox as IMAP shows it."""

    uidvalidity: int
    uidnext: int
    entries: list[tuple[int, str]]  # (UID, Message-ID) in the server's order


def read_mailbox(load: Load, account: Account, mailbox: str = "INBOX") -> Listing:
    client = imap_login(load, account)
    try:
        status, data = client.select(mailbox, readonly=True)
        assert status == "OK", f"EXAMINE {mailbox}: {data!r}"
        validity = int(client.response("UIDVALIDITY")[1][0])
        uidnext = int(client.response("UIDNEXT")[1][0])
        return Listing(validity, uidnext, fetch_message_ids(client, "1:*"))
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()


# -------------------------------------------------------------------- what is done to the server


@dataclass
class Disruptions:
    """What was done to the server, on time.monotonic()."""

    seed: int
    at: list[float] = field(default_factory=list)  # each SIGKILL, or each cut
    waits: list[float] = field(default_factory=list)  # the random delays drawn
    recovery: list[float] = field(default_factory=list)  # SIGKILL -> serving again
    ended: list[float] = field(default_factory=list)  # each outage's end


def kill_loop(
    seed: int,
    kills: int,
    kill: Callable[[], None],
    start: Callable[[], None],
    uptime: tuple[float, float],
    report: Callable[[str], None] = lambda _: None,
) -> Disruptions:
    """SIGKILL the server `kills` times, each after a random time up (drawn from `seed`), and
    start it again on the same data; `start` returns once it serves."""
    rng = random.Random(seed)
    done = Disruptions(seed)
    for k in range(kills):
        wait = rng.uniform(*uptime)
        done.waits.append(wait)
        time.sleep(wait)  # the test's input: a random moment to crash at
        killed = time.monotonic()
        kill()
        done.at.append(killed)
        start()
        done.recovery.append(time.monotonic() - killed)
        report(
            f"kill {k + 1}/{kills} after {wait:.3f} s up; "
            f"serving again in {done.recovery[-1]:.2f} s"
        )
    return done


def outage_loop(
    seed: int,
    outages: int,
    cut: Callable[[], None],
    restore: Callable[[], None],
    between: tuple[float, float],
    length: tuple[float, float],
) -> Disruptions:
    """Cut the server off its database `outages` times, each for a random time."""
    rng = random.Random(seed)
    done = Disruptions(seed)
    for _ in range(outages):
        up, down = rng.uniform(*between), rng.uniform(*length)
        done.waits += [up, down]
        time.sleep(up)  # the test's input, as in kill_loop
        done.at.append(time.monotonic())
        cut()
        time.sleep(down)
        restore()
        done.ended.append(time.monotonic())
    return done


# -------------------------------------------------------------------- the verdict


@dataclass
class Verdict:
    """What the books and the mailboxes say together."""

    attempts: int = 0
    acknowledged: int = 0
    stored_unacknowledged: int = 0  # committed, but the reply never came: stored once
    losses: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # stored, never attempted there
    torn: list[str] = field(default_factory=list)  # one half of a commit without the other
    uids: list[str] = field(default_factory=list)
    remote_arrivals: int = 0
    resent_after_kill: list[str] = field(default_factory=list)  # the RESEND_WINDOW cases

    @property
    def problems(self) -> list[str]:
        return self.losses + self.duplicates + self.strays + self.torn + self.uids

    replies: Counter[str] = field(default_factory=Counter)  # unacknowledged: what instead

    def summary(self) -> str:
        return (
            f"{self.attempts} attempts, {self.acknowledged} acknowledged, "
            f"{self.stored_unacknowledged} stored without acknowledgement; "
            f"{len(self.losses)} lost, {len(self.duplicates)} duplicated, {len(self.strays)} "
            f"strays, {len(self.torn)} torn, {len(self.uids)} UID problems; "
            f"{self.remote_arrivals} at the remote peer, {len(self.resent_after_kill)} of them "
            "resent after a kill between its 250 and the commit recording it; instead of an "
            f"acknowledgement: {dict(self.replies.most_common(6))}"
        )


def verdict(
    attempts: Sequence[Attempt],
    mailboxes: Mapping[tuple[str, str], Listing],
    arrivals: Iterable[tuple[float, bytes]],
    kills: Sequence[float] = (),
    observers: Sequence[Observer] = (),
    recorded: Counter[str] | None = None,
) -> Verdict:
    """Hold the mailboxes ((address, mailbox) -> Listing, every mailbox the attempts went to)
    and the remote peer's arrivals ((time.monotonic() when the peer read its DATA command,
    message)) against the attempts. The peer may take the last bytes in after the sender was
    killed, but DATA came before the 354 that let the sender send them, so before any kill
    that can make it send the message again.

    A second copy at the peer needs a kill between the two, soon after the first; with
    `recorded` (recorded_deliveries of the server's log, each outbound attempt to a recipient
    of its own), the server must also have recorded at most one delivery of it: a copy sent
    after its delivery was recorded is a duplicate, however soon a kill came."""
    out = Verdict(attempts=len(attempts), acknowledged=sum(a.acknowledged for a in attempts))
    out.replies.update(a.reply[:40] for a in attempts if not a.acknowledged)
    expected: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for a in attempts:
        for where in _places(a):
            expected[where].append(a)
    stored: dict[tuple[str, str], Counter[str]] = {}
    for where, listing in mailboxes.items():
        counts = Counter(message_id for _, message_id in listing.entries)
        stored[where] = counts
        _check_mailbox(out, where, listing, counts, expected.get(where, []))
    missing = sorted(set(expected) - set(mailboxes))
    assert not missing, f"mailboxes not read: {missing}"

    unacknowledged_stored: set[str] = set()
    for a in attempts:
        places = _places(a)
        here = [stored[w][a.message_id] for w in places]
        if not a.acknowledged and any(here):
            unacknowledged_stored.add(a.message_id)
        if a.kind == LOCAL and len(set(map(bool, here))) > 1:
            out.torn.append(f"{a.message_id} in {dict(zip(places, here, strict=True))}")
    out.stored_unacknowledged = len(unacknowledged_stored)

    _check_remote(out, attempts, stored, arrivals, kills, recorded)
    for observer in observers:
        listing = mailboxes[(observer.account.address, "INBOX")]
        final = dict(listing.entries)
        out.uids += [f"{observer.name}: {p}" for p in observer.problems]
        if any(v != listing.uidvalidity for v in observer.uidvalidities):
            out.uids.append(f"{observer.name} saw UIDVALIDITY {set(observer.uidvalidities)}")
        for uid, message_id in observer.seen.items():
            if final.get(uid) != message_id:
                out.uids.append(
                    f"{observer.name} saw UID {uid} as {message_id}, now {final.get(uid)}"
                )
    return out


_RECORDED = re.compile(r"outbound: \S+ -> (\S+) via .*: 250 ")


def recorded_deliveries(log: str) -> Counter[str]:
    """Recipient -> how many times the server's log says it recorded a delivery to it (the
    line comes after the commit that takes the recipient off the queue)."""
    return Counter(_RECORDED.findall(log))


def _places(a: Attempt) -> list[tuple[str, str]]:
    """The mailboxes an attempt's message goes to if it is stored: the recipient's INBOX (a
    hosted recipient's, or the appender's own), and the submitter's Sent."""
    inbox = [(a.recipient, "INBOX")] if a.kind in (LOCAL, APPEND) else []
    return inbox + ([(a.sender, "Sent")] if a.kind in (LOCAL, OUTBOUND) else [])


def _check_mailbox(
    out: Verdict,
    where: tuple[str, str],
    listing: Listing,
    counts: Counter[str],
    wanted: list[Attempt],
) -> None:
    name = f"{where[0]} {where[1]}"
    uids = [uid for uid, _ in listing.entries]
    if uids != list(range(1, len(uids) + 1)):
        out.uids.append(f"{name}: UIDs are not 1..{len(uids)} in order: {_runs(uids)}")
    if uids and listing.uidnext <= uids[-1]:
        out.uids.append(f"{name}: UIDNEXT {listing.uidnext} after UID {uids[-1]}")
    attempted = {a.message_id for a in wanted}
    for message_id, n in counts.items():
        if message_id not in attempted:
            out.strays.append(f"{name}: {message_id} (x{n}) was never sent here")
    for a in wanted:
        n = counts[a.message_id]
        if a.acknowledged and n == 0:
            out.losses.append(f"{name}: {a.message_id} acknowledged at {a.ended:.3f}, missing")
        elif n > 1:
            state = "acknowledged" if a.acknowledged else "unacknowledged"
            out.duplicates.append(f"{name}: {a.message_id} ({state}) stored {n} times")
    uid_of = {message_id: uid for uid, message_id in listing.entries}
    for a in wanted:
        if a.uid is None or a.message_id not in uid_of:
            continue
        if (a.uidvalidity, a.uid) != (listing.uidvalidity, uid_of[a.message_id]):
            out.uids.append(
                f"{name}: {a.message_id} got APPENDUID {a.uidvalidity} {a.uid}, is "
                f"{listing.uidvalidity} {uid_of[a.message_id]}"
            )
    # UIDs ascend in the order messages become visible: whatever was acknowledged before an
    # attempt began has a lower UID than the attempt's message, crashes in between or not.
    done = sorted(
        (a.ended, uid_of[a.message_id]) for a in wanted if a.acknowledged and a.message_id in uid_of
    )
    highest: list[int] = []
    for _, earlier in done:
        highest.append(max(earlier, highest[-1]) if highest else earlier)
    ends = [end for end, _ in done]
    for a in wanted:
        mine = uid_of.get(a.message_id)
        before = bisect.bisect_left(ends, a.started)
        if mine is not None and before and highest[before - 1] >= mine:
            out.uids.append(
                f"{name}: {a.message_id} got UID {mine}, not above UID {highest[before - 1]} "
                "acknowledged before it was sent"
            )


def _check_remote(
    out: Verdict,
    attempts: Sequence[Attempt],
    stored: Mapping[tuple[str, str], Counter[str]],
    arrivals: Iterable[tuple[float, bytes]],
    kills: Sequence[float],
    recorded: Counter[str] | None,
) -> None:
    times: dict[str, list[float]] = defaultdict(list)
    for when, data in arrivals:
        header = data.split(b"\r\n\r\n", 1)[0]
        m = _MESSAGE_ID.search(header)
        times[m.group(1).decode() if m else ""].append(when)
    out.remote_arrivals = sum(len(t) for t in times.values())
    remote = {a.message_id: a for a in attempts if a.kind == OUTBOUND}
    for message_id in sorted(set(times) - set(remote)):
        out.strays.append(f"remote peer: {message_id} was never submitted for it")
    for message_id, a in remote.items():
        at = sorted(times.get(message_id, []))
        queued = stored[(a.sender, "Sent")][message_id] > 0  # one commit with its queue row
        if (a.acknowledged or queued) and not at:
            state = "acknowledged" if a.acknowledged else "committed"
            out.losses.append(f"remote peer: {message_id} ({state}) never arrived")
        elif at and not queued:
            out.torn.append(f"remote peer: {message_id} arrived but is not in Sent")
        if recorded is not None and recorded[a.recipient] > 1:
            out.duplicates.append(
                f"remote peer: {message_id} to {a.recipient} recorded as delivered "
                f"{recorded[a.recipient]} times, and arrived {len(at)} times"
            )
        for first, again in itertools.pairwise(at):
            kill = next((k for k in kills if first <= k <= min(again, first + RESEND_WINDOW)), None)
            if kill is not None:
                out.resent_after_kill.append(
                    f"{message_id}: killed {kill - first:.3f} s after the peer's DATA"
                )
            else:
                out.duplicates.append(
                    f"remote peer: {message_id} arrived again {again - first:.3f} s later "
                    "with no kill in between"
                )


def _runs(uids: list[int]) -> str:
    """1,2,3,5,6 -> "1:3,5:6" (what a gap looks like, short)."""
    parts: list[str] = []
    for uid in uids:
        if parts and uid == int(parts[-1].split(":")[-1]) + 1:
            parts[-1] = f"{parts[-1].split(':')[0]}:{uid}"
        else:
            parts.append(str(uid))
    return ",".join(parts)[:300]


def refusal(reply: str) -> bool:
    """A reply that refuses (5xx, NO, BAD), rather than a lost connection or a 4xx."""
    return re.match(r"(5\d\d|NO|BAD)\b", reply) is not None


def _is_connection_loss(exc: BaseException) -> bool:
    if isinstance(exc, imaplib.IMAP4.abort | smtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"[:200]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
