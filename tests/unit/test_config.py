"""mailgate.config: the documented file equals the built-in defaults, MAILGATE_* overrides, and
one ConfigError naming the setting for every kind of mistake."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path

import pytest

from mailgate.config import (
    CONFIG_ENV,
    ConfigError,
    Settings,
    load,
    with_overrides,
)

DOCUMENTED = Path(__file__).resolve().parents[2] / "config" / "mailgate.toml"


def sections() -> list[tuple[str, type]]:
    hints = typing.get_type_hints(Settings)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(Settings)]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailgate.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------ the documented file


def test_documented_file_equals_the_builtin_defaults() -> None:
    assert load(DOCUMENTED, env={}) == Settings()


def test_documented_file_lists_every_setting() -> None:
    with DOCUMENTED.open("rb") as fh:
        documented = tomllib.load(fh)
    expected = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in sections()}
    assert {name: set(table) for name, table in documented.items()} == expected


def test_every_key_in_the_documented_file_has_a_comment_line_above_it() -> None:
    lines = DOCUMENTED.read_text().splitlines()
    keys = 0
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+\s*=", line):
            keys += 1
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("# "), f"no comment above {line!r}"
            assert len(above) > 3, f"empty comment above {line!r}"
    assert keys == sum(len(dataclasses.fields(cls)) for _, cls in sections())


def test_the_issue_names_and_defaults() -> None:
    s = Settings()
    assert (s.server.hostname, s.server.bind, s.server.data_dir) == (
        "localhost",
        "127.0.0.1",
        "data",
    )
    assert s.database.url == ""
    assert (s.tls.cert, s.tls.key) == ("", "")
    assert (s.imap.port, s.imap.tls_port) == (1143, 1993)
    assert (s.smtp.submission_port, s.smtp.tls_port) == (1587, 1465)
    assert s.smtp.max_recipients == 50
    assert s.smtp.max_message_size == 10485760
    assert s.smtp.session_timeout == 1800


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.imap.port = 1  # type: ignore[misc]


def test_empty_database_url_means_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    s = with_overrides(Settings(), server={"data_dir": str(tmp_path / "d")})
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'mailgate.db'}"
    pg = with_overrides(s, database={"url": "postgresql+asyncpg://h/db"})
    assert pg.database_url == "postgresql+asyncpg://h/db"


# ------------------------------------------------------------------------ sources


def test_no_file_and_no_env_gives_the_defaults() -> None:
    assert load(env={}) == Settings()


def test_file_values_override_defaults_and_missing_keys_keep_them(tmp_path: Path) -> None:
    path = write(tmp_path, '[imap]\ntls_port = 2993\n[server]\nhostname = "mx.example.test"\n')
    s = load(path, env={})
    assert s.imap.tls_port == 2993
    assert s.imap.port == 1143
    assert s.server.hostname == "mx.example.test"
    assert s.smtp == Settings().smtp


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp]\nmax_recipients = 7\n")
    assert load(env={CONFIG_ENV: str(path)}).smtp.max_recipients == 7
    # An explicit path wins over MAILGATE_CONFIG.
    other = tmp_path / "other.toml"
    other.write_text("[smtp]\nmax_recipients = 9\n")
    assert load(other, env={CONFIG_ENV: str(path)}).smtp.max_recipients == 9
    assert load(env={CONFIG_ENV: ""}) == Settings()


@pytest.mark.parametrize(
    ("var", "raw", "section", "key", "value"),
    [
        ("MAILGATE_IMAP_TLS_PORT", "1994", "imap", "tls_port", 1994),
        ("MAILGATE_SMTP_MAX_RECIPIENTS", "3", "smtp", "max_recipients", 3),
        ("MAILGATE_DATABASE_POOL_TIMEOUT", "2.5", "database", "pool_timeout", 2.5),
        ("MAILGATE_DATABASE_POOL_TIMEOUT", "3", "database", "pool_timeout", 3.0),
        ("MAILGATE_AUTH_FAILURE_DELAY", "0", "auth", "failure_delay", 0.0),
        ("MAILGATE_LIMITS_INBOX_QUOTA", "1073741824", "limits", "inbox_quota", 1073741824),
        ("MAILGATE_SERVER_HOSTNAME", "mx.example.test", "server", "hostname", "mx.example.test"),
        ("MAILGATE_SERVER_DATA_DIR", "/var/lib/mg", "server", "data_dir", "/var/lib/mg"),
        # Strings are taken as they are, not parsed as TOML.
        ("MAILGATE_DATABASE_URL", "postgresql+asyncpg://u:p@h/d", "database", "url",
         "postgresql+asyncpg://u:p@h/d"),
        ("MAILGATE_TLS_CERT", "123", "tls", "cert", "123"),
        ("MAILGATE_SERVER_BIND", '"quoted"', "server", "bind", '"quoted"'),
    ],
)  # fmt: skip
def test_environment_overrides(var: str, raw: str, section: str, key: str, value: object) -> None:
    s = load(env={var: raw})
    got = getattr(getattr(s, section), key)
    assert got == value
    assert type(got) is type(value)


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[imap]\nport = 2143\n")
    assert load(path, env={"MAILGATE_IMAP_PORT": "3143"}).imap.port == 3143


def test_other_mailgate_variables_are_not_settings() -> None:
    assert load(env={"MAILGATE_TEST_DATABASE_URL": "x", "MAILGATE_CONFIG": ""}) == Settings()


# ------------------------------------------------------------------------ errors


def assert_error(text: str, *fragments: str) -> None:
    assert "\n" not in text, "one line"
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[imapp]\nport = 1\n", ["[imapp]", "unknown section"]),
        ("port = 1\n", ["[port]", "unknown section"]),
        ("[imap]\nprot = 1\n", ["[imap] prot", "unknown setting"]),
        ("[imap]\n[imap.sub]\nx = 1\n", ["[imap] sub", "unknown setting"]),
        ('[imap]\nport = "1143"\n', ["[imap] port", "integer"]),
        ("[imap]\nport = 1143.0\n", ["[imap] port", "integer"]),
        ("[imap]\nport = true\n", ["[imap] port", "integer"]),
        ("[server]\nhostname = 5\n", ["[server] hostname", "string"]),
        ('[server]\nproxy_networks = ["10.0.0.0/33"]\n', ["[server] proxy_networks", "networks"]),
        ('[server]\nproxy_networks = "10.0.0.0/8"\n', ["[server] proxy_networks"]),
        ('[database]\npool_timeout = "x"\n', ["[database] pool_timeout", "number"]),
        ("[database]\npool_timeout = true\n", ["[database] pool_timeout", "number"]),
        ("[imap]\nport = 65536\n", ["[imap] port", "port number"]),
        ("[imap]\ntls_port = -1\n", ["[imap] tls_port", "port number"]),
        ("[smtp]\nsubmission_port = 70000\n", ["[smtp] submission_port", "port"]),
        ("[smtp]\nmax_recipients = 0\n", ["[smtp] max_recipients", "greater than 0"]),
        ("[auth]\nlockout = -1\n", ["[auth] lockout", "0 or greater"]),
        ("[limits]\ninbox_quota = -1\n", ["[limits] inbox_quota", "0 or greater"]),
        ('[limits]\ninbox_quota = "1G"\n', ["[limits] inbox_quota", "integer"]),
        ("[database]\npool_timeout = nan\n", ["[database] pool_timeout"]),
        ("imap = 5\n", ["[imap]", "table"]),
    ],
)
def test_file_mistakes_name_the_setting(tmp_path: Path, toml: str, names: list[str]) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert_error(str(info.value), str(path), *names)


@pytest.mark.parametrize(
    ("var", "raw", "names"),
    [
        ("MAILGATE_IMAP_TLS_PORT", "abc", ["MAILGATE_IMAP_TLS_PORT", "[imap] tls_port", "integer"]),
        ("MAILGATE_IMAP_TLS_PORT", "99999", ["MAILGATE_IMAP_TLS_PORT", "port number"]),
        ("MAILGATE_IMAP_TLS_PORT", "1.5", ["[imap] tls_port", "integer"]),
        ("MAILGATE_IMAP_TLS_PORT", "", ["[imap] tls_port"]),
        ("MAILGATE_IMAP_TLSPORT", "1", ["MAILGATE_IMAP_TLSPORT", "[imap] tlsport", "unknown"]),
        ("MAILGATE_DATABASE_POOL_TIMEOUT", "soon", ["[database] pool_timeout", "number"]),
        ("MAILGATE_SMTP_MAX_RECIPIENTS", "-5", ["[smtp] max_recipients", "greater than 0"]),
        ("MAILGATE_LIMITS_INBOX_QUOTA", "lots", ["[limits] inbox_quota", "integer"]),
    ],
)
def test_environment_mistakes_name_the_variable(var: str, raw: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(env={var: raw})
    assert_error(str(info.value), *names)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="not found"):
        load(env={CONFIG_ENV: str(tmp_path / "nope.toml")})


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load(tmp_path, env={})


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[imap\nport = \n")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert_error(str(info.value), str(path))


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhostname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert_error(str(info.value), str(path), "UTF-8")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite+aiosqlite:///relative.db",
        "sqlite+aiosqlite:////var/lib/mailgate/mailgate.db",
        "postgresql+asyncpg://mailgate:pw@db.internal:5432/mailgate",
    ],
)
def test_database_urls_the_store_can_use(url: str) -> None:
    assert load(env={"MAILGATE_DATABASE_URL": url}).database.url == url


@pytest.mark.parametrize(
    "url",
    [
        "nonsense",
        "postgresql://user:s3cret@host/db",  # the sync driver: not installed, not async
        "mysql+aiomysql://user:s3cret@host/db",
        "sqlite:///x.db",
        "postgresql+asyncpg://",
    ],
)
def test_database_url_the_store_cannot_use(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(env={"MAILGATE_DATABASE_URL": url})
    assert_error(str(info.value), "[database] url", "postgresql+asyncpg://")
    assert "s3cret" not in str(info.value)
