"""Helpers for the MIME tests: messages written with LF, IMAP wire values read back."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from mailgate.mime.headers import normalize_crlf
from mailgate.mime.imapview import MessageIndex, extract_section


def crlf(text: bytes) -> bytes:
    """Test messages are written with LF; the store hands mailgate.mime CRLF."""
    return normalize_crlf(text)


def parse_wire(data: bytes) -> Any:
    """Parse one IMAP value (list, quoted string, literal, NIL, number) and require that it
    uses all of `data`. Raises ValueError on anything malformed, so it also proves that the
    parentheses balance outside strings and literals."""
    pos = 0

    def value() -> Any:
        nonlocal pos
        if pos >= len(data):
            raise ValueError("unexpected end")
        c = data[pos : pos + 1]
        if c == b"(":
            pos += 1
            items = []
            while data[pos : pos + 1] != b")":
                items.append(value())
                if data[pos : pos + 1] == b" ":
                    pos += 1
                elif data[pos : pos + 1] not in (b"(", b")"):
                    raise ValueError(f"junk at {pos}")
            pos += 1
            return items
        if c == b'"':
            out = bytearray()
            pos += 1
            while True:
                if pos >= len(data):
                    raise ValueError("unterminated quoted string")
                ch = data[pos]
                if ch == 0x5C:
                    out.append(data[pos + 1])
                    pos += 2
                elif ch == 0x22:
                    pos += 1
                    return bytes(out)
                elif ch in (0, 0x0D, 0x0A) or ch > 0x7F:
                    raise ValueError("quoted string carries a byte it may not")
                else:
                    out.append(ch)
                    pos += 1
        if c == b"{":
            close = data.index(b"}\r\n", pos)
            n = int(data[pos + 1 : close])
            start = close + 3
            if start + n > len(data):
                raise ValueError("short literal")
            pos = start + n
            if b"\x00" in data[start:pos]:
                raise ValueError("NUL in a literal")  # CHAR8, RFC 3501 §9
            return data[start:pos]
        end = pos
        while end < len(data) and data[end : end + 1] not in (b" ", b")", b"("):
            end += 1
        atom = data[pos:end]
        pos = end
        if atom == b"NIL":
            return None
        if atom.isdigit():
            return int(atom)
        raise ValueError(f"bad atom {atom!r}")

    result = value()
    if pos != len(data):
        raise ValueError("trailing bytes")
    return result


def leaf_sizes(structure: list[Any], path: tuple[int, ...] = ()) -> dict[tuple[int, ...], int]:
    """Section path -> body size for every non-multipart part of a parsed BODYSTRUCTURE,
    numbered as RFC 3501 §6.4.5 numbers them."""
    if isinstance(structure[0], list):  # multipart: the children come first, then the subtype
        sizes: dict[tuple[int, ...], int] = {}
        for i, child in enumerate(itertools.takewhile(lambda c: isinstance(c, list), structure)):
            sizes.update(leaf_sizes(child, (*path, i + 1)))
        return sizes
    own = path or (1,)
    sizes = {own: structure[6]}
    if structure[:2] == [b"message", b"rfc822"]:
        inner = structure[8]  # a multipart's parts continue our numbering, else .1 is its body
        sizes.update(leaf_sizes(inner, own if isinstance(inner[0], list) else (*own, 1)))
    return sizes


def json_nodes(parts: bytes) -> int:
    return parts.count(b"[")


def section(raw: bytes, ix: MessageIndex, part: tuple[int, ...], spec: str = "") -> bytes | None:
    return extract_section(raw, ix.parts, part, spec)


# Fuzzing: MIME-ish pieces and mutations of valid messages. Runs briefly by default;
# MAILGATE_FUZZ_ITERATIONS=100000 runs it longer.

FUZZ_ITERATIONS = int(os.environ.get("MAILGATE_FUZZ_ITERATIONS", "400"))

PIECES = [
    b"\r\n",
    b"\r\n\r\n",
    b"--",
    b"--XX",
    b"--b1",
    b"--outer--",
    b"Content-Type: multipart/mixed; boundary=XX\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b'"',
    b"(",
    b")",
    b"<",
    b">",
    b":",
    b";",
    b",",
    b"@",
    b"=?utf-8?b?",
    b"?=",
    b"*0*=",
    b"'",
    b"%",
    b"\\",
    b"\x00",
    b"\xff",
    b" ",
    b"\t",
]


def mutate(rng: random.Random, data: bytes, pieces: Sequence[bytes] = PIECES) -> bytes:
    """Up to four random cuts, insertions of `pieces`, repeats, junk bytes or truncations."""
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(data))
        j = min(len(data), i + rng.randint(0, 40))
        op = rng.randrange(5)
        if op == 0:
            data = data[:i] + data[j:]
        elif op == 1:
            data = data[:i] + rng.choice(pieces) + data[i:]
        elif op == 2:
            data = data[:i] + data[i:j] * rng.randint(2, 5) + data[j:]
        elif op == 3:
            data = data[:i] + bytes(rng.randrange(256) for _ in range(j - i)) + data[j:]
        else:
            data = data[:i]
    return data


def random_message(rng: random.Random, seeds: list[bytes]) -> bytes:
    """Random bytes, random MIME-ish pieces, or a mutation of one of `seeds`."""
    if rng.random() < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if rng.random() < 0.5:
        return b"".join(rng.choice([*PIECES, b"a", b"From: x"]) for _ in range(rng.randint(0, 80)))
    return mutate(rng, rng.choice(seeds))


def fuzz(check: Callable[[bytes], None], seeds: list[bytes], seed: int) -> None:
    """Run `check` on FUZZ_ITERATIONS random messages; a failure names the input."""
    rng = random.Random(seed)
    for _ in range(FUZZ_ITERATIONS):
        data = random_message(rng, seeds)
        try:
            check(data)
        except Exception as exc:  # pragma: no cover - report the input that failed
            raise AssertionError(f"failed on {data!r}") from exc
