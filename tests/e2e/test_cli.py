"""The `mailgate` commands, run in a temp directory (by this process's `mailgate.cli.main`,
as a subprocess where the environment or serving is the point): inboxes and keys,
--json for scripts, --config / MAILGATE_CONFIG / MAILGATE_* overrides, one-line configuration
errors with exit code 2, and `mailgate check` naming the step that failed."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_message
from tests.e2e.process import clean_env, config_file, run, run_here
from tests.harness import Account, Server
from tests.smtp.helpers import imap_login, smtp_login

EXIT_FAILED = 1
EXIT_CONFIG = 2


class CLI:
    """`mailgate … --config <file>` in one temp directory."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.cwd = config.parent

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        if env is None and args[:1] != ("serve",):
            return run_here(*args, "--config", str(self.config), cwd=self.cwd)
        return run(*args, "--config", str(self.config), cwd=self.cwd, env=env)

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, code: int = EXIT_FAILED) -> str:
        """The one stderr line of a command that must fail with `code`."""
        done = self(*args)
        assert done.returncode == code, (done.stdout, done.stderr)
        return one_line(done.stderr)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mailgate: ")
    return lines[0]


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> Iterator[CLI]:
    with config_file(tmp_path, backend) as path:
        yield CLI(path)


# -------------------------------------------------------------------- inboxes and keys


def test_internationalized_inbox_addresses(cli: CLI) -> None:
    """An IDN domain is kept as its A-labels (one inbox by either form); a UTF-8 local part
    is refused with the reason."""
    out = cli.ok("inbox", "create", "Agent@例え.JP")
    assert "created inbox agent@xn--r8jz45g.jp" in out
    assert "already exists" in cli.fails("inbox", "create", "agent@XN--R8JZ45G.jp")
    assert [i["address"] for i in cli.json("inbox", "list")] == ["agent@xn--r8jz45g.jp"]
    error = cli.fails("inbox", "create", "δοκιμή@example.test")
    assert "an inbox address must be ASCII before the @" in error
    assert "not a valid domain name" in cli.fails("inbox", "create", "a@xn--zz-.jp")


def test_inbox_and_key_lifecycle(cli: CLI) -> None:
    out = cli.ok("inbox", "create", "Alice@Example.TEST")
    assert "created inbox alice@example.test (pod default)" in out
    assert "shown only now" in out
    token = next(word for word in out.split() if word.startswith("mgk_"))
    key_id = out.split("key id: ")[1].split()[0]
    prefix, token_id, secret = token.split("_", 2)
    assert (prefix, token_id) == ("mgk", key_id)
    assert len(secret) >= 43  # 32 random bytes in base64url: 256 bits

    bob = cli.json("inbox", "create", "bob@example.test", "--pod", "acme")
    assert bob["inbox"]["address"] == "bob@example.test"
    assert bob["key"]["scope"] == "inbox bob@example.test"
    assert bob["key"]["active"] is True
    assert bob["api_key"].startswith(f"mgk_{bob['key']['id']}_")
    assert "secret_hash" not in bob["key"]
    # Addresses are compared case-insensitively.
    assert "already exists" in cli.fails("inbox", "create", "ALICE@example.test")
    assert [(i["address"], i["pod"]) for i in cli.json("inbox", "list")] == [
        ("alice@example.test", "default"),
        ("bob@example.test", "acme"),
    ]

    pod_key = cli.json("key", "create", "--pod", "acme", "--label", "agents")
    assert pod_key["key"]["scope"] == "pod acme"
    assert pod_key["key"]["label"] == "agents"
    assert cli.json("key", "revoke", key_id)["active"] is False
    keys = {k["id"]: k for k in cli.json("key", "list")}
    assert set(keys) == {key_id, bob["key"]["id"], pod_key["key"]["id"]}
    assert [keys[k]["active"] for k in (key_id, bob["key"]["id"], pod_key["key"]["id"])] == [
        False,
        True,
        True,
    ]
    # Secrets are shown once, at creation, and never listed.
    assert not any("secret" in name for k in keys.values() for name in k)

    assert cli.json("inbox", "delete", "bob@example.test") == {"deleted": "bob@example.test"}
    assert cli.ok("inbox", "list").split() == ["alice@example.test", "pod", "default"]


