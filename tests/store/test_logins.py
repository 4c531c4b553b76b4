"""Failed logins counted in the store, shared by every node: a name's failures in a row (a new
streak once the window has passed), an address's failures and names, a login clearing its
name's streak, two nodes (two stores, two throttles) adding up to one count and one ban."""

from __future__ import annotations

from collections.abc import Callable

from mailgate.auth import Authenticator, AuthFailed, LockedOut
from mailgate.config import AuthSettings
from mailgate.store.api import Store
from tests.store.conftest import count, run

WINDOW = 600


def test_failures_in_a_row_per_name_and_per_address(store: Store) -> None:
    first = run(store.login_failed("192.0.2.1", "a@example.test", 1000, WINDOW))
    second = run(store.login_failed("192.0.2.1", "a@example.test", 1001, WINDOW))
    other = run(store.login_failed("192.0.2.1", "b@example.test", 1002, WINDOW))
    elsewhere = run(store.login_failed("192.0.2.9", "a@example.test", 1003, WINDOW))
    assert (first.in_a_row, second.in_a_row, other.in_a_row) == (1, 2, 1)
    assert (other.from_address, other.names) == (3, 2)
    assert (elsewhere.in_a_row, elsewhere.from_address, elsewhere.names) == (1, 1, 1)
    # Past the window, a failure starts a new streak, and the old ones no longer count.
    later = run(store.login_failed("192.0.2.1", "a@example.test", 2000, WINDOW))
    assert (later.in_a_row, later.from_address, later.names) == (1, 1, 1)


def test_a_login_ends_the_streak_and_stale_rows_are_pruned(store: Store) -> None:
    run(store.login_failed("192.0.2.1", "a@example.test", 1000, WINDOW))
    run(store.login_failed("192.0.2.1", "b@example.test", 5000, WINDOW))
    run(store.login_succeeded("192.0.2.1", "b@example.test"))
    assert count(store, "login_failures") == 1
    assert run(store.prune_login_failures(2000)) == 1
    assert count(store, "login_failures") == 0


def test_two_nodes_count_one_guesser_together(open_store: Callable[..., Store]) -> None:
    """Each node its own Authenticator (its own in-memory throttle) on one database: failures
    through either add up, and the ban comes at the total, not at each node's share."""
    one, two = open_store(), open_store()
    settings = AuthSettings(failure_delay=0, max_failure_delay=0, ban_after=4, lockout=300)
    nodes = [Authenticator(one, settings), Authenticator(two, settings)]

    async def attempt(node: Authenticator, name: str) -> str:
        try:
            await node.verify_key(f"mg_{name}_wrong", "198.51.100.7", protocol="api")
        except AuthFailed:
            return "failed"
        except LockedOut:
            return "locked out"
        return "ok"

    async def guess() -> list[str]:
        # Alternating nodes, then the first node twice, then the second.
        order = [0, 1, 0, 1, 0, 0, 1]
        return [await attempt(nodes[n], f"guess{i}") for i, n in enumerate(order)]

    answers = run(guess())
    # The fourth failure, the second on each node, makes the ban (each node alone saw two).
    # The first node learns of it at its next failure (the store says so), and refuses from
    # then on, as the second does.
    assert answers == ["failed"] * 5 + ["locked out"] * 2
