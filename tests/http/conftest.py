"""Fixtures for the HTTP API tests: SDK clients with organization, pod and inbox keys on the
shared server (each test makes its own pods and inboxes)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.harness import Server
from tests.http.sdk import Api


@pytest.fixture
def apis(server: Server) -> Iterator[Callable[[str], Api]]:
    """SDK clients with the given key, closed when the test ends."""
    opened: list[Api] = []

    def make(key: str) -> Api:
        opened.append(Api(server, key))
        return opened[-1]

    yield make
    for api in opened:
        api.close()


@pytest.fixture
def org(server: Server, apis: Callable[[str], Api]) -> Api:
    """An organization key's client; the test domain is hosted by then."""
    server.account()  # the first inbox of example.test adds the domain
    return apis(server.org_key())


@pytest.fixture
def pod(org: Api) -> str:
    """A new, empty pod of this test's own."""
    name = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=name)
    return name
