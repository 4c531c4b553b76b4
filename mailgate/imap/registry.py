"""The command registry: which handler runs each IMAP command, and in which session states.

Each command module registers its handlers with `@command`; the server looks commands up here
and never grows a method per command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailgate.imap.interfaces import Session, State
from mailgate.imap.syntax.values import Request

# A handler returns the text of the tagged OK (it may start with a "[CODE]"), or raises Reply.
# None: the command holds the session (session.holder, IDLE) and answers later itself.
Handler = Callable[[Session, Request], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: Handler
    states: State
    # RFC 3501 §7.4.1: no EXPUNGE responses while a non-UID FETCH, STORE or SEARCH runs.
    expunges_ok: bool = True


REGISTRY: dict[str, Command] = {}


def command(name: str, states: State, *, expunges_ok: bool = True) -> Callable[[Handler], Any]:
    def register(handler: Handler) -> Handler:
        REGISTRY[name] = Command(name, handler, states, expunges_ok)
        return handler

    return register