def test_inbox_quota(cli: CLI) -> None:
    cli.ok("inbox", "create", "quota@example.test")
    shown = cli.json("inbox", "quota", "Quota@example.test")
    assert shown == {"inbox": "quota@example.test", "used": 0, "limit": 0}
    assert cli.json("inbox", "quota", "quota@example.test", "500K")["limit"] == 500 * 1024
    assert cli.ok("inbox", "quota", "quota@example.test") == (
        "inbox quota@example.test: 0 bytes used, quota 512000 bytes\n"
    )
    assert cli.json("inbox", "quota", "quota@example.test", "0")["limit"] == 0
    assert "no limit" in cli.ok("inbox", "quota", "quota@example.test")
    # "default" follows [limits] inbox_quota, whatever it is when mail arrives.
    assert cli.json("inbox", "quota", "quota@example.test", "default")["limit"] == 0
    with_default = clean_env(MAILGATE_LIMITS_INBOX_QUOTA="2048")
    done = cli("inbox", "quota", "quota@example.test", "--json", env=with_default)
    assert json.loads(done.stdout)["limit"] == 2048, done.stderr
    assert "no inbox" in cli.fails("inbox", "quota", "nobody@example.test", "1M")
    for bad in ("-1", "12X", "1.5G", "M"):
        done = cli("inbox", "quota", "quota@example.test", bad)
        assert done.returncode == EXIT_CONFIG, bad
        assert "is not a size" in done.stderr
    done = cli(
        "inbox", "quota", "quota@example.test", env=clean_env(MAILGATE_LIMITS_INBOX_QUOTA="-1")
    )
    assert done.returncode == EXIT_CONFIG
    assert "[limits] inbox_quota" in one_line(done.stderr)


def test_pod_lifecycle(cli: CLI) -> None:
    created = cli.json("pod", "create", "acme")
    assert created["name"] == "acme"
    assert "already exists" in cli.fails("pod", "create", "acme")
    cli.ok("inbox", "create", "bob@example.test", "--pod", "acme")
    pods = {p["name"]: p for p in cli.json("pod", "list")}
    assert {name: p["inboxes"] for name, p in pods.items()} == {"default": 0, "acme": 1}
    assert "acme" in cli.ok("pod", "list")
    # Only an empty pod goes, and never the default one.
    assert "acme" in cli.fails("pod", "delete", "acme")
    assert "default" in cli.fails("pod", "delete", "default")
    cli.ok("inbox", "delete", "bob@example.test")
    assert cli.json("pod", "delete", "acme") == {"deleted": "acme"}
    assert [p["name"] for p in cli.json("pod", "list")] == ["default"]
    assert "no pod nowhere" in cli.fails("pod", "delete", "nowhere")


def test_failures_are_one_line_and_exit_1(cli: CLI) -> None:
    for args, message in [
        (("inbox", "create", "not-an-address"), "not an address"),
        (("inbox", "delete", "nobody@example.test"), "no inbox nobody@example.test"),
        (("key", "revoke", "0123456789ab"), "no key 0123456789ab"),
        (("key", "create", "--inbox", "nobody@example.test"), "nobody@example.test"),
    ]:
        assert message in cli.fails(*args), args


def test_key_for_the_default_pod_on_a_fresh_install(cli: CLI) -> None:
    assert cli.json("key", "create", "--pod", "default")["key"]["scope"] == "pod default"


def test_organization_key(cli: CLI) -> None:
    created = cli.json("key", "create", "--org", "--label", "platform")
    assert created["key"]["scope"] == "organization"
    assert (created["key"]["pod"], created["key"]["inbox"]) == (None, None)
    assert created["api_key"].startswith(f"mgk_{created['key']['id']}_")
    assert "every pod (organization)" in cli.ok("key", "list")
    assert "shown only now" in cli.ok("key", "create", "--org")


# -------------------------------------------------------------------- configuration


