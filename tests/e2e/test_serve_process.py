"""`mailgate serve` as users run it: a subprocess that prints its listeners and certificate,
and on SIGTERM or Ctrl-C says goodbye to open sessions (`* BYE`, `421 4.3.2`), exits 0 and
prints "stopped"; what it acknowledged is there when it starts again."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentmail import AgentMail, AgentMailEnvironment

from tests.conftest import make_message
from tests.e2e.process import Serve, config_file, run
from tests.harness import Account
from tests.smtp.helpers import SMTPSession, plain, tls
from tests.transcript import Transcript

PASSWORD = "hunter2-database-secret"


class Ports:
    """The ports `mailgate serve` printed, named as the test clients expect them."""

    def __init__(self, serve: Serve) -> None:
        self.imaps = serve.ports["imaps"]
        self.smtps = serve.ports["submissions"]
        self.submission = serve.ports["submission"]


def _imap(ports: Ports) -> Transcript:
    raw = socket.create_connection(("127.0.0.1", ports.imaps), timeout=30)
    return Transcript(tls().wrap_socket(raw))


@pytest.fixture
def config(backend: str, tmp_path: Path) -> Iterator[Path]:
    with config_file(tmp_path, backend, password=PASSWORD) as path:
        yield path


def _create_inbox(config: Path, address: str) -> Account:
    done = run("inbox", "create", address, "--json", "--config", str(config), cwd=config.parent)
    assert done.returncode == 0, done.stderr
    return Account(address, json.loads(done.stdout)["api_key"])


def _fingerprint(port: int) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        tls().wrap_socket(raw) as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_sigterm_says_goodbye_and_exits_0(config: Path) -> None:
    alice = _create_inbox(config, "alice@example.test")
    serve = Serve(config, cwd=config.parent)
    try:
        out = "\n".join(serve.stdout)
        assert out.startswith("mailgate ")
        assert "serving mail.example.test" in out
        assert PASSWORD not in out
        assert "(self-signed, generated now)" in out
        assert f"sha256       {_fingerprint(serve.ports['imaps'])}" in out
        assert set(serve.ports) == {"imap", "imaps", "submission", "submissions", "mx", "api"}
        assert all(port > 0 for port in serve.ports.values())
        server = Ports(serve)

        idling = _imap(server)
        idling.ok(f'LOGIN "{alice.address}" "{alice.key}"')
        idling.ok("SELECT INBOX")
        idling.send(b"i1 IDLE\r\n")
        assert idling.read_line().startswith(b"+")
        smtp = SMTPSession.login_as(server, alice)
        smtp.expect(f"MAIL FROM:<{alice.address}>", "250 2.1.0")

        finished = serve.stop(signal.SIGTERM)

        lines = idling.read_until(lambda line: line.startswith(b"* BYE"), timeout=10)
        assert lines[-1].startswith(b"* BYE")
        assert smtp.read_until_closed().startswith(b"421 4.3.2")
        idling.close()
        smtp.close()
    finally:
        serve.kill()
    assert finished.code == 0, finished.stderr
    assert finished.stdout.endswith("mailgate: stopping\nmailgate: stopped\n")
    assert "Traceback" not in finished.stderr


def test_acknowledged_mail_survives_a_restart_after_ctrl_c(config: Path) -> None:
    alice = _create_inbox(config, "alice@example.test")
    bob = _create_inbox(config, "Bob@Example.test")
    serve = Serve(config, cwd=config.parent)
    try:
        server = Ports(serve)
        first_fingerprint = _fingerprint(server.imaps)
        with SMTPSession.login_as(server, alice) as s:
            data = make_message(alice.address, "bob@example.test", subject="kept")
            assert s.send_mail(alice.address, ["bob@example.test"], data).line.startswith("250")
        # Ctrl-C stops it as cleanly as SIGTERM does.
        finished = serve.stop(signal.SIGINT)
        assert finished.code == 0, finished.stderr
        assert finished.stdout.endswith("mailgate: stopped\n")
    finally:
        serve.kill()

    again = Serve(config, cwd=config.parent)
    try:
        out = "\n".join(again.stdout)
        # The certificate made at first start is reused, not replaced.
        assert "generated now" not in out
        assert _fingerprint(again.ports["imaps"]) == first_fingerprint
        with _imap(Ports(again)) as t:
            t.ok(f"AUTHENTICATE PLAIN {plain(bob.address, bob.key)}")
            t.ok("SELECT INBOX")
            r = t.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert len(r.lines(b"FETCH")) == 1
        assert b"Subject: kept" in r.untagged[0]
        assert again.stop().code == 0
    finally:
        again.kill()


def test_serve_prints_the_api_url_and_answers_the_sdk(config: Path) -> None:
    alice = _create_inbox(config, "alice@example.test")
    serve = Serve(config, cwd=config.parent)
    try:
        out = "\n".join(serve.stdout)
        line = re.search(
            r"^  listening    api +127\.0\.0\.1:(\d+) \(http://mail\.example\.test:(\d+), "
            r"docs at /docs\)$",
            out,
            re.MULTILINE,
        )
        assert line, out
        port = int(line.group(1))
        assert int(line.group(2)) == port
        base = f"http://127.0.0.1:{port}"
        client = AgentMail(
            api_key=alice.key, environment=AgentMailEnvironment(http=base, websockets=base)
        )
        assert [i.inbox_id for i in client.inboxes.list().inboxes] == [alice.address]
        finished = serve.stop(signal.SIGTERM)
    finally:
        serve.kill()
    assert finished.code == 0, finished.stderr
    assert "Traceback" not in finished.stderr


def test_serve_json_is_one_line_for_scripts(config: Path) -> None:
    serve = Serve(config, cwd=config.parent, as_json=True)
    try:
        ready = serve.ready
        assert ready["status"] == "ready"
        assert ready["hostname"] == "mail.example.test"
        assert PASSWORD not in json.dumps(ready)
        names = {listener["name"]: listener for listener in ready["listeners"]}
        assert {"imaps", "imap", "submissions", "submission", "api"} <= set(names)
        assert names["imaps"]["security"] == "TLS"
        assert names["api"]["url"] == f"http://mail.example.test:{names['api']['port']}"
        assert ready["certificate"]["sha256"] == _fingerprint(names["imaps"]["port"])
        finished = serve.stop(signal.SIGTERM)
    finally:
        serve.kill()
    assert finished.code == 0, finished.stderr
    # Every line is JSON: the ready line, then the goodbye.
    lines = [json.loads(line) for line in finished.stdout.splitlines()]
    assert lines == [ready, {"status": "stopping"}, {"status": "stopped"}]
