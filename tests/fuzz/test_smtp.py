"""Property-based fuzzing of SMTP command handling through a real server: sequences of commands
built from the grammar (RFC 5321, AUTH, SIZE, BODY, SMTPUTF8) with junk in them, sent over
implicit TLS to submission, logged in or not. Every reply is sound SMTP (a code, an enhanced
status code on every failure, nothing of Python), the server hangs up only after saying so, and
a session that is still open goes on working."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, b64, plain

# A logged-in session per example costs a TLS handshake: a third of the profile's examples.
EXAMPLES = max(30, settings.default.max_examples // 3)
_ENHANCED = re.compile(r"^([45])\d\d[ -]\1\.\d{1,3}\.\d{1,3}( |$)")
# Replies after which the server may close: QUIT's, a timeout or limit (421), and the last
# of too many unknown commands (502 5.5.1 ... goodbye).
_CLOSING = ("221", "421", "502 5.5.1")


@pytest.fixture(scope="module")
def sender(server: Server) -> Account:
    return server.account()


def _pieces(address: str) -> st.SearchStrategy[bytes]:
    words = [
        address.encode(),
        f"<{address}>".encode(),
        b"<>",
        b"<postmaster>",
        b"<a@b.example> SIZE=100",
        b"<a@b.example> SIZE=99999999999",
        b"<a@b.example> BODY=8BITMIME",
        b"<a@b.example> BODY=BINARYMIME",
        b"<a@b.example> SMTPUTF8",
        b"<j\xc3\xb6rg@example.test>",
        b"<@route:a@b>",
        b":",
        b"<",
        b">",
        b" ",
        b"\x00",
        b"\xff",
        b"=",
        b"PLAIN",
        b"LOGIN",
        b"CRAM-MD5",
        plain(address, "wrong").encode(),
        b64("\x00\x00").encode(),
        b"!!!",
    ]
    return st.one_of(st.sampled_from(words), st.binary(max_size=12))


_VERBS = [
    b"EHLO client.example",
    b"HELO",
    b"MAIL FROM:",
    b"MAIL",
    b"RCPT TO:",
    b"RCPT",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY",
    b"EXPN",
    b"HELP",
    b"AUTH",
    b"STARTTLS",
    b"BDAT 10",
    b"QUIT",
    b"",
]


@st.composite
def sessions(draw: st.DrawFn, address: str) -> tuple[bool, list[bytes]]:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        verb = draw(st.sampled_from(_VERBS))
        rest = b"".join(draw(st.lists(_pieces(address), max_size=4)))
        line = (verb + b" " + rest if rest else verb).replace(b"\r", b"").replace(b"\n", b"")
        lines.append(line)
    return draw(st.booleans()), lines


def _sound(text: str) -> None:
    for line in text.split("\n"):
        assert re.match(r"^[2-5]\d\d[ -]", line), line
        if line[0] in "45":
            assert _ENHANCED.match(line), line
    for leak in ("Traceback", "Exception", 'File "'):
        assert leak not in text


@given(data=st.data())
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_command_sequences(server: Server, sender: Account, data: st.DataObject) -> None:
    logged_in, lines = data.draw(sessions(sender.address))
    with SMTPSession.connect(server) as s:
        s.ehlo()
        if logged_in:
            s.login(sender)
        for line in lines:
            reply = s.cmd(line)
            _sound(reply.text)
            if reply.code == 354:  # DATA was accepted: end the (empty) message
                reply = s.cmd(b".")
                _sound(reply.text)
            if reply.line.startswith(_CLOSING):
                return
        assert s.cmd("RSET").line.startswith("250 2.0.0")