def test_config_option_before_or_after_the_subcommand(tmp_path: Path) -> None:
    with config_file(tmp_path, "sqlite") as config:
        created = run("inbox", "create", "a@example.test", "--config", str(config), cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        # Options given before the subcommand count too (argparse would drop them).
        done = run("--json", "--config", str(config), "inbox", "list", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert [i["address"] for i in json.loads(done.stdout)] == ["a@example.test"]


def test_mailgate_config_env_and_overrides(tmp_path: Path) -> None:
    # With no configuration at all, the data directory is ./data.
    assert run("inbox", "list", cwd=tmp_path).stdout == "no inboxes\n"
    assert (tmp_path / "data" / "mailgate.db").exists()
    (tmp_path / "configured").mkdir()
    with config_file(tmp_path / "configured", "sqlite") as config:
        env = clean_env(MAILGATE_CONFIG=str(config))
        assert run("inbox", "create", "a@example.test", cwd=tmp_path, env=env).returncode == 0
        listed = run("inbox", "list", "--json", cwd=tmp_path, env=env)
        assert [i["address"] for i in json.loads(listed.stdout)] == ["a@example.test"]
        # A MAILGATE_<SECTION>_<KEY> variable beats the file: another data directory is empty.
        env["MAILGATE_SERVER_DATA_DIR"] = str(tmp_path / "elsewhere")
        listed = run("inbox", "list", "--json", cwd=tmp_path, env=env)
        assert json.loads(listed.stdout) == []
        assert (tmp_path / "elsewhere" / "mailgate.db").exists()


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[smtp]\nbogus = 1\n", "[smtp] bogus"),
        ('[smtp]\ntls_port = "465"\n', "[smtp] tls_port"),
        ("[imap]\nport = 70000\n", "[imap] port"),
        ("[smtp]\nmax_recipients = 0\n", "[smtp] max_recipients"),
        ("[nonsense]\nx = 1\n", "[nonsense]"),
        ("[server\nhostname = 1\n", "mailgate.toml"),
    ],
)
def test_bad_config_file_is_one_line_naming_the_setting(
    tmp_path: Path, toml: str, named: str
) -> None:
    config = tmp_path / "mailgate.toml"
    config.write_text(toml)
    for command in (("inbox", "list"), ("serve",)):
        done = run(*command, "--config", str(config), cwd=tmp_path)
        assert done.returncode == EXIT_CONFIG
        line = one_line(done.stderr)
        assert "configuration error" in line
        assert named in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILGATE_IMAP_TLS_PORT", "not-a-port"),
        ("MAILGATE_SMTP_SESSION_TIMEOUT", "-5"),
        ("MAILGATE_SMTP_NO_SUCH_KEY", "1"),
    ],
)
def test_bad_environment_override_names_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    done = run("inbox", "list", cwd=tmp_path, env=clean_env(**{variable: value}))
    assert done.returncode == EXIT_CONFIG
    assert variable in one_line(done.stderr)


def test_missing_config_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    for env in (clean_env(), clean_env(MAILGATE_CONFIG=missing)):
        args = (
            ("inbox", "list")
            if "MAILGATE_CONFIG" in env
            else ("inbox", "list", "--config", missing)
        )
        done = run(*args, cwd=tmp_path, env=env)
        assert done.returncode == EXIT_CONFIG
        assert "nope.toml" in one_line(done.stderr)


