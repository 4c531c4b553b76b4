"""Query parameters that hold a list. The agentmail SDK sends a list as one JSON array
(`labels=["a","b"]`, URL-encoded); other clients repeat the parameter (`labels=a&labels=b`).
Both are read the same way, so a filter means the same whichever client sent it."""

from __future__ import annotations

import json

from mailgate.http.errors import Invalid


def listed(name: str, values: list[str] | None) -> list[str]:
    """The items of list parameter `name`, in the order given."""
    found: list[str] = []
    for value in values or ():
        if not value.startswith("["):
            found.append(value)
            continue
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise Invalid.field(name, f"{value!r} is neither a value nor a JSON array of them")
        found += parsed
    return found
