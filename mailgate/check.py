"""`mailgate check`: log in over IMAP and SMTP exactly as a client would, and say which step
failed and why (the "Test Connection" button of agent platforms, as a command).

It uses the stdlib clients agents use (imaplib, smtplib), over TLS on the implicit-TLS ports.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field

TIMEOUT = 15.0


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class CheckResult:
    steps: list[Step] = field(default_factory=list)
    messages: int | None = None
    unread: int | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def summary(self) -> str:
        lines = [f"{'ok  ' if s.ok else 'FAIL'}  {s.name}: {s.detail}" for s in self.steps]
        if self.ok:
            lines.append(f"OK: INBOX has {self.messages} messages, {self.unread} unread")
        else:
            failed = next(s for s in self.steps if not s.ok)
            lines.append(f"FAILED at {failed.name}: {failed.detail}")
        return "\n".join(lines)


@dataclass
class ConnectionCheck:
    address: str
    key: str
    host: str
    imap_port: int
    smtp_port: int
    ca_file: str | None = None
    insecure: bool = False

    def run(self) -> CheckResult:
        result = CheckResult()
        self._imap(result)
        self._smtp(result)
        return result

    def _context(self) -> ssl.SSLContext:
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=self.ca_file)

    def _imap(self, result: CheckResult) -> None:
        where = f"{self.host}:{self.imap_port}"
        try:
            client = imaplib.IMAP4_SSL(
                self.host, self.imap_port, ssl_context=self._context(), timeout=TIMEOUT
            )
        except (OSError, imaplib.IMAP4.error) as exc:
            result.steps.append(Step("IMAP connect", False, f"{where}: {_explain(exc)}"))
            return
        result.steps.append(Step("IMAP connect", True, f"{where} over TLS"))
        try:
            try:
                client.login(self.address, self.key)
            except imaplib.IMAP4.error as exc:
                result.steps.append(Step("IMAP login", False, _text(exc)))
                return
            result.steps.append(Step("IMAP login", True, f"logged in as {self.address}"))
            status, data = client.status("INBOX", "(MESSAGES UNSEEN)")
            if status != "OK" or not data or data[0] is None:
                result.steps.append(Step("IMAP STATUS INBOX", False, _text(data)))
                return
            text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            counts = dict(re.findall(r"(MESSAGES|UNSEEN) (\d+)", text))
            result.messages = int(counts.get("MESSAGES", 0))
            result.unread = int(counts.get("UNSEEN", 0))
            result.steps.append(
                Step(
                    "IMAP STATUS INBOX", True, f"{result.messages} messages, {result.unread} unread"
                )
            )
        except (OSError, imaplib.IMAP4.error) as exc:
            result.steps.append(Step("IMAP session", False, _explain(exc)))
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.logout()

    def _smtp(self, result: CheckResult) -> None:
        where = f"{self.host}:{self.smtp_port}"
        try:
            client = smtplib.SMTP_SSL(
                self.host, self.smtp_port, context=self._context(), timeout=TIMEOUT
            )
        except (OSError, smtplib.SMTPException) as exc:
            result.steps.append(Step("SMTP connect", False, f"{where}: {_explain(exc)}"))
            return
        result.steps.append(Step("SMTP connect", True, f"{where} over TLS"))
        try:
            client.login(self.address, self.key)
            result.steps.append(Step("SMTP login", True, f"logged in as {self.address}"))
        except smtplib.SMTPAuthenticationError as exc:
            result.steps.append(
                Step("SMTP login", False, f"{exc.smtp_code} {_text(exc.smtp_error)}")
            )
        except (OSError, smtplib.SMTPException) as exc:
            result.steps.append(Step("SMTP login", False, _explain(exc)))
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, BaseException) and value.args:
        return _text(value.args[0])
    if isinstance(value, list | tuple) and value:
        return _text(value[0])
    return str(value)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the server's certificate is not trusted ({exc.verify_message}); pass "
            "--ca-file with the server's certificate (the self-signed one is printed by "
            "`mailgate serve`), or --insecure"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: is mailgate running, and is this the TLS port?"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out: a firewall, or the wrong host or port"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason}): is this the TLS port?"
    return _text(exc) or type(exc).__name__
