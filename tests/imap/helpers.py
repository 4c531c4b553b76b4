"""Helpers for the IMAP command tests: putting messages in place and reading responses.

Everything here works on what the client sees on the wire (tagged lines, untagged lines), so a
helper never hides a server bug: it parses and asserts, it does not retry or repair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tests.transcript import Response, Transcript

# Fixed headers, so ENVELOPE and friends can be compared byte for byte.
PLAIN = (
    b"From: Alice Example <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Cc: carol@example.test\r\n"
    b"Subject: Quarterly report\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <report-1@example.test>\r\n"
    b"\r\n"
    b"The numbers are in.\r\n"
    b"See you on Monday.\r\n"
)

MULTIPART = (
    b"From: Alice Example <alice@example.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: With attachment\r\n"
    b"Date: Wed, 03 Jan 2024 11:30:00 +0100\r\n"
    b"Message-ID: <multi-1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Hello part one.\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=data.bin\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--XYZ--\r\n"
)

TRACEBACK_MARKERS = (
    b"Traceback",
    b'File "',
    b"Error:",
    b"Exception",
    b"AttributeError",
    b"AssertionError",
    b"KeyError",
    b"TypeError",
    b"ValueError",
    b"IndexError",
    b"UnicodeDecodeError",
    b"sqlalchemy",
    b"twisted.",
    b"mailgate.",
)

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([0-9:,]+)\]")
_COPYUID = re.compile(rb"\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]")
_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)$", re.DOTALL)


def message(subject: str = "Hello", body: str = "Hello there.\r\n", **headers: str) -> bytes:
    """A small fixed message; keyword arguments add or replace headers (From_="…")."""
    fields = {
        "From": "Alice Example <alice@example.test>",
        "To": "bob@example.test",
        "Subject": subject,
        "Date": "Tue, 02 Jan 2024 10:00:00 +0000",
        "Message-ID": f"<{abs(hash((subject, body)))}@example.test>",
    }
    fields.update({k.rstrip("_").replace("_", "-"): v for k, v in headers.items()})
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n" + body).encode()


def append(
    s: Transcript,
    data: bytes,
    mailbox: str = "INBOX",
    *,
    flags: str | None = None,
    date: str | None = None,
) -> int:
    """APPEND one message; returns its UID from the APPENDUID response code."""
    options = ""
    if flags is not None:
        options += f" ({flags})"
    if date is not None:
        options += f' "{date}"'
    r = s.ok(f'APPEND "{mailbox}"{options} \x00', data, code="APPENDUID")
    return appenduid(r)[1][0]


def appenduid(r: Response) -> tuple[int, list[int]]:
    m = _APPENDUID.search(r.tagged)
    assert m is not None, r.tagged
    return int(m.group(1)), expand(m.group(2))


def copyuid(line: bytes) -> tuple[int, list[int], list[int]]:
    m = _COPYUID.search(line)
    assert m is not None, line
    return int(m.group(1)), expand(m.group(2)), expand(m.group(3))


def expand(uid_set: bytes | str) -> list[int]:
    """1:3,7 -> [1, 2, 3, 7] (the server's sets name known UIDs, so no '*')."""
    text = uid_set.decode() if isinstance(uid_set, bytes) else uid_set
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out += range(min(a, b), max(a, b) + 1)
    return out


def fetches(r: Response) -> dict[int, bytes]:
    """Untagged FETCH responses by sequence number: {seq: text between the parentheses}."""
    out: dict[int, bytes] = {}
    for line in r.untagged:
        m = _FETCH.match(line)
        if m is not None:
            assert int(m.group(1)) not in out, f"two FETCH responses for one message: {r!r}"
            out[int(m.group(1))] = m.group(2)
    return out


def flags_of(item: bytes, *, recent: bool = False) -> set[str]:
    """The FLAGS (...) inside one FETCH response. \\Recent, which says which session saw the
    message first rather than anything stored (test_recent.py), is left out unless asked for."""
    m = re.search(rb"FLAGS \(([^)]*)\)", item)
    assert m is not None, item
    flags = set(m.group(1).decode().split())
    return flags if recent else flags - {"\\Recent"}


def uid_of(item: bytes) -> int:
    m = re.search(rb"UID (\d+)", item)
    assert m is not None, item
    return int(m.group(1))


def search_numbers(r: Response) -> list[int]:
    """The numbers of the one untagged SEARCH response."""
    lines = r.lines(b"SEARCH")
    assert len(lines) == 1, r
    return [int(n) for n in lines[0].split()[2:]]


def number_of(r: Response, keyword: bytes) -> int:
    """n of the one untagged "* n KEYWORD" line (EXISTS, RECENT)."""
    found = [line for line in r.untagged if line.split()[2:3] == [keyword]]
    assert len(found) == 1, r
    return int(found[0].split()[1])


def code_value(r: Response, code: bytes) -> bytes:
    """The value of an untagged "* OK [CODE value]" response code (UIDVALIDITY, UIDNEXT…)."""
    for line in r.untagged:
        m = re.match(rb"\* OK \[" + re.escape(code) + rb" ([^\]]*)\]", line)
        if m is not None:
            return m.group(1)
    raise AssertionError(f"no [{code.decode()}] in {r!r}")


def status_items(r: Response) -> dict[str, int]:
    lines = r.lines(b"STATUS")
    assert len(lines) == 1, r
    m = re.search(rb"\(([^)]*)\)$", lines[0])
    assert m is not None, lines[0]
    words = m.group(1).decode().split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def list_names(r: Response, keyword: bytes = b"LIST") -> list[str]:
    """Mailbox names of LIST/LSUB responses, in order, still in their wire form."""
    names = []
    for line in r.lines(keyword):
        m = re.match(rb'\* \S+ \([^)]*\) (?:"."|NIL) (.*)$', line)
        assert m is not None, line
        names.append(m.group(1).decode().strip('"'))
    return names


def list_attributes(r: Response, keyword: bytes = b"LIST") -> dict[str, set[str]]:
    out = {}
    for line in r.lines(keyword):
        m = re.match(rb'\* \S+ \(([^)]*)\) (?:"."|NIL) (.*)$', line)
        assert m is not None, line
        out[m.group(2).decode().strip('"')] = set(m.group(1).decode().split())
    return out


def apply_expunges(uids: list[int], lines: Iterable[bytes]) -> list[int]:
    """What a client's UID list becomes after reading these EXPUNGE responses in order."""
    view = list(uids)
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[2] == b"EXPUNGE":
            del view[int(words[1]) - 1]
    return view


def assert_clean(*chunks: bytes | Response | Iterable[bytes]) -> None:
    """No traceback or Python exception name in anything the server said."""
    for chunk in chunks:
        if isinstance(chunk, Response):
            data = b"\n".join([*chunk.untagged, chunk.tagged])
        elif isinstance(chunk, bytes):
            data = chunk
        else:
            data = b"\n".join(chunk)
        for marker in TRACEBACK_MARKERS:
            assert marker not in data, f"{marker!r} leaked to the client: {data!r}"


def uids_in(s: Transcript, mailbox: str) -> list[int]:
    """UIDs of a mailbox, through a STATUS-free EXAMINE + UID SEARCH on this session.

    Leaves the session in the authenticated state.
    """
    s.ok(f'EXAMINE "{mailbox}"')
    found = search_numbers(s.ok("UID SEARCH ALL"))
    s.ok("UNSELECT")
    return found


# Bound for a push to arrive (IDLE's, or the tagged reply to DONE); it normally takes
# milliseconds.
IDLE_WAIT = 5.0


def start_idle(s: Transcript) -> str:
    """Send IDLE and read its continuation; the tag DONE will answer."""
    tag = s.next_tag()
    s.send(f"{tag} IDLE\r\n")
    line = s.read_line()
    assert line.startswith(b"+"), line
    return tag


def stop_idle(s: Transcript, tag: str) -> list[bytes]:
    """Send DONE; the untagged lines before IDLE's OK."""
    s.send("DONE\r\n")
    lines = s.read_until(lambda line: line.startswith(f"{tag} ".encode()), IDLE_WAIT)
    assert lines[-1].startswith(f"{tag} OK".encode()), lines
    return lines[:-1]
