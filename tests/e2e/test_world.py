"""Mail beyond the box: A sends to B through the outbound queue, DKIM-signed, and B's MX records
SPF, DKIM and DMARC verdicts; B's reply comes back the same way."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_message
from tests.e2e.world import World, drained, world
from tests.harness import Account, Server


@pytest.fixture
def two(backend: str, tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, backend) as w:
        yield w


def wait_for_inbox(
    server: Server, account: Account, count: int, timeout: float = 20
) -> list[bytes]:
    """The raw headers of the messages in INBOX once there are `count` (bounded wait)."""
    deadline = time.monotonic() + timeout
    client = server.imap_client(account)
    try:
        while True:
            status, data = client.select("INBOX", readonly=True)
            assert status == "OK"
            if int(data[0]) >= count:
                _, fetched = client.fetch("1:*", "(BODY.PEEK[HEADER])")
                return [part[1] for part in fetched if isinstance(part, tuple)]
            assert time.monotonic() < deadline, f"INBOX still has {int(data[0])} messages"
            client.noop()
            time.sleep(0.1)  # between polls of a bounded wait
    finally:
        client.logout()


def authentication_results(header: bytes, hostname: str) -> str:
    match = re.search(
        rb"^Authentication-Results: " + re.escape(hostname.encode()) + rb";(.*?)\r\n(?![ \t])",
        header,
        re.M | re.S,
    )
    assert match, header.decode(errors="replace")
    return re.sub(r"\s+", " ", match.group(1).decode())


def test_a_sends_to_b_signed_and_verified(two: World) -> None:
    alice = two.account(two.a, "alice")
    bob = two.account(two.b, "bob")
    with two.a.smtp_client(alice) as smtp:
        smtp.sendmail(alice.address, [bob.address], make_message(alice.address, bob.address))
    (header,) = wait_for_inbox(two.b, bob, 1)
    results = authentication_results(header, "mx.b.test")
    assert "spf=pass" in results
    assert re.findall(r"dkim=(\w+)", results) == ["pass", "pass"]
    assert "header.a=rsa-sha256" in results
    assert "header.a=ed25519-sha256" in results
    assert "dmarc=pass" in results
    # The queue empties once A has read B's 250 (B commits, and so shows the message, just before).
    drained(two.a)

    # And the reply comes back the same way.
    with two.b.smtp_client(bob) as smtp:
        smtp.sendmail(bob.address, [alice.address], make_message(bob.address, alice.address))
    (reply,) = wait_for_inbox(two.a, alice, 1)
    back = authentication_results(reply, "mx.a.test")
    assert "spf=pass" in back
    assert "dmarc=pass" in back
