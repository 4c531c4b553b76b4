"""The listening sockets of `serve`: what each is called and shows, and binding them all once for
worker processes to share (mailgate/workers.py). Light on purpose: the supervising parent
imports it without the protocol servers."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from mailgate.config import ConfigError, Settings

# Each listener: its name, and the setting that gives its port.
LISTENER_PORTS = {
    "imap": ("imap", "port"),
    "imaps": ("imap", "tls_port"),
    "submission": ("smtp", "submission_port"),
    "submissions": ("smtp", "tls_port"),
    "mx": ("smtp", "mx_port"),
    "api": ("api", "port"),
}


@dataclass(frozen=True, slots=True)
class Listener:
    name: str  # imap, imaps, submission, submissions, mx, api
    host: str
    port: int
    security: str  # "TLS", "STARTTLS", or "none" (plain HTTP)
    url: str = ""  # what clients are given (the API's base URL)


def describe(settings: Settings, name: str, port: int) -> Listener:
    """The listener `name` as `serve` shows it, on `port`."""
    bind = settings.server.bind
    if name == "api":
        tls = settings.api.tls
        url = f"{'https' if tls else 'http'}://{settings.server.hostname}:{port}"
        return Listener(name, bind, port, "TLS" if tls else "none", url)
    return Listener(name, bind, port, "TLS" if name in ("imaps", "submissions") else "STARTTLS")


def bind(settings: Settings) -> dict[str, socket.socket]:
    """Every listening socket, by listener name, bound once for worker processes to share
    (`App.sockets`); a port that cannot be had is a ConfigError naming its setting."""
    host = settings.server.bind
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: dict[str, socket.socket] = {}
    try:
        for name, (section, key) in LISTENER_PORTS.items():
            requested = getattr(getattr(settings, section), key)
            try:
                sockets[name] = socket.create_server((host, requested), family=family, backlog=128)
            except OSError as exc:
                raise ConfigError(
                    f"[{section}] {key}: cannot listen on {host}:{requested}: {why(exc)}"
                ) from None
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def why(error: BaseException) -> str:
    """'Address already in use', not the libraries' longer wrappings of it."""
    number = getattr(error, "errno", None)
    return os.strerror(number) if number else str(error)
