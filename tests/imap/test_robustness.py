"""Bad input of every kind gets a clear protocol reply or a clean close, never a traceback, and
every other session on the server goes on working (the point of each test below)."""

from __future__ import annotations

import random
import select
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Account, Server, client_tls
from tests.imap.helpers import append, assert_clean, fetches, flags_of, message, status_items
from tests.transcript import Transcript, sock_closed


class Witness:
    """A well-behaved session kept open beside the misbehaving one."""

    def __init__(self, server: Server) -> None:
        self.account = server.account()
        self.session = Transcript.login(server, self.account)
        append(self.session, message("witness"), flags="\\Flagged")
        self.session.ok("SELECT INBOX")

    def still_works(self) -> None:
        s = self.session
        s.ok("NOOP")
        items = fetches(s.ok("FETCH 1 (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        assert list(items) == [1]
        assert flags_of(items[1]) == {"\\Flagged"}
        assert b"Subject: witness" in items[1]
        append(s, message("another"))
        assert status_items(s.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] >= 2


@pytest.fixture
def witness(server: Server) -> Iterator[Witness]:
    w = Witness(server)
    yield w
    w.session.close()


def tcp_closed(sock: socket.socket, timeout: float = 10) -> bool:
    """True once the server closes or resets a plain socket (bounded wait)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def raw_lines(s: Transcript, data: bytes, until: bytes) -> list[bytes]:
    s.send(data)
    return s.read_until(lambda line: line.startswith(until))


MALFORMED = [
    b"",
    b"   ",
    b"a1",
    b"* NOOP",
    b"+ NOOP",
    b"a1 FROBNICATE",
    b"a1 NOOP extra arguments",
    b"a1 SELECT",
    b'a1 SELECT "INBOX',
    b"a1 SELECT INBOX)",
    b"a1 FETCH 1 (FLAGS",
    b"a1 FETCH 1 FLAGS)",
    b"a1 FETCH ((((((((((",
    b"a1 SEARCH " + b"(" * 500,
    b"a1 SEARCH " + b"NOT " * 5000 + b"ALL",
    b"a1 STORE 1 +FLAGS (\\Seen",
    b'a1 LIST "" "*" RETURN (STATUS (MESSAGES)',
    b"a1 UID",
    b"a1 UID NOOP",
    b"a1 FETCH 4294967296 FLAGS",
    b"a1 FETCH 99999999999999999999999 FLAGS",
    b"a1 FETCH 1:2:3 FLAGS",
    b'a1 "quoted tag"',
    b"a1 LOGIN",
    b"a1 APPEND",
    b"a1 APPEND INBOX (\\Seen",
    b"a1 STATUS INBOX (MESSAGES",
    b'a1 CREATE "unterminated',
    b'a1 CREATE "bad \\q escape"',
    b"a1 \x00\x01\x02\x03",
    b"\xff\xfe\xfd 8-bit junk \x80\x81",
    b"a1 SELECT \xc3\x28",
    b"a1 ID (\xff \xff)",
    b"a1\tNOOP",
    b"a1 NOOP\x00",
    b"a1 SEARCH CHARSET",
    b"a1 SEARCH UID 1:*:*",
    b"a1 ENABLE",
    b"a1 IDLE now",
]


def answer_to(s: Transcript, line: bytes) -> list[bytes]:
    """Send one bad line; the server's reply up to its status for it."""
    s.send(line + b"\r\n")
    reply = s.read_until(lambda got: got.startswith((b"a1 ", b"* BAD", b"* BYE")))
    assert_clean(reply)
    assert reply[-1].startswith((b"a1 BAD", b"* BAD", b"a1 NO")), (line, reply)
    return reply


def test_malformed_commands_after_login(server: Server, account: Account, witness: Witness) -> None:
    with Transcript.login(server, account) as s:
        s.ok("SELECT INBOX")
        for line in MALFORMED:
            answer_to(s, line)
            s.ok("NOOP")  # the same session goes on
            witness.still_works()  # and so does every other


def test_malformed_commands_before_login(server: Server, witness: Witness) -> None:
    with Transcript.connect(server) as s:
        for line in MALFORMED:
            answer_to(s, line)
            s.ok("CAPABILITY")
            witness.still_works()


def test_random_garbage_lines(server: Server, account: Account, witness: Witness) -> None:
    rng = random.Random(2024)
    with Transcript.login(server, account) as s:
        for _ in range(200):
            junk = bytes(rng.choice(range(1, 256)) for _ in range(rng.randint(1, 80)))
            junk = junk.replace(b"\r", b"").replace(b"\n", b"").replace(b"{", b"")
            s.send(b"z " + junk + b"\r\n")
            reply = s.read_until(lambda got: got.startswith((b"z ", b"* BAD")))
            assert_clean(reply)
            # Whatever the bytes, the reply is a status, never silence or a crash.
            assert reply[-1].split(b" ", 2)[1] in (b"BAD", b"NO", b"OK"), reply
        s.ok("NOOP")
    witness.still_works()


def test_oversized_sync_literal_is_refused_without_reading_it(
    server: Server, account: Account, witness: Witness
) -> None:
    with Transcript.login(server, account) as s:
        reply = raw_lines(s, b"a1 APPEND INBOX {999999999}\r\n", b"a1 ")
        assert reply[-1].startswith((b"a1 NO [TOOBIG]", b"a1 NO [LIMIT]")), reply
        reply = raw_lines(s, b"a2 SEARCH BODY {99999999}\r\n", b"a2 ")
        assert reply[-1].startswith(b"a2 BAD [TOOBIG]"), reply
        s.ok("NOOP")
        assert status_items(s.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0
    witness.still_works()


def test_oversized_literal_plus_closes_the_connection(
    server: Server, account: Account, witness: Witness
) -> None:
    with Transcript.login(server, account) as s:
        s.send(b"a1 APPEND INBOX {999999999+}\r\n" + b"x" * 65536)
        reply = s.read_until(lambda got: got.startswith(b"* BYE"))
        assert reply[0].startswith((b"a1 NO [TOOBIG]", b"a1 NO [LIMIT]")), reply
        assert_clean(reply)
        assert sock_closed(s)
    witness.still_works()


def test_many_literals_in_one_command_are_bounded(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(imap={"max_command_size": 4000})
    witness = Witness(server)
    try:
        account = server.account()
        with Transcript.login(server, account) as s:
            s.ok("SELECT INBOX")
            chunk = b"a" * 900
            s.send(b"a1 SEARCH")
            refused = None
            for _ in range(10):
                s.send(b" BODY {900}\r\n")
                line = s.read_line()
                if not line.startswith(b"+"):
                    refused = line
                    break
                s.send(chunk)
            assert refused is not None
            assert refused.startswith(b"a1 BAD [TOOBIG]"), refused
            s.ok("NOOP")
        witness.still_works()
    finally:
        witness.session.close()


def test_disconnect_mid_literal(server: Server, account: Account, witness: Witness) -> None:
    s = Transcript.login(server, account)
    s.send(b"a1 APPEND INBOX {5000}\r\n")
    assert s.read_line().startswith(b"+")
    s.send(b"x" * 1000)
    s.close()
    t = Transcript.login(server, account)
    s2 = Transcript.login(server, account)
    s2.send(b"a1 APPEND INBOX {5000+}\r\n" + b"y" * 1000)
    s2.close()
    try:
        witness.still_works()
        assert status_items(t.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0
    finally:
        t.close()


def test_disconnect_while_a_big_fetch_is_written(
    server: Server, account: Account, witness: Witness
) -> None:
    with Transcript.login(server, account) as s:
        big = message("big", "z" * 200_000 + "\r\n")
        for _ in range(5):
            append(s, big)
    s = Transcript.login(server, account)
    s.ok("SELECT INBOX")
    s.send(b"a1 FETCH 1:* BODY[]\r\n")
    s.close()
    witness.still_works()
    with Transcript.login(server, account) as again:
        assert status_items(again.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 5


def test_very_long_line_gets_bye(server: Server, account: Account, witness: Witness) -> None:
    with Transcript.login(server, account) as s:
        s.send(b"a1 NOOP " + b"x" * 200_000 + b"\r\n")
        line = s.read_until(lambda got: got.startswith((b"* BYE", b"a1 ")))[-1]
        assert line.startswith(b"* BYE"), line
        assert_clean(line)
        assert sock_closed(s)
    with Transcript.connect(server) as s:  # before login too
        s.send(b"a1 " + b"A" * 200_000 + b"\r\n")
        assert s.read_until(lambda got: got.startswith((b"* BYE", b"a1 ")))[-1].startswith(b"* BYE")
        assert sock_closed(s)
    witness.still_works()


def test_plaintext_on_the_tls_port(server: Server, witness: Witness) -> None:
    with socket.create_connection(("127.0.0.1", server.imaps), timeout=5) as raw:
        raw.sendall(b"a1 LOGIN user pass\r\n")
        data = b""
        try:
            while chunk := raw.recv(4096):
                data += chunk
        except (TimeoutError, ConnectionError):
            pass
        assert b"OK" not in data
        assert b"Traceback" not in data
    witness.still_works()


def test_tls_client_hello_on_the_starttls_port(server: Server, witness: Witness) -> None:
    with socket.create_connection(("127.0.0.1", server.imap), timeout=5) as raw:
        greeting = raw.recv(4096)
        assert greeting.startswith(b"* OK")
        # The server reads the ClientHello as a (binary, unfinished) command line and waits
        # for the rest; the handshake fails on the client's side.
        raw.settimeout(1)
        with pytest.raises((OSError, TimeoutError)):
            client_tls().wrap_socket(raw).do_handshake()
    witness.still_works()


def test_stalled_client_before_login_is_disconnected(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(imap={"preauth_timeout": 1})
    witness = Witness(server)  # logs in at once, so the short timeout does not apply to it
    # A client that connects to the TLS port and never even starts the handshake.
    silent = socket.create_connection(("127.0.0.1", server.imaps))
    try:
        with Transcript.connect(server) as s:
            line = s.read_until(lambda got: got.startswith(b"* BYE"), timeout=10)[-1]
            assert_clean(line)
            assert sock_closed(s)
        with Transcript.connect(server) as s:  # stalled in the middle of a literal
            s.send(b"a1 LOGIN {20}\r\n")
            assert s.read_line().startswith(b"+")
            s.send(b"abc")
            assert s.read_until(lambda got: got.startswith(b"* BYE"), timeout=10)
            assert sock_closed(s)
        assert tcp_closed(silent), "a connection that never started TLS was kept open"
        witness.still_works()
    finally:
        silent.close()
        witness.session.close()


def test_stalled_client_mid_append_is_disconnected(make_server: Callable[..., Server]) -> None:
    server = make_server(imap={"autologout": 1})
    account = server.account()
    with Transcript.login(server, account) as s:
        s.send(b"a1 APPEND INBOX {5000}\r\n")
        assert s.read_line().startswith(b"+")
        s.send(b"x" * 100)
        line = s.read_until(lambda got: got.startswith(b"* BYE"), timeout=10)[-1]
        assert_clean(line)
        assert sock_closed(s)
    witness = Witness(server)
    try:
        witness.still_works()
        with Transcript.login(server, account) as s:
            assert status_items(s.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0
    finally:
        witness.session.close()


def test_commands_in_the_wrong_state(server: Server, account: Account, witness: Witness) -> None:
    with Transcript.connect(server) as s:
        for command in ("FETCH 1 FLAGS", "SELECT INBOX", "IDLE", "LOGOUT now"):
            assert_clean(s.bad(command))
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        for command in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "STARTTLS"):
            assert_clean(s.bad(command))
    witness.still_works()


def test_many_sessions_misbehaving_at_once(server: Server, witness: Witness) -> None:
    accounts = [server.account() for _ in range(5)]
    sessions = [Transcript.login(server, a) for a in accounts]
    try:
        for i, s in enumerate(sessions):
            s.send(b"a1 APPEND INBOX {4000}\r\n")
            assert s.read_line().startswith(b"+")
            s.send(b"partial" * i)
        witness.still_works()  # while five literals hang half-sent
    finally:
        for s in sessions:
            s.close()
    witness.still_works()


def test_fetch_and_search_of_large_messages_use_bounded_memory(
    server: Server, account: Account, witness: Witness
) -> None:
    # The server runs in this process, so tracemalloc sees its allocations. 40 messages of
    # 1 MB: a server that loads (or renders) them all at once holds well over 40 MB.
    count, size = 40, 1_000_000
    with Transcript.login(server, account) as s:
        for i in range(count):
            append(s, message(f"large {i}", "z" * size + "\r\n"))
        s.ok("SELECT INBOX")
        for command in ("FETCH 1:* BODY.PEEK[]", "SEARCH BODY needle"):
            tracemalloc.start()
            try:
                s.send(f"m1 {command}\r\n".encode())
                received = 0
                while not (line := s.read_line()).startswith(b"m1 "):
                    received += len(line)  # read and drop: the client keeps nothing
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert line.startswith(b"m1 OK"), line
            if command.startswith("FETCH"):
                assert received > count * size
            assert peak < count * size / 2, f"{command}: {peak / 1e6:.0f} MB at the peak"
    witness.still_works()


def established(sock: socket.socket) -> bool:
    """Whether the kernel still has our end of the connection ESTABLISHED (/proc/net/tcp): it
    tells a close by the server apart without reading what the server sent."""
    port = f":{sock.getsockname()[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(port):
            return fields[3] == "01"
    return False


def test_client_that_never_reads_a_big_fetch_is_cut_off(
    make_server: Callable[..., Server],
) -> None:
    """A FETCH waiting for the client to read its output would wait forever for one that never
    reads: once it has read nothing for `autologout` seconds, the connection is cut."""
    server = make_server(imap={"autologout": 1})
    account = server.account()
    with Transcript.login(server, account) as s:
        append(s, message("big", "z" * 2_000_000 + "\r\n"))
    raw = socket.create_connection(("127.0.0.1", server.imaps), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with client_tls().wrap_socket(raw) as deaf:
        login = f'a LOGIN "{account.address}" "{account.key}"\r\n'.encode()
        deaf.sendall(login + b"b SELECT INBOX\r\n" + b"c FETCH 1 BODY[]\r\n" * 10)
        for check in range(2):  # while it stalls, and after it is gone
            # A new session each time: an idle one would be logged out after 1 s here.
            witness = Witness(server)
            try:
                witness.still_works()
            finally:
                witness.session.close()
            deadline = time.monotonic() + 20
            while check == 0 and established(deaf):
                assert time.monotonic() < deadline, "a client that reads nothing is kept"
                time.sleep(0.05)  # between polls of a bounded wait


def test_literal_trickled_before_login_is_disconnected(
    make_server: Callable[..., Server],
) -> None:
    """Slowloris: a LOGIN literal sent a byte at a time does not count as activity before login,
    so the connection goes at preauth_timeout however long the literal."""
    server = make_server(imap={"preauth_timeout": 1})
    witness = Witness(server)
    try:
        with Transcript.connect(server) as s:
            s.send(b"a1 LOGIN {200}\r\n")
            assert s.read_line().startswith(b"+")
            said = b""
            for _ in range(200):
                s.send(b"x")
                readable, _, _ = select.select([s.sock], [], [], 0.5)  # one byte each 0.5 s
                if readable:
                    said = s.read_line()
                    break
            assert said.startswith(b"* BYE"), said
            assert sock_closed(s)
        witness.still_works()
    finally:
        witness.session.close()


def test_silence_after_authenticate_continuation_is_disconnected(
    make_server: Callable[..., Server],
) -> None:
    """AUTHENTICATE waits for the client's response line: a client that never sends it is
    silent like any other and goes at preauth_timeout."""
    server = make_server(imap={"preauth_timeout": 1})
    with Transcript.connect(server) as s:
        s.send(b"a1 AUTHENTICATE PLAIN\r\n")
        assert s.read_line().startswith(b"+")
        line = s.read_until(lambda got: got.startswith(b"* BYE"), timeout=10)[-1]
        assert_clean(line)
        assert sock_closed(s)
