"""The crash-safety verdict (tests/e2e/crash.py) finds what it is there to find: a loss, a
message stored twice, a UID that goes backwards, half a commit, a second copy at the remote
peer with no kill to explain it. Books and mailboxes made up here; no server."""

from __future__ import annotations

from tests.e2e.crash import APPEND, LOCAL, OUTBOUND, Attempt, Listing, recorded_deliveries, verdict

TARGET, SENDER, REMOTE = "t@example.test", "s@example.test", "bob@remote.test"


def attempt(kind: str, n: int, acknowledged: bool = True, uid: int | None = None) -> Attempt:
    recipient = REMOTE if kind == OUTBOUND else TARGET
    sender = TARGET if kind == APPEND else SENDER
    return Attempt(
        kind,
        "c",
        f"<{n}@x>",
        sender,
        recipient,
        acknowledged,
        "250" if acknowledged else "SMTPServerDisconnected",
        started=float(n),
        ended=n + 0.5,
        uidvalidity=7 if uid else None,
        uid=uid,
    )


def listing(*numbers: int, uids: list[int] | None = None) -> Listing:
    uids = uids or list(range(1, len(numbers) + 1))
    entries = [(u, f"<{n}@x>") for u, n in zip(uids, numbers, strict=True)]
    return Listing(7, max(uids, default=0) + 1, entries)


def message(n: int) -> bytes:
    return f"Message-ID: <{n}@x>\r\nSubject: x\r\n\r\nbody\r\n".encode()


def test_everything_once_is_clean_and_an_unacknowledged_commit_is_allowed() -> None:
    attempts = [attempt(LOCAL, 1), attempt(LOCAL, 2, acknowledged=False), attempt(APPEND, 3, uid=3)]
    attempts += [attempt(OUTBOUND, 4)]
    boxes = {(TARGET, "INBOX"): listing(1, 2, 3), (SENDER, "Sent"): listing(1, 2, 4)}
    result = verdict(attempts, boxes, [(10.0, message(4))])
    assert result.problems == []
    assert (result.acknowledged, result.stored_unacknowledged) == (3, 1)


def test_a_loss_a_duplicate_and_half_a_commit_are_found() -> None:
    attempts = [attempt(LOCAL, 1), attempt(LOCAL, 2), attempt(LOCAL, 3)]
    boxes = {(TARGET, "INBOX"): listing(1, 1, 3), (SENDER, "Sent"): listing(1, 2, 3)}
    result = verdict(attempts, boxes, [])
    assert [len(result.losses), len(result.duplicates), len(result.torn)] == [1, 1, 1]
    assert "<2@x> acknowledged" in result.losses[0]


def test_uids_that_go_backwards_or_disagree_with_appenduid_are_found() -> None:
    # <2> was acknowledged before <3> was sent, yet has the higher UID; <3>'s APPENDUID says 2.
    attempts = [attempt(APPEND, 2, uid=1), attempt(APPEND, 3, uid=2)]
    result = verdict(attempts, {(TARGET, "INBOX"): listing(3, 2)}, [])
    assert len(result.uids) == 3, result.uids  # two APPENDUIDs elsewhere, one out of order
    gap = verdict([attempt(APPEND, 2)], {(TARGET, "INBOX"): listing(2, uids=[2])}, [])
    assert ["not 1..1" in problem for problem in gap.uids] == [True]


def test_a_second_copy_at_the_peer_passes_only_after_a_kill_right_after_the_first() -> None:
    attempts = [attempt(OUTBOUND, 1)]
    boxes = {(SENDER, "Sent"): listing(1)}
    twice = [(10.0, message(1)), (15.0, message(1))]
    excused = verdict(attempts, boxes, twice, kills=[10.2])
    assert (excused.problems, len(excused.resent_after_kill)) == ([], 1)
    for kills in ([], [13.0], [9.0]):
        assert verdict(attempts, boxes, twice, kills=kills).duplicates, kills
    lost = verdict(attempts, boxes, [])
    assert lost.losses == ["remote peer: <1@x> (acknowledged) never arrived"]


def test_a_copy_sent_after_its_delivery_was_recorded_is_a_duplicate_even_after_a_kill() -> None:
    attempts = [attempt(OUTBOUND, 1)]
    boxes = {(SENDER, "Sent"): listing(1)}
    twice = [(10.0, message(1)), (15.0, message(1))]
    log = f"x INFO outbound: {SENDER} -> {REMOTE} via mx.remote.test: 250 2.0.0 OK\n"
    once = verdict(attempts, boxes, twice, kills=[10.1], recorded=recorded_deliveries(log))
    assert once.problems == []
    again = verdict(attempts, boxes, twice, kills=[10.1], recorded=recorded_deliveries(log * 2))
    assert len(again.duplicates) == 1
