"""The image's start-up, checked without a Docker daemon (the test machines have none):
docker/entrypoint.sh run directly, as root and as another user, and the Dockerfile's own
HEALTHCHECK command against real servers."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Server

ROOT = Path(__file__).resolve().parents[2]
MAILGATE_ID = 10001  # the image's mailgate uid and gid
NOBODY = 65534

# What the entrypoint's command reports about the process it became.
PROBE = r"""
import json, os, socket, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
key = os.environ["MAILGATE_TLS_KEY"]
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
home = os.environ["HOME"]  # asyncpg looks in ~/.postgresql
with open(os.path.join(os.environ["MAILGATE_SERVER_DATA_DIR"], "written"), "w") as f:
    f.write("ok")
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "key_path": key, "key": open(key).read(), "bound": listener.getsockname()[1],
    "ambient": int(status["CapAmb"], 16), "no_new_privs": int(status["NoNewPrivs"]),
    "home": home, "home_usable": os.access(home, os.R_OK | os.X_OK),
}))
"""
CAP_NET_BIND_SERVICE = 1 << 10


def system_python() -> str:
    """An interpreter every user may run (a virtualenv under /root is not one)."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system Python at /usr/bin/python3")
    return python


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory under /tmp that other users may enter, with a copy of the entrypoint."""
    directory = Path(tempfile.mkdtemp(prefix="mailgate-entrypoint-", dir="/tmp"))
    directory.chmod(0o755)
    shutil.copy(ROOT / "docker" / "entrypoint.sh", directory / "entrypoint.sh")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def entrypoint(place: Path, *command: str, env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        ["sh", str(place / "entrypoint.sh"), *command],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def low_free_port() -> int:
    """A port below 1024 that nothing listens on at 127.0.0.1 (found as root)."""
    for port in range(1023, 600, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024 on 127.0.0.1")


as_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="the entrypoint's root path needs root and setpriv",
)


@as_root
def test_as_root_it_hands_data_and_a_root_only_key_to_mailgate_then_drops_root(
    place: Path,
) -> None:
    # A bind-mounted /data owned by root, and a TLS key mounted for root only.
    data = place / "data"
    (data / "certs").mkdir(parents=True)
    database = data / "mailgate.db"
    database.write_text("")
    database.chmod(0o600)
    secrets = place / "secrets"
    secrets.mkdir(mode=0o700)
    key = secrets / "tls.pem"
    key.write_text("PRIVATE KEY")
    key.chmod(0o600)
    port = low_free_port()

    became = entrypoint(
        place,
        system_python(),
        "-c",
        PROBE,
        str(port),
        env={
            "HOME": "/root",  # as Docker sets it for root
            "MAILGATE_SERVER_DATA_DIR": str(data),
            "MAILGATE_TLS_KEY": str(key),
            "MAILGATE_RUNTIME_DIR": str(place / "run"),
        },
    )
    assert (became["uid"], became["gid"], became["groups"]) == (MAILGATE_ID, MAILGATE_ID, [])
    # Its own copy of the key, in a directory only it may read; the mount is left alone.
    assert became["key_path"] == str(place / "run" / "tls.key")
    assert became["key"] == "PRIVATE KEY"
    assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (0, 0o600)
    # A port below 1024 binds without root, as --network host needs; nothing more is kept.
    assert became["bound"] == port
    assert became["ambient"] == CAP_NET_BIND_SERVICE
    assert became["no_new_privs"] == 1
    # Its own home (the image's /data; here, with no such user, the data directory), not root's.
    assert became["home"] != "/root"
    assert became["home_usable"]
    for path in (data, data / "certs", database, data / "written"):
        assert (path.stat().st_uid, path.stat().st_gid) == (MAILGATE_ID, MAILGATE_ID), path


def test_as_another_user_it_only_runs_the_command(place: Path) -> None:
    data = place / "data"
    data.mkdir()
    owner = data.stat().st_uid
    command = [system_python(), "-c", "import json, os; print(json.dumps({'uid': os.getuid()}))"]
    if os.geteuid() == 0:  # become someone else first, as `docker run --user` does
        command = [
            *("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"),
            "sh",
            str(place / "entrypoint.sh"),
            *command,
        ]
        result = subprocess.run(
            command,
            env={"PATH": "/usr/bin:/bin", "MAILGATE_SERVER_DATA_DIR": str(data)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["uid"] == NOBODY
    else:
        became = entrypoint(place, *command, env={"MAILGATE_SERVER_DATA_DIR": str(data)})
        assert became["uid"] == os.getuid()
    assert data.stat().st_uid == owner  # nothing was handed over


def healthcheck() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, run with this interpreter as the image's python
    and the repository's copy of each file the Dockerfile copies in."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert match, "the Dockerfile has no HEALTHCHECK in exec form"
    command = list(json.loads(match.group(1)))
    assert command[0] == "python"
    copies = re.findall(r"^COPY (\S+) (\S+)$", dockerfile, re.MULTILINE)
    copied = {target: str(ROOT / source) for source, target in copies}
    return [sys.executable, *(copied.get(arg, arg) for arg in command[1:])]


def probe(server: Server, **settings: str) -> int:
    """The HEALTHCHECK's exit status, with the image's settings for this server (its API port,
    and MAILGATE_* variables as given)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MAILGATE_API_PORT": str(server.port("api")),
        **settings,
    }
    done = subprocess.run(healthcheck(), env=env, capture_output=True, timeout=30, check=False)
    return done.returncode


