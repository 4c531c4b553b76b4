"""Fixtures for the IMAP command tests: logged-in transcript sessions on the shared server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.harness import Account, Server
from tests.transcript import Transcript


@pytest.fixture
def sessions(server: Server) -> Iterator[Callable[[Account], Transcript]]:
    """Open logged-in sessions (over TLS) that are closed when the test ends."""
    opened: list[Transcript] = []

    def open_session(account: Account) -> Transcript:
        session = Transcript.login(server, account)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


@pytest.fixture
def imap(sessions: Callable[[Account], Transcript], account: Account) -> Transcript:
    """A session logged in to `account`, nothing selected."""
    return sessions(account)
