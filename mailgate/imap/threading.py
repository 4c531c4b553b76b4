"""The THREAD algorithms (RFC 5256 §3: ORDEREDSUBJECT and REFERENCES; REFS as Dovecot has it,
from draft-ietf-morg-inthread: REFERENCES without gathering threads by subject, the threads in
the order of their newest message) and the thread-list syntax they answer with. Pure.

Mailboxes are big and their headers untrusted: nothing here recurses (a reply chain may be
thousands deep), and each function takes a `step` coroutine to call now and then so that the
caller can pace the event loop (fairness.Pace).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

Step = Callable[[], Awaitable[None]]
# Messages (or nodes walked) handled between two calls of `step`.
STEP_EVERY = 256


class Message(NamedTuple):
    # A tuple: ten thousand are made per THREAD, and a frozen dataclass is slower to make.
    seq: int
    date: int  # sent date, else INTERNALDATE (UTC seconds): RFC 5256 §2.2
    subject: str  # base subject, casemapped (mime/sortkeys.py)
    reply: bool  # the subject marked it a reply or forward
    msgid: str | None
    references: tuple[str, ...]  # References, else In-Reply-To's first msg-id


@dataclass(eq=False, slots=True)
class Node:
    """A thread member; a dummy (message None) stands for a message the mailbox lacks."""

    message: Message | None = None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    def order(self) -> tuple[int, int]:
        """Sibling order (RFC 5256 §2.2 and §3 step 4): by sent date, then mailbox order; a
        dummy as its first child (its children are sorted first)."""
        node = self
        while node.message is None:
            node = node.children[0]
        message = node.message
        return message[1], message[0]  # (date, seq), by index: faster than by name


def ordered_subject(messages: list[Message]) -> list[Node]:
    """RFC 5256 §3 ORDEREDSUBJECT: messages grouped by base subject, each group a thread whose
    first message (by sent date) is the parent of the others; threads by their first's date."""
    by_subject = sorted(messages, key=lambda m: (m.subject, m.date, m.seq))
    roots: list[Node] = []
    for m in by_subject:
        root = roots[-1] if roots else None
        if root is not None and root.message is not None and root.message.subject == m.subject:
            root.children.append(Node(m, root))
        else:
            roots.append(Node(m))
    roots.sort(key=Node.order)
    return roots


def _is_ancestor(candidate: Node, node: Node) -> tuple[bool, int]:
    """Whether `candidate` is `node` or above it, and how many nodes were looked at (a chain
    of references may be thousands deep: the caller paces by it)."""
    walk: Node | None = node
    walked = 0
    while walk is not None:
        walked += 1
        if walk is candidate:
            return True, walked
        walk = walk.parent
    return False, walked


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


async def references(messages: list[Message], step: Step, *, refs: bool = False) -> list[Node]:
    """RFC 5256 §3 REFERENCES (with `refs`, Dovecot's REFS: no step 5, and the threads in the
    order of their newest message)."""
    by_id: dict[str, Node] = {}
    nodes: list[Node] = []  # every node, dummies included
    work = 0  # since the last step: messages, and nodes looked at for loops
    for m in messages:
        # Step 1: a message with no Message-ID, or one an earlier message has, is unique.
        node = by_id.get(m.msgid) if m.msgid else None
        if node is None or node.message is not None:
            node = Node(m)
            nodes.append(node)
            if m.msgid and m.msgid not in by_id:
                by_id[m.msgid] = node
        else:
            node.message = m
        # Step 1.A: link the references, each the parent of the next, keeping links made
        # before and making no loop.
        above: Node | None = None
        for ref in m.references:
            here = by_id.get(ref)
            if here is None:
                here = by_id[ref] = Node()
                nodes.append(here)
            if above is not None and here.parent is None and here is not node:
                loop, walked = _is_ancestor(here, above)
                work += walked
                if not loop:
                    _link(above, here)
            above = here
        # Step 1.B: the message's parent is its last reference, whatever was presumed before.
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if above is not None:
            loop, walked = _is_ancestor(node, above)
            work += walked
            if not loop:
                _link(above, node)
        work += 1
        if work >= STEP_EVERY:
            work = 0
            await step()
    # Step 2: the roots.
    roots = [n for n in nodes if n.parent is None]
    roots = await _prune(roots, step)
    # Step 4: top-level siblings by date, a dummy by its earliest child.
    for root in roots:
        if root.message is None:
            root.children.sort(key=Node.order)
    roots.sort(key=Node.order)
    if not refs:
        roots = await _gather_by_subject(roots, step)
    # Step 6: every set of siblings by date.
    await _sort_all(roots, step)
    if refs:
        newest = {id(root): _newest(root) for root in roots}
        roots.sort(key=lambda r: newest[id(r)])
    return roots