def test_the_image_healthcheck_passes_on_a_healthy_node(server: Server) -> None:
    # The image's MAILGATE_SERVER_BIND, every address: the check asks loopback.
    assert probe(server, MAILGATE_SERVER_BIND="0.0.0.0") == 0
    assert probe(server, MAILGATE_SERVER_BIND=server.host) == 0


def test_the_image_healthcheck_asks_where_the_node_listens(
    make_server: Callable[..., Server],
) -> None:
    # As with --network host and MAILGATE_SERVER_BIND set to one of the host's addresses:
    # nothing answers on 127.0.0.1, and the node is healthy all the same.
    elsewhere = make_server(server={"bind": "127.0.0.2"})
    assert probe(elsewhere, MAILGATE_SERVER_BIND="127.0.0.2") == 0
    assert probe(elsewhere, MAILGATE_SERVER_BIND="0.0.0.0") != 0  # it does ask
    # HTTPS on the API's port, with the self-signed certificate.
    https = make_server(api={"tls": True})
    assert probe(https, MAILGATE_API_TLS="true") == 0
    assert probe(https) != 0


def test_the_image_healthcheck_goes_past_a_proxy(server: Server) -> None:
    # Docker hands the client's proxy settings to containers; loopback is not behind them.
    assert probe(server, http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9") == 0


def test_the_image_healthcheck_fails_once_the_database_is_gone(
    backend: str, make_server: Callable[..., Server]
) -> None:
    if backend != "sqlite":
        pytest.skip("the SQLite database file (PostgreSQL: tests/http/test_health.py)")
    server = make_server()
    os.truncate(Path(server.settings.server.data_dir) / "mailgate.db", 0)
    assert probe(server) != 0


def test_the_image_installs_the_pinned_versions() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -c constraints.txt ." in dockerfile
    # The runtime dependencies first, pinned, in a layer that only pyproject.toml and
    # constraints.txt invalidate; not the test extra's (constraints.txt pins those too).
    first = dockerfile.split("RUN ")[2]  # after the user's creation
    assert "pip install --no-cache-dir -c constraints.txt -r requirements.txt" in first
    assert "['project']['dependencies']" in first
    before = dockerfile.split(first)[0]
    assert re.search(r"^COPY pyproject.toml constraints.txt ./$", before, re.MULTILINE)
    assert not re.search(r"^COPY (?!pyproject.toml constraints.txt ).*\./$", before, re.MULTILINE)
    assert "-r constraints.txt" not in dockerfile
