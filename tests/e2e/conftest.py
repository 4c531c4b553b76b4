"""Fixtures of the end-to-end tests that run `mailgate serve` processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.harness import Loop, postgres


@pytest.fixture
def database(backend: str) -> Iterator[str]:
    """ "" (SQLite in each node's data directory) or a fresh PostgreSQL database's URL."""
    pg = postgres()
    if backend != "postgres" or pg is None:
        yield ""
        return
    name = f"mailgate_e2e_{uuid.uuid4().hex[:12]}"
    Loop.get().run(pg.create(name))
    try:
        yield pg.database_url(name)
    finally:
        Loop.get().run(pg.drop(name))
