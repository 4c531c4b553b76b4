"""Property-based fuzzing of the PROXY protocol header parser (v1 and v2), read as proxy.py
reads it, straight off a socket: a header (valid or with its error), or EOF; never an exception
of another kind, never a wait past the client's end of file (tests/fuzz/targets.py)."""

from __future__ import annotations

import asyncio

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.targets import PROXY_HEADERS, PROXY_PIECES, check_proxy

_v1 = st.lists(
    st.one_of(
        st.sampled_from([*PROXY_PIECES, b"UNKNOWN", b"192.0.2.7", b"2001:db8::7", b"65535"]),
        st.binary(max_size=6),
    ),
    max_size=12,
).map(lambda pieces: b"PROXY " + b"".join(pieces))
_v2 = st.tuples(
    st.integers(0, 255),  # version and command
    st.integers(0, 255),  # family and protocol
    st.integers(0, 300),  # announced length
    st.binary(max_size=80),
).map(lambda t: PROXY_HEADERS[3][:12] + bytes([t[0], t[1]]) + t[2].to_bytes(2, "big") + t[3])


@st.composite
def changed(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(PROXY_HEADERS))
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.binary(max_size=4)) + data[at + draw(st.integers(0, 4)) :]


@given(st.one_of(_v1, _v2, changed(), st.binary(max_size=120)))
@example(b"PROXY " + b"9" * 200 + b"\r\n")
@example(PROXY_HEADERS[3][:14] + b"\xff\xff")
def test_any_header(data: bytes) -> None:
    asyncio.run(check_proxy(data))


def test_the_seeds_are_valid_headers() -> None:
    async def answers() -> list[bool | None]:
        return [await check_proxy(header) for header in PROXY_HEADERS]

    assert asyncio.run(answers()) == [True] * len(PROXY_HEADERS)
