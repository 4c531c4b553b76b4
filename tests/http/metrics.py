"""Reading a test server's GET /metrics the way Prometheus does, and asking the API through a
PROXY-protocol balancer as a client on another machine."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Server

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples, by name and labels."""

    samples: dict[tuple[str, Labels], float]
    families: frozenset[str]

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a series not (yet) exposed."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, tuple(sorted(labels.items()))) in self.samples

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, frozenset(families))


def scrape(server: Server) -> Scrape:
    """GET /metrics from 127.0.0.1, as a Prometheus beside the node asks."""
    response = httpx.get(f"{server.api_url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def via_balancer(
    server: Server, path: str, client: str, *, key: str | None = None, method: str = "GET"
) -> Answer:
    """`method path` on the API as `client` (any IPv4 address) asks it, through a balancer on
    127.0.0.1 that sends a PROXY v1 header: the server sees `client` as the request's peer."""
    port = server.port("api")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n".encode())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.sock = sock  # the request follows the header on the same connection
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
