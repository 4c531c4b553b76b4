"""What a command module may use of its session: the Session protocol, the session's states
(RFC 3501 §3), the Holder protocol of a command that keeps the session after its handler
returned (IDLE), and the Notifications protocol of NOTIFY (RFC 5465) in effect.

The server (server.py) implements Session. Command modules and the registry know only these
protocols, never the server: the server imports the command modules, and none imports it back.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from mailgate.auth import Authenticator, Principal
from mailgate.config import Settings
from mailgate.imap.mailbox_view import SelectedMailbox
from mailgate.store.api import Store
from mailgate.telemetry import Metrics


class State(enum.Flag):
    NOT_AUTHENTICATED = enum.auto()
    AUTHENTICATED = enum.auto()
    SELECTED = enum.auto()
    LOGOUT = enum.auto()


ANY = State.NOT_AUTHENTICATED | State.AUTHENTICATED | State.SELECTED
LOGGED_IN = State.AUTHENTICATED | State.SELECTED


class Holder(Protocol):
    """A command that holds the session after its handler returned (IDLE, RFC 2177). Until it
    lets go (sets ``s.holder`` back to None), the server hands it the client's lines, the
    sweeper's ticks (about once a second) and news that the selected mailbox changed."""

    def line_received(self, s: Session, line: bytes) -> None: ...

    def tick(self, s: Session, now: float) -> None: ...

    def mailbox_changed(self, s: Session) -> None: ...


class Notifications(Protocol):
    """What NOTIFY (RFC 5465) set for the session. The server tells it that the selected
    mailbox changed (when no holder took the news), that a command ended, and ticks it about
    once a second; catching up asks it whether flag changes are told and what to fetch for
    new messages."""

    @property
    def flag_changes(self) -> bool:
        """Whether other sessions' flag changes in the selected mailbox are told."""
        ...

    def mailbox_changed(self, s: Session) -> None: ...

    def command_done(self, s: Session) -> None: ...

    def tick(self, s: Session) -> None: ...

    async def new_messages(self, s: Session, after_uid: int) -> None:
        """The selected mailbox's messages above `after_uid` were just announced (EXISTS)."""
        ...

    def stop(self) -> None: ...


class Session(Protocol):
    """One client's session, as the command handlers see it."""

    session_state: State
    condstore: bool
    qresync: bool  # RFC 7162 §3.2.3: enabled with ENABLE QRESYNC
    utf8_accept: bool  # RFC 6855: enabled with ENABLE UTF8=ACCEPT
    rev2: bool  # RFC 9051: enabled with ENABLE IMAP4rev2
    # Run once the tagged reply is written (STARTTLS switches to TLS after its OK).
    after_reply: Callable[[], None] | None
    holder: Holder | None
    notifier: Notifications | None
    # The command in progress, if any (NOTIFY writes only between commands).
    running: asyncio.Task[None] | None

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def authenticator(self) -> Authenticator: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def principal(self) -> Principal | None: ...

    @property
    def selected(self) -> SelectedMailbox | None: ...

    @property
    def utf8(self) -> bool:
        """Mailbox names and quoted strings are UTF-8 (UTF8=ACCEPT or IMAP4rev2 enabled)."""
        ...

    @property
    def tls_active(self) -> bool: ...

    @property
    def client_ip(self) -> str: ...

    @property
    def closed(self) -> bool:
        """No more output: the server said BYE, or the connection is gone."""
        ...

    @property
    def output_paused(self) -> bool:
        """The client is not reading what was written."""
        ...

    def capability_list(self) -> list[bytes]: ...

    # Output is buffered per command and written in one go.

    def untagged(self, data: bytes) -> None: ...

    def send(self, data: bytes) -> None: ...

    def flush(self) -> None: ...

    async def drain(self, *, at_least: int = 0) -> None:
        """Write what is buffered (once there is `at_least` of it); wait while the client is
        not reading."""
        ...

    # Input: the command's own line-by-line exchange, and stopping the client's input.

    async def read_line(self) -> bytes: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    # State changes.

    def logged_in(self, principal: Principal) -> None: ...

    def select(self, selected: SelectedMailbox) -> None: ...

    def unselect(self) -> None: ...

    async def catch_up(self, *, expunges_ok: bool = True) -> None:
        """Tell the client what changed in the selected mailbox since it was last told."""
        ...

    def start_tls(self) -> None: ...

    @property
    def compressing(self) -> bool:
        """COMPRESS=DEFLATE is active (RFC 4978)."""
        ...

    def start_compression(self) -> None: ...

    def close(self, reason: bytes) -> None:
        """Say BYE and hang up."""
        ...

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run work for this session outside any command (IDLE's and NOTIFY's pushes), after
        the session's earlier background work; the next command waits for it."""
        ...