def test_malformed_database_url_is_a_config_error(tmp_path: Path) -> None:
    done = run("inbox", "list", cwd=tmp_path, env=clean_env(MAILGATE_DATABASE_URL="nonsense"))
    assert done.returncode == EXIT_CONFIG
    assert "[database] url" in one_line(done.stderr)


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://nobody:s3cret@127.0.0.1:9/none"
    for command in (("inbox", "list"), ("serve",)):
        done = run(*command, cwd=tmp_path, env=clean_env(MAILGATE_DATABASE_URL=url))
        assert done.returncode == EXIT_FAILED
        line = one_line(done.stderr)
        assert "cannot open the database (postgresql+asyncpg://nobody:***@127.0.0.1:9/none)" in line
        assert "s3cret" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("section", "key"), [("imap", "port"), ("smtp", "tls_port"), ("api", "port")]
)
def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path, section: str, key: str) -> None:
    with socket.socket() as taken, config_file(tmp_path, "sqlite") as config:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        variable = f"MAILGATE_{section.upper()}_{key.upper()}"
        done = run(
            "serve", "--config", str(config), cwd=tmp_path, env=clean_env(**{variable: str(port)})
        )
    assert done.returncode == EXIT_CONFIG
    line = one_line(done.stderr)
    assert f"[{section}] {key}" in line
    assert f"127.0.0.1:{port}" in line
    assert "in use" in line
    assert "ready" not in done.stdout


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_unloadable_smarthost_ca_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None
) -> None:
    ca_file = tmp_path / "relay-ca.pem"
    if content is not None:
        ca_file.write_text(content)
    with config_file(tmp_path, "sqlite") as config:
        env = clean_env(
            MAILGATE_OUTBOUND_SMARTHOST="relay.example.net:587",
            MAILGATE_OUTBOUND_SMARTHOST_CA_FILE=str(ca_file),
        )
        done = run("serve", "--config", str(config), cwd=tmp_path, env=env)
    assert done.returncode == EXIT_CONFIG
    line = one_line(done.stderr)
    assert f"[outbound] smarthost_ca_file: cannot load {ca_file}" in line
    assert "ready" not in done.stdout


def test_no_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    done = run(cwd=tmp_path)
    assert done.returncode == EXIT_CONFIG
    assert "usage: mailgate" in done.stdout


# -------------------------------------------------------------------- mailgate check


def _check(
    server: Server,
    account: Account,
    *extra: str,
    key: str | None = None,
    imap_port: int | None = None,
    smtp_port: int | None = None,
    cwd: Path,
) -> subprocess.CompletedProcess[str]:
    return run(
        "check",
        account.address,
        "--key",
        key or account.key,
        "--host",
        "127.0.0.1",
        "--imap-port",
        str(imap_port or server.imaps),
        "--smtp-port",
        str(smtp_port or server.smtps),
        *extra,
        cwd=cwd,
    )


def test_check_ok_with_counts(server: Server, account: Account, tmp_path: Path) -> None:
    with smtp_login(server, account) as smtp:
        for n in range(2):
            smtp.sendmail(
                account.address,
                [account.address],
                make_message(account.address, account.address, subject=f"m{n}"),
            )
    imap = imap_login(server, account)
    imap.select("INBOX")
    imap.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    imap.logout()
    assert server.app.certificate is not None
    cert = str(server.app.certificate.cert_path)
    for trust in (("--insecure",), ("--ca-file", cert)):
        done = _check(server, account, *trust, cwd=tmp_path)
        assert done.returncode == 0, done.stdout
        assert done.stdout.splitlines()[-1] == "OK: INBOX has 2 messages, 1 unread"
        assert "FAIL" not in done.stdout
    done = _check(server, account, "--insecure", "--json", cwd=tmp_path)
    result = json.loads(done.stdout)
    assert (result["messages"], result["unread"]) == (2, 1)
    assert [s["name"] for s in result["steps"]] == [
        "IMAP connect",
        "IMAP login",
        "IMAP STATUS INBOX",
        "SMTP connect",
        "SMTP login",
    ]
    assert all(s["ok"] for s in result["steps"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "failed_step", "explains"),
    [
        ("wrong key", "IMAP login", "AUTHENTICATIONFAILED"),
        ("nothing listening", "IMAP connect", "connection refused"),
        ("untrusted certificate", "IMAP connect", "not trusted"),
        ("not an SMTP port", "SMTP connect", ""),
    ],
)
def test_check_names_the_failing_step(
    server: Server, account: Account, tmp_path: Path, case: str, failed_step: str, explains: str
) -> None:
    options: dict[str, Any] = {}
    extra: tuple[str, ...] = ("--insecure",)
    if case == "wrong key":
        options["key"] = account.key[:-3] + "xyz"
    elif case == "nothing listening":
        options["imap_port"] = _free_port()
    elif case == "untrusted certificate":
        extra = ()
    else:
        options["smtp_port"] = server.imaps
    done = _check(server, account, *extra, cwd=tmp_path, **options)
    assert done.returncode == EXIT_FAILED
    last = done.stdout.splitlines()[-1]
    assert last.startswith(f"FAILED at {failed_step}: "), done.stdout
    assert explains in last
    assert "Traceback" not in done.stdout + done.stderr
