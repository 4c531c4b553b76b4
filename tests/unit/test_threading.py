"""The THREAD algorithms without a server: threads nested deeper than Python's recursion limit
(a mailbox's headers decide the depth) are built and written out without recursing."""

from __future__ import annotations

import asyncio
import sys

from mailgate.imap.threading import Message, Node, ordered_subject, references, thread_list


async def _no_pause() -> None:
    return None


def _written(roots: list[Node]) -> bytes:
    return asyncio.run(thread_list(roots, lambda m: m.seq, _no_pause))


def _comb(count: int) -> list[Message]:
    """Chain message i (sequence 2i-1) has two replies: the next of the chain, and a leaf
    (sequence 2i) older than that next one."""
    messages = []
    for i in range(1, count + 1):
        parent = (f"<s{i - 1}@t>",) if i > 1 else ()
        messages.append(Message(2 * i - 1, 2 * i, "CHAIN", i > 1, f"<s{i}@t>", parent))
        messages.append(Message(2 * i, 2 * i + 1, "LEAF", True, f"<l{i}@t>", (f"<s{i}@t>",)))
    return messages


def test_a_thread_deeper_than_the_recursion_limit() -> None:
    count = sys.getrecursionlimit() + 100
    roots = asyncio.run(references(_comb(count), _no_pause))
    expected = f"{2 * count - 1} {2 * count}"
    for i in range(count - 1, 0, -1):
        expected = f"{2 * i - 1} ({2 * i})({expected})"
    assert _written(roots) == b"(" + expected.encode() + b")"


def test_refs_on_the_same_thread() -> None:
    roots = asyncio.run(references(_comb(3), _no_pause, refs=True))
    assert _written(roots) == b"(1 (2)(3 (4)(5 6)))"


def test_orderedsubject_groups_by_subject_then_date() -> None:
    roots = ordered_subject(_comb(3))
    assert _written(roots) == b"(1 (3)(5))(2 (4)(6))"


def test_threads_of_one_subject_join_under_one_dummy() -> None:
    """Three threads of one subject, none a reply: the first two go under a new dummy, and the
    third joins that dummy (the subject table's thread comes after the first)."""
    messages = [
        Message(1, 30, "TOPIC", False, "<a@t>", ()),
        Message(2, 10, "TOPIC", False, "<b@t>", ()),
        Message(3, 20, "TOPIC", False, "<c@t>", ()),
        Message(4, 5, "OTHER", False, "<d@t>", ()),
    ]
    roots = asyncio.run(references(messages, _no_pause))
    assert _written(roots) == b"(4)((2)(3)(1))"


def test_a_dummy_and_a_message_of_one_subject() -> None:
    """A dummy thread (two replies to a missing message) and a later message of its subject:
    the message goes under the dummy."""
    messages = [
        Message(1, 10, "TOPIC", True, "<a@t>", ("<gone@t>",)),
        Message(2, 20, "TOPIC", True, "<b@t>", ("<gone@t>",)),
        Message(3, 30, "TOPIC", False, "<c@t>", ()),
    ]
    roots = asyncio.run(references(messages, _no_pause))
    assert _written(roots) == b"((1)(2)(3))"
