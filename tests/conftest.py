"""Fixtures: real servers on both storage backends.

Every test that takes `server` (or `make_server`) runs once on SQLite and once on PostgreSQL;
the PostgreSQL runs are skipped, with the reason, when MAILGATE_TEST_DATABASE_URL is unset.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dnsserver import ZoneServer
from tests.harness import PG_URL_ENV, Account, Server, postgres, running_server, settings_for
from tests.smtppeer import SMTPPeer

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and postgres() is None:
        pytest.skip(f"{PG_URL_ENV} is not set: the PostgreSQL runs are skipped")
    return str(request.param)


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per backend, shared: tests use their own inboxes (see `account`)."""
    settings, database = settings_for(tmp_path_factory.mktemp(f"shared-{backend}"), backend)
    shared = Server(settings, backend, database)
    yield shared
    shared.stop()


@pytest.fixture
def make_server(backend: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a dedicated server with some settings changed, e.g. smtp={"max_recipients": 2}."""
    stack: list[Any] = []

    def make(**sections: dict[str, Any]) -> Server:
        directory = tmp_path / f"server{len(stack)}"
        directory.mkdir()
        context = running_server(directory, backend, **sections)
        stack.append(context)
        return context.__enter__()

    yield make
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def account(server: Server) -> Account:
    return server.account()


@pytest.fixture
def other(server: Server) -> Account:
    return server.account()


def make_message(
    sender: str,
    to: str | list[str],
    subject: str = "Hello",
    body: str = "Hello there.\r\n",
    extra: dict[str, str] | None = None,
) -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    recipients = [to] if isinstance(to, str) else to
    headers = {
        "From": sender,
        "To": ", ".join(recipients),
        "Subject": subject,
        "Date": email.utils.formatdate(localtime=False),
        "Message-ID": email.utils.make_msgid(domain="example.test"),
        **(extra or {}),
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n" + body).encode()


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    """A DNS server on loopback whose records the test sets."""
    with ZoneServer() as dns:
        yield dns


@pytest.fixture
def peer() -> Iterator[SMTPPeer]:
    """Another mail server on loopback (the MX the test's zone points at)."""
    with SMTPPeer() as started:
        yield started
