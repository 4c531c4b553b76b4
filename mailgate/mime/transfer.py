"""Making binary parts storable: a part in the "binary" transfer encoding (RFC 3516 lets APPEND
carry one) holds arbitrary octets, which the store's CRLF normalisation would alter and which
BODY[...] could not return as a plain literal. Such parts are re-encoded as base64 first, so
BODY[...] answers 7-bit text and BINARY[...] gives back the octets exactly as sent. Pure.
"""

from __future__ import annotations

import base64
import re

from mailgate.mime.parts import Entity, parse, transfer_encoding

__all__ = ["encode_binary_parts"]

_CTE_FIELD = re.compile(rb"^content-transfer-encoding[ \t]*:(?:[^\r\n]|\r\n[ \t])*", re.I | re.M)
_LINE = 76  # RFC 2045 §6.8: encoded lines are at most 76 characters


def _binary_leaves(entity: Entity) -> list[Entity]:
    found: list[Entity] = []
    stack = [entity]
    while stack:
        node = stack.pop()
        if node.children:
            stack.extend(node.children)
        elif node.message is not None:
            stack.append(node.message)
        elif transfer_encoding(node.fields) == b"binary":
            found.append(node)
    return found


def encode_binary_parts(raw: bytes) -> bytes:
    """`raw` with every leaf part in the binary transfer encoding re-encoded as base64 (the
    same bytes when there is none)."""
    if b"binary" not in raw.lower():  # cheap test first: almost no message has one
        return raw
    leaves = _binary_leaves(parse(raw))
    if not leaves:
        return raw
    out = raw
    # From the last part to the first, so earlier offsets stay valid.
    for leaf in sorted(leaves, key=lambda e: e.start, reverse=True):
        header = _CTE_FIELD.sub(
            b"Content-Transfer-Encoding: base64", raw[leaf.start : leaf.body], 1
        )
        text = base64.b64encode(raw[leaf.body : leaf.end])
        body = b"\r\n".join(text[i : i + _LINE] for i in range(0, len(text), _LINE))
        out = out[: leaf.start] + header + body + out[leaf.end :]
    return out
