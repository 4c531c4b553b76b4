"""Typed, frozen settings: built-in defaults, a TOML file, then MAILGATE_* environment overrides.

The defaults here are the ones `config/mailgate.toml` documents (a test keeps the two equal).
Every problem is reported as one `ConfigError` naming the setting, which the CLI turns into a
one-line message and exit code 2.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A setting is missing, misspelled, of the wrong type or out of range."""


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "must be a port number from 0 to 65535 (0: any free port)"


def _positive(v: int | float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _non_negative(v: int | float) -> str | None:
    return None if v >= 0 else "must be 0 or greater"


# More processes than this is a typo, not a machine: each holds its own database connections.
MAX_WORKERS = 256


def _workers(v: int) -> str | None:
    if 0 <= v <= MAX_WORKERS:
        return None
    return f"must be a number of processes from 1 to {MAX_WORKERS}, or 0 (one per CPU core)"


# The database URLs the store can use: SQLAlchemy's asyncio drivers for SQLite and PostgreSQL.
DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


def _database_url(v: str) -> str | None:
    scheme, sep, rest = v.partition("://")
    if not v or (sep and rest and scheme in DATABASE_SCHEMES):
        return None
    return (
        "must be empty (SQLite in data_dir), sqlite+aiosqlite:///PATH "
        "or postgresql+asyncpg://USER@HOST/DATABASE"
    )


def _check(fn: Any, *, secret: bool = False) -> dict[str, Any]:
    # secret: the value is not repeated in the error (a database URL may hold a password).
    return {"check": fn, "secret": secret}


def _networks(values: tuple[str, ...]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f'must be IP addresses or networks ("10.0.0.0/8"), not {value!r}'
    return None


def _origins(values: tuple[str, ...]) -> str | None:
    for value in values:
        scheme, sep, rest = value.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            return f'must be origins ("https://app.example.com"), not {value!r}'
    return None


@dataclass(frozen=True)
class ServerSettings:
    hostname: str = "localhost"
    bind: str = "127.0.0.1"
    data_dir: str = "data"
    # Load balancers that send the PROXY protocol header; empty: no PROXY protocol.
    proxy_networks: tuple[str, ...] = field(default=(), metadata=_check(_networks))
    # Processes `mailgate serve` runs, each with its own event loop on the same ports; 0: one
    # per CPU core, 1: a single process (no supervisor).
    workers: int = field(default=0, metadata=_check(_workers))


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = field(default="", metadata=_check(_database_url, secret=True))
    pool_size: int = field(default=10, metadata=_check(_positive))
    pool_timeout: float = field(default=10.0, metadata=_check(_positive))


@dataclass(frozen=True)
class TLSSettings:
    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class IMAPSettings:
    port: int = field(default=1143, metadata=_check(_port))
    tls_port: int = field(default=1993, metadata=_check(_port))
    max_message_size: int = field(default=10485760, metadata=_check(_positive))
    max_command_size: int = field(default=65536, metadata=_check(_positive))
    autologout: int = field(default=1800, metadata=_check(_positive))
    preauth_timeout: int = field(default=60, metadata=_check(_positive))
    idle_keepalive: int = field(default=120, metadata=_check(_positive))


@dataclass(frozen=True)
class SMTPSettings:
    submission_port: int = field(default=1587, metadata=_check(_port))
    tls_port: int = field(default=1465, metadata=_check(_port))
    max_recipients: int = field(default=50, metadata=_check(_positive))
    max_message_size: int = field(default=10485760, metadata=_check(_positive))
    session_timeout: int = field(default=1800, metadata=_check(_positive))
    command_timeout: int = field(default=300, metadata=_check(_positive))
    mx_port: int = field(default=2525, metadata=_check(_port))


def _nameservers(values: tuple[str, ...]) -> str | None:
    for value in values:
        host, sep, port = value.rpartition(":") if value.count(":") == 1 else ("", "", "")
        if sep and not (port.isdigit() and 0 < int(port) < 65536):
            return f'must be "host" or "host:port" addresses, not {value!r}'
        try:
            ipaddress.ip_address(host if sep else value)
        except ValueError:
            return f"must be IP addresses (with an optional :port), not {value!r}"
    return None


@dataclass(frozen=True)
class DNSSettings:
    nameservers: tuple[str, ...] = field(default=(), metadata=_check(_nameservers))
    timeout: float = field(default=5.0, metadata=_check(_positive))


def _hostport(value: str) -> str | None:
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f'must be "host:port" (or empty for direct MX delivery), not {value!r}'
    return None


def _tls_mode(value: str) -> str | None:
    return (
        None
        if value in ("starttls", "implicit", "none")
        else (f'must be "starttls", "implicit" or "none", not {value!r}')
    )


def _intervals(values: tuple[int, ...]) -> str | None:
    if not values or any(v <= 0 for v in values):
        return "must be a non-empty list of positive numbers of seconds"
    return None


@dataclass(frozen=True)
class OutboundSettings:
    smarthost: str = field(default="", metadata=_check(_hostport))
    smarthost_tls: str = field(default="starttls", metadata=_check(_tls_mode))
    smarthost_username: str = ""
    smarthost_password: str = ""
    smarthost_ca_file: str = ""
    mx_port: int = field(default=25, metadata=_check(_port))
    retry_intervals: tuple[int, ...] = field(
        default=(60, 300, 900, 3600, 14400), metadata=_check(_intervals)
    )
    max_queue_age: int = field(default=432000, metadata=_check(_positive))
    concurrency: int = field(default=20, metadata=_check(_positive))
    timeout: float = field(default=60.0, metadata=_check(_positive))
    lease: int = field(default=600, metadata=_check(_positive))


@dataclass(frozen=True)
class AuthSettings:
    max_failures: int = field(default=10, metadata=_check(_positive))
    failure_window: int = field(default=600, metadata=_check(_positive))
    failure_delay: float = field(default=0.5, metadata=_check(_non_negative))
    max_failure_delay: float = field(default=8.0, metadata=_check(_non_negative))
    ban_after: int = field(default=0, metadata=_check(_non_negative))
    lockout: int = field(default=300, metadata=_check(_non_negative))


@dataclass(frozen=True)
class APISettings:
    port: int = field(default=8080, metadata=_check(_port))
    # HTTPS with the [tls] certificate; false: plain HTTP (behind a TLS-terminating proxy).
    tls: bool = False
    # A send of an [smtp] max_message_size message fits: 10 MiB of attachments is about 13.4 MiB
    # in base64, and the text and HTML bodies come on top.
    max_request_size: int = field(default=16777216, metadata=_check(_positive))
    # Seconds a request's header may take to arrive whole, and its body may pause between two
    # reads (nginx's client_header_timeout and client_body_timeout); then 408 and close.
    read_timeout: int = field(default=30, metadata=_check(_positive))
    # Seconds events (message.received ...) are kept for webhooks that are behind, listings and
    # metrics: 90 days, as far back as the SDK's metrics reach.
    event_retention: int = field(default=7776000, metadata=_check(_positive))
    # GET /metrics for every client; false: only loopback clients and organization keys.
    public_metrics: bool = False
    # Seconds between attempts at a webhook delivery that failed; the last one repeats (Svix's
    # schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h ...).
    webhook_retry_intervals: tuple[int, ...] = field(
        default=(5, 300, 1800, 7200, 18000, 36000), metadata=_check(_intervals)
    )
    # Seconds a webhook may keep failing, without one delivery answered 2xx, before it is disabled.
    webhook_disable_after: int = field(default=432000, metadata=_check(_positive))
    # Seconds a webhook endpoint has to answer a delivery (connecting included).
    webhook_timeout: float = field(default=15.0, metadata=_check(_positive))
    # Let webhooks reach loopback, private, link-local and other non-public addresses (a lab,
    # or receivers on this machine); otherwise such URLs are refused (SSRF).
    allow_private_webhooks: bool = False
    # Origins (scheme://host[:port]) a browser may call /mcp from; empty: only loopback ones
    # (http://localhost:PORT, http://127.0.0.1:PORT). Requests without Origin are not browsers'.
    mcp_allowed_origins: tuple[str, ...] = field(default=(), metadata=_check(_origins))
    # The MCP tools the server offers (names, as tools/list gives them); empty: all of them.
    mcp_tools: tuple[str, ...] = ()
    # MCP sessions (handshake-era clients) and subscription streams one API key may hold open
    # at once; one more is refused (503) until one ends.
    mcp_sessions_per_key: int = field(default=100, metadata=_check(_positive))
    # Seconds an MCP session may stay idle (no request, no open stream) before it expires.
    mcp_session_timeout: int = field(default=1800, metadata=_check(_positive))


@dataclass(frozen=True)
class LimitsSettings:
    # Messages one inbox may send (SMTP submission, the API, MCP tools) in any hour, counted
    # on every node; one more is refused for now (SMTP 450 4.7.1, API 429). 0: no limit.
    messages_per_hour: int = field(default=1000, metadata=_check(_non_negative))
    # IMAP and SMTP connections one client address may hold open at once; the next is told so
    # (IMAP BYE [UNAVAILABLE], SMTP 421 4.7.0) and closed. 0: no limit.
    connections_per_ip: int = field(default=100, metadata=_check(_non_negative))
    # Commands one IMAP or SMTP session may send per second, with a second's worth at once;
    # a faster client is slowed (its next command is read later), not refused. 0: no limit.
    commands_per_second: int = field(default=200, metadata=_check(_non_negative))
    # Addresses not counted: loopback by default (a local relay or webmail holds many).
    exempt_networks: tuple[str, ...] = field(
        default=("127.0.0.0/8", "::1/128"), metadata=_check(_networks)
    )
    # Bytes of mail one inbox may hold over all its mailboxes (IMAP QUOTA), unless the inbox
    # has a quota of its own (`mailgate inbox quota`). 0: no limit.
    inbox_quota: int = field(default=0, metadata=_check(_non_negative))


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    imap: IMAPSettings = field(default_factory=IMAPSettings)
    smtp: SMTPSettings = field(default_factory=SMTPSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    dns: DNSSettings = field(default_factory=DNSSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    api: APISettings = field(default_factory=APISettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def database_url(self) -> str:
        """The configured URL, or the embedded SQLite database in the data directory."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_path.resolve() / 'mailgate.db'}"


ENV_PREFIX = "MAILGATE_"
CONFIG_ENV = "MAILGATE_CONFIG"


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings)}


def _coerce(where: str, typ: Any, value: Any, from_env: bool) -> Any:
    if from_env:
        value = _parse_env(where, typ, value)
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(typ) in (list, tuple):
        (item,) = set(typing.get_args(typ)) - {Ellipsis}
        if isinstance(value, list):
            return tuple(_coerce(f"{where}[{i}]", item, v, False) for i, v in enumerate(value))
    raise ConfigError(f"{where}: expected {_type_name(typ)}, got {value!r}")


def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) in (list, tuple):
        return "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[typ]


def _parse_env(where: str, typ: Any, raw: str) -> Any:
    if typ is str:
        return raw
    try:
        # Environment values are TOML values: 25, 1.5, true, ["a", "b"].
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"{where}: expected {_type_name(typ)}, got {raw!r}") from None


def _build_section(name: str, cls: type, values: dict[str, Any], origin: dict[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{origin[key]}: [{name}] {key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown setting (known: {', '.join(known)})")
        typ = hints[key]
        if isinstance(typ, types.UnionType):
            typ = next(t for t in typ.__args__ if t is not type(None))
        coerced = _coerce(where, typ, value, origin[key].startswith("environment"))
        check = known[key].metadata.get("check")
        if check is not None and (problem := check(coerced)):
            got = "" if known[key].metadata.get("secret") else f", got {coerced!r}"
            raise ConfigError(f"{where}: {problem}{got}")
        kwargs[key] = coerced
    return cls(**kwargs)


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file (argument, else $MAILGATE_CONFIG), then MAILGATE_* overrides."""
    env = dict(os.environ if env is None else env)
    if path is None:
        path = env.get(CONFIG_ENV) or None
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        except UnicodeDecodeError:
            # TOML files are UTF-8 (tomllib raises this, not TOMLDecodeError, for other bytes).
            raise ConfigError(f"config file {path}: not valid UTF-8") from None

    sections = _sections()
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    origin: dict[str, dict[str, str]] = {name: {} for name in sections}
    for name, table in raw.items():
        if name not in sections:
            raise ConfigError(f"{source}: [{name}]: unknown section (known: {', '.join(sections)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}]: expected a table")
        for key, value in table.items():
            values[name][key] = value
            origin[name][key] = source

    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            # Other MAILGATE_* variables (e.g. the test suite's) are not settings.
            continue
        key = rest[len(section) + 1 :]
        values[section][key] = value
        origin[section][key] = f"environment {var}"

    built = {
        name: _build_section(name, cls, values[name], origin[name])
        for name, cls in sections.items()
    }
    return Settings(**built)


def with_overrides(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of `settings` with some keys replaced (used by tests and the CLI)."""
    changed = {
        name: replace(getattr(settings, name), **values) for name, values in sections.items()
    }
    return replace(settings, **changed)
