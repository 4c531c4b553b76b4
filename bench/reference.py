"""The reference servers: Dovecot for IMAP and Postfix for submission, the mail system users
would set up instead of mailgate, so that the phases can measure both with the same clients.

They run as a throw-away instance from a temporary directory of their own: their own config
files, queue, maildirs, sockets and logs there, listening on free ports of 127.0.0.1 only, so
nothing of the system's (a Postfix or Dovecot of its own, /etc) is read, changed or in the way.
The set-up is the usual one: Dovecot with a plain-text passwd-file (the benchmark's inboxes and
their API keys as passwords), maildirs of one unprivileged user, IMAP over implicit TLS, LMTP
for delivery, and every other setting at its default (mail_fsync=optimized, one login process
and one imap process per connection); Postfix with SMTPS (wrapper mode), SASL through Dovecot's
auth socket, and the inboxes' domain a virtual mailbox domain delivered over LMTP to Dovecot.
Nothing is installed here: they need the packages (INSTALL) and root, since both masters start
as root and run their services as their own users.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from clients import self_signed
from common import DOMAIN, HOST, READY_TIMEOUT, Account, BenchError
from meters import die_with_parent, tree_cpu_seconds, tree_memory_kib, tree_open_fds
from server import SERVER_HOSTNAME

INSTALL = "apt-get install -y dovecot-imapd dovecot-lmtpd postfix"
MAIL_USER = "nobody"  # owns every maildir: any unprivileged user would do
MAX_CONNECTIONS = 500  # the most IMAP connections the runner asks of it at once

# Postfix's services, as in its stock master.cf, none chrooted (the queue is elsewhere than
# where a chroot would expect it); the SMTPS listener comes first, written per instance.
POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def missing() -> str | None:
    """Why the reference servers cannot run here, in one line naming the fix; None if they can."""
    for binary in ("dovecot", "doveconf", "postfix", "postconf"):
        if shutil.which(binary) is None:
            return f"{binary} not found: {INSTALL}"
    libexec = _output("doveconf", "-c", "/dev/null", "-h", "libexec_dir")
    if not Path(libexec, "lmtp").exists():
        return f"Dovecot's LMTP server not found in {libexec}: {INSTALL}"
    if os.geteuid() != 0:
        return "the reference servers need root: the Dovecot and Postfix masters start as root"
    return None


def _output(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Reference:
    """Dovecot and Postfix, started and stopped together; a Target for the phases."""

    name = "Dovecot+Postfix"
    queues = True  # Postfix's 250 means queued; the delivery to Dovecot follows

    def __init__(self, accounts: list[Account], connections: int) -> None:
        """`connections`: the most IMAP connections one client will hold at once."""
        self.dir = Path(tempfile.mkdtemp(prefix="mailgate-reference-"))
        self.dir.chmod(0o755)  # Postfix's and Dovecot's own users reach their parts of it
        self.ports = {"imaps": _free_port(), "submissions": _free_port()}
        self.dovecot_version = _output("dovecot", "--version").split()[0]
        self.postfix_version = _output("postconf", "-h", "mail_version")
        self._dovecot: subprocess.Popen[bytes] | None = None
        self._postfix: subprocess.Popen[bytes] | None = None
        self._configure(accounts, connections)

    @property
    def title(self) -> str:
        return f"Dovecot {self.dovecot_version} + Postfix {self.postfix_version}"

    def _configure(self, accounts: list[Account], connections: int) -> None:
        d = self.dir
        cert, key = self_signed(d / "tls", SERVER_HOSTNAME)
        mail = pwd.getpwnam(MAIL_USER)
        maildirs = d / "mail"
        maildirs.mkdir(mode=0o700)
        os.chown(maildirs, mail.pw_uid, mail.pw_gid)
        (d / "dovecot").mkdir()
        users = d / "dovecot" / "users"
        users.write_text(
            "".join(
                f"{a.address}:{{PLAIN}}{a.key}:{mail.pw_uid}:{mail.pw_gid}::"
                f"{maildirs / a.address}::\n"
                for a in accounts
            )
        )
        users.chmod(0o640)
        shutil.chown(users, group="dovecot")
        # Postfix makes its queue (with the right owners) on `postfix check`; Dovecot's auth
        # and LMTP sockets go into its private/ directory, as in the usual set-up.
        queue = d / "postfix" / "queue"
        queue.mkdir(parents=True)
        (d / "postfix" / "conf").mkdir()
        # One client holds every IDLE connection from one address, as one user: raise the
        # limits that stand in the way (each connection is an imap-login and an imap process).
        limit = connections + 100
        (d / "dovecot" / "dovecot.conf").write_text(
            f"""\