def _children_first(roots: list[Node]) -> list[Node]:
    """Every node under `roots`, each after all of its descendants (post-order), walked on an
    explicit stack: threads can nest deeper than Python's recursion limit."""
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    order.reverse()
    return order


async def _prune(roots: list[Node], step: Step) -> list[Node]:
    """Step 3: dummies go; their children take their place (at the top level only when a dummy
    has one child: a dummy with several stays, to hold them together)."""
    # A dummy's children are pruned before it is.
    for node in _children_first(roots):
        if node.message is not None:
            continue
        parent = node.parent
        if parent is None:
            continue  # top-level dummies are decided below, once their children are final
        at = parent.children.index(node)
        for child in node.children:
            child.parent = parent
        parent.children[at : at + 1] = node.children
        node.children = []
        await step()
    kept: list[Node] = []
    for root in roots:
        if root.message is not None or len(root.children) > 1:
            kept.append(root)
        elif root.children:
            child = root.children[0]
            child.parent = None
            kept.append(child)
    return kept


async def _gather_by_subject(roots: list[Node], step: Step) -> list[Node]:
    """Step 5: threads whose subjects are the same are joined."""
    table: dict[str, Node] = {}
    for n, root in enumerate(roots):
        if n % STEP_EVERY == 0:
            await step()
        subject = _subject(root)
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (
            held.message is not None
            and (root.message is None or (_reply(held) and not _reply(root)))
        ):
            table[subject] = root
    gone: set[int] = set()  # ids of the roots now under another
    stand_ins: dict[int, Node] = {}  # id of a root -> the dummy now holding it
    for n, root in enumerate(roots):
        if n % STEP_EVERY == 0:
            await step()
        subject = _subject(root)
        held = table.get(subject) if subject else None
        if held is None or held is root or id(root) in stand_ins:
            continue  # the thread of its subject, or under a dummy of it already
        gone.add(id(root))
        if held.message is None and root.message is None:
            for child in root.children:
                child.parent = held
            held.children.extend(root.children)
            root.children = []
        elif held.message is None or (_reply(root) and not _reply(held)):
            # Under a dummy, or the reply under what it replies to.
            root.parent = held
            held.children.append(root)
        else:
            # Neither is the other's reply: both go under a new dummy, in the held one's place.
            dummy = Node()
            for member in (held, root):
                member.parent = dummy
                dummy.children.append(member)
            table[subject] = dummy
            stand_ins[id(held)] = dummy
    return [stand_ins.get(id(r), r) for r in roots if id(r) not in gone]


def _subject_message(root: Node) -> Message:
    node = root
    while node.message is None:
        node = node.children[0]
    return node.message


def _subject(root: Node) -> str:
    return _subject_message(root).subject


def _reply(root: Node) -> bool:
    # A dummy is never "a reply" itself: callers compare it by being a dummy first.
    return root.message is not None and root.message.reply


async def _sort_all(roots: list[Node], step: Step) -> None:
    # Depth first, children before their parent's siblings are compared: a dummy's order is
    # its first child's, so its children are sorted before it is placed.
    for node in _children_first(roots):
        if len(node.children) > 1:
            node.children.sort(key=Node.order)
            await step()
    roots.sort(key=Node.order)


def _newest(root: Node) -> tuple[int, int]:
    newest = (0, 0)
    stack = [root]
    while stack:
        node = stack.pop()
        if node.message is not None:
            newest = max(newest, (node.message.date, node.message.seq))
        stack.extend(node.children)
    return newest


async def thread_list(roots: list[Node], number: Callable[[Message], int], step: Step) -> bytes:
    """The THREAD response's data (RFC 5256 §4): a thread-list per root; a member with one
    child is followed by it ("1 2"), one with several by a thread-list each ("1 (2)(3)")."""
    out: list[str] = []
    work: list[str | Node] = []
    for root in reversed(roots):
        work += [")", root, "("]
    written = 0
    while work:
        item = work.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node: Node = item
        written += 1
        if written % STEP_EVERY == 0:
            await step()
        first = True
        while True:
            if node.message is not None:
                out.append(f"{number(node.message)}" if first else f" {number(node.message)}")
                first = False
            if len(node.children) == 1:
                node = node.children[0]
                continue
            if node.children:
                if not first:
                    out.append(" ")
                for child in reversed(node.children):
                    work += [")", child, "("]
            break
    return "".join(out).encode("ascii")
