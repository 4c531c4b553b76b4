"""Shorthands for the parser tests: parse a framed command, its arguments, its error."""

from __future__ import annotations

import pytest

from mailgate.imap.syntax.commands import parse_request
from mailgate.imap.syntax.values import ParseError, Request, SeqRange, SequenceSet


def parse(*chunks: bytes) -> Request:
    return parse_request(list(chunks))


def args(line: bytes) -> object:
    return parse(line).args


def error(*chunks: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_request(list(chunks))
    return info.value


def seqset(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))