base_dir = {d}/dovecot/run
state_dir = {d}/dovecot/state
instance_name = mailgate-reference-{d.name}
log_path = {d}/dovecot/dovecot.log
protocols = imap lmtp
listen = {HOST}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
first_valid_uid = {mail.pw_uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.ports["imaps"]}
    ssl = yes
  }}
  process_limit = {limit}
}}
service imap {{
  process_limit = {limit}
}}
service anvil {{
  client_limit = {limit + 1000}
}}
service auth {{
  client_limit = {limit + 1000}
  unix_listener {queue}/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
service lmtp {{
  unix_listener {queue}/private/dovecot-lmtp {{
    mode = 0600
    user = postfix
    group = postfix
  }}
}}
"""
        )
        (d / "postfix" / "recipients").write_text("".join(f"{a.address} ok\n" for a in accounts))
        (d / "postfix" / "conf" / "main.cf").write_text(
            f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {d}/postfix/data
maillog_file = {d}/postfix/postfix.log
maillog_file_prefixes = {d}
myhostname = {SERVER_HOSTNAME}
mydestination =
inet_interfaces = {HOST}
inet_protocols = ipv4
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{d}/postfix/recipients
virtual_transport = lmtp:unix:private/dovecot-lmtp
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
"""
        )
        (d / "postfix" / "conf" / "master.cf").write_text(
            f"""\
{HOST}:{self.ports["submissions"]} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
{POSTFIX_SERVICES}"""
        )

    def start(self) -> None:
        d = self.dir
        conf = d / "postfix" / "conf"
        check = subprocess.run(
            ["postfix", "-c", str(conf), "check"], capture_output=True, timeout=120, check=False
        )
        if check.returncode != 0:
            raise BenchError(f"postfix check failed:\n{self.log_tail()}")
        self._dovecot = self._spawn(["dovecot", "-F", "-c", str(d / "dovecot" / "dovecot.conf")])
        self._wait_listening("imaps", self._dovecot, "dovecot")
        master = Path(_output("postconf", "-c", str(conf), "-h", "daemon_directory"), "master")
        # -d: in the foreground, so the process we started is the master.
        self._postfix = self._spawn([str(master), "-c", str(conf), "-d"])
        self._wait_listening("submissions", self._postfix, "postfix master")

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        # In their own session (^C reaches only us), gone with us even if we are killed.
        with open(self.dir / "masters.err", "ab") as err:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.dir,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def _wait_listening(self, port: str, proc: subprocess.Popen[bytes], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"{what} exited with {proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                socket.create_connection((HOST, self.ports[port]), 1).close()
                return
            time.sleep(0.05)
        raise BenchError(f"no {port} listener after {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        for proc in (self._postfix, self._dovecot):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self._postfix, self._dovecot):
            if proc is not None:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self._postfix = self._dovecot = None

    def close(self, keep: bool = False) -> None:
        """Stop both and remove the directory, unless `keep`."""
        self.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self._dovecot, self._postfix))

    def _roots(self) -> list[int]:
        return [p.pid for p in (self._dovecot, self._postfix) if p is not None]

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(*self._roots())

    def memory_kib(self) -> dict[str, int]:
        return tree_memory_kib(*self._roots())

    def open_fds(self) -> int:
        return tree_open_fds(*self._roots())

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for log in ("masters.err", "dovecot/dovecot.log", "postfix/postfix.log"):
            with contextlib.suppress(OSError):
                text = (self.dir / log).read_text(errors="replace").splitlines()[-lines:]
                if text:
                    out.append(f"{log}:\n" + "\n".join(text))
        return "\n".join(out) or "(no logs)"
