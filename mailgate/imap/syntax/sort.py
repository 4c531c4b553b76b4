"""The SORT and THREAD grammar (RFC 5256 §4, RFC 5957 §4, RFC 5267 §3 ESORT): sort criteria or
a threading algorithm, then a charset and a search program as SEARCH reads them (search.py)."""

from __future__ import annotations

from mailgate.imap.syntax.reader import ATOM, LPAREN, SP, Reader
from mailgate.imap.syntax.search import charset, return_options, saving, search_program
from mailgate.imap.syntax.values import (
    SORT_KEYS,
    THREAD_ALGORITHMS,
    ParseError,
    SearchKey,
    Sort,
    SortCriterion,
    Thread,
)


def _criterion(r: Reader) -> SortCriterion:
    # sort-criterion = ["REVERSE" SP] sort-key
    word = r.word()
    reverse = word == "REVERSE"
    if reverse:
        if r.peek() != SP:
            raise ParseError("REVERSE needs a sort key")
        r.pos += 1
        word = r.word()
    if word not in SORT_KEYS:
        raise ParseError("Unknown sort key" if word != "REVERSE" else "REVERSE needs a sort key")
    return SortCriterion(word, reverse)


def _criteria(r: Reader) -> tuple[SortCriterion, ...]:
    if r.peek() != LPAREN:
        raise ParseError("Sort criteria must be a parenthesized list")
    if r.line[r.pos + 1 : r.pos + 2] == b")":
        raise ParseError("Empty sort criteria")
    return tuple(r.paren_list(_criterion, empty_ok=False))


def _search_criteria(r: Reader) -> tuple[str, SearchKey]:
    # search-criteria = charset 1*(SP search-key): the charset is not optional here.
    if r.at_end():
        raise ParseError("Missing charset")
    r.sp()
    raw = r.astring()
    # A command cut short is BAD whatever its last word, not NO for an unknown charset.
    if r.at_end():
        raise ParseError("Missing search criteria")
    name = charset(r, raw)
    r.sp()
    return name, search_program(r)


def parse_sort(r: Reader, uid: bool) -> Sort:
    # sort = ["UID" SP] "SORT" [SP "RETURN" SP sort-return-opts] SP sort-criteria SP
    #        search-criteria
    r.sp()
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None
    mark = r.pos
    word = r.match(ATOM)
    if word is not None and word.upper() == b"RETURN":
        r.sp()
        returns, partial = return_options(r)
    else:
        r.pos = mark
    with saving(returns):
        if returns is not None:
            r.sp()
        criteria = _criteria(r)
        name, key = _search_criteria(r)
        r.finish()
    return Sort(criteria, name, key, returns, partial)


def parse_thread(r: Reader, uid: bool) -> Thread:
    # thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    r.sp()
    algorithm = r.word()
    if algorithm not in THREAD_ALGORITHMS:
        raise ParseError("Unknown threading algorithm")
    name, key = _search_criteria(r)
    r.finish()
    return Thread(algorithm, name, key)
