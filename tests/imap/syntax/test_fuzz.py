"""Fuzzing the whole parser: whatever the bytes, only ParseError escapes parse_request."""

from __future__ import annotations

import os
import random
import time

import pytest

from mailgate.imap.syntax.commands import parse_request
from mailgate.imap.syntax.values import ParseError, dialect
from tests.fuzz.targets import (
    VALID_COMMANDS,
    VALID_UTF8_COMMANDS,
    check_request,
    mutate_command,
    random_command,
)


def test_fuzz_only_parse_error_escapes() -> None:
    """Random mutations of valid commands and random junk (fixed seed). Set
    MAILGATE_FUZZ_SECONDS to run longer."""
    rng = random.Random(3501)
    budget = float(os.environ.get("MAILGATE_FUZZ_SECONDS", "2"))
    for chunks in VALID_COMMANDS:
        parse_request(chunks)  # the seeds themselves are valid
    for chunks in VALID_UTF8_COMMANDS:
        parse_request(chunks, dialect(True, True))
    deadline = time.monotonic() + budget
    runs = 0
    while time.monotonic() < deadline or runs < 2000:
        roll = rng.random()
        if roll < 0.6:
            chunks = mutate_command(rng, rng.choice(VALID_COMMANDS + VALID_UTF8_COMMANDS))
        elif roll < 0.85:
            chunks = random_command(rng)
        else:
            chunks = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))]
        # Every dialect a session can be in (what ENABLE turned on).
        check_request(chunks, dialect(rng.random() < 0.5, rng.random() < 0.5))
        runs += 1


@pytest.mark.parametrize(
    "chunks",
    [
        [b"a SEARCH " + b"(" * 100000],
        [b"a SEARCH " + b"NOT " * 100000 + b"ALL"],
        [b"a SEARCH " + b"OR " * 100000],
        [b"a SEARCH " + b"(OR SEEN " * 30000],
        [b"a FETCH 1 BODY[" + b"1." * 50000 + b"1]"],
        [b"a FETCH " + b"1," * 100000 + b"1 FLAGS"],
        [b"a STORE 1 FLAGS " + b"x " * 50000],
        [b"a LOGIN " + b"{99999999999}"],
        [b"a LIST " + b"(" * 10000],
    ],
)
@pytest.mark.timeout(30)  # a hang guard, not a speed check: quadratic work would take hours
def test_hostile_inputs(chunks: list[bytes]) -> None:
    check_request(chunks)


@pytest.mark.parametrize(
    "chunks",
    [["a NOOP"], [None], [b"a LOGIN {1}", None, b""], [b"a NOOP", 5, b""]],
)
def test_wrong_types_still_raise_parse_error(chunks: list[object]) -> None:
    with pytest.raises(ParseError):
        parse_request(chunks)  # type: ignore[arg-type]
