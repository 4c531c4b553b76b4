"""Sequence sets (syntax/values.py): resolving ranges and "*", and membership."""

from __future__ import annotations

import random

import pytest

from mailgate.imap.syntax.values import CopyMove
from tests.imap.syntax.helpers import args, seqset


@pytest.mark.parametrize(
    ("text", "largest", "resolved"),
    [
        (b"*", 7, ((7, 7),)),
        (b"*", 0, ()),  # empty mailbox: "*" names nothing
        (b"1:*", 0, ((1, 1),)),
        (b"1:*", 7, ((1, 7),)),
        (b"5:*", 3, ((3, 5),)),  # RFC 3501: n:* with n > largest is largest:n
        (b"*:5", 3, ((3, 5),)),
        (b"3:1", 9, ((1, 3),)),
        (b"1:3,2:6", 9, ((1, 6),)),  # overlap
        (b"1:3,4:6", 9, ((1, 6),)),  # adjacent
        (b"7,1:2,4", 9, ((1, 2), (4, 4), (7, 7))),  # sorted
        (b"9:*,1,*", 20, ((1, 1), (9, 20))),
        (b"1:5,2:3", 9, ((1, 5),)),  # contained
    ],
)
def test_sequence_set_resolve(text: bytes, largest: int, resolved: tuple) -> None:
    copy = args(b"a COPY " + text + b" x")
    assert isinstance(copy, CopyMove)
    assert copy.sequence.resolve(largest) == resolved
    for value in range(0, 25):
        inside = any(lo <= value <= hi for lo, hi in resolved)
        assert copy.sequence.contains(value, largest) == inside, value


def test_large_sequence_sets_agree_with_a_scan() -> None:
    rng = random.Random(7)
    ranges = [(rng.randint(1, 400), rng.choice([None, rng.randint(1, 400)])) for _ in range(300)]
    big = seqset(*ranges)
    assert big == seqset(*ranges)  # the lookup cache is not part of the value
    assert hash(big) == hash(seqset(*ranges))
    for largest in (0, 1, 250, 500):
        resolved = big.resolve(largest)
        for value in range(0, 520):
            inside = any(lo <= value <= hi for lo, hi in resolved)
            assert big.contains(value, largest) == inside, (largest, value)
    assert "_index" not in repr(big)
