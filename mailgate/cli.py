"""The `mailgate` command: argument parsing and printing; the work happens elsewhere.

Exit codes: 0 success, 1 the operation failed (no such inbox, check failed…), 2 bad
configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mailgate import __version__
from mailgate.config import ConfigError, Settings, load

EXIT_FAILED = 1
EXIT_CONFIG = 2


class Failed(Exception):
    """The command could not do what was asked; the message says why."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        settings = load(args.config)
        return int(args.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"mailgate: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Failed as exc:
        print(f"mailgate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _common_options(*, defaults: bool) -> argparse.ArgumentParser:
    """--config and --json, accepted before and after the subcommand.

    argparse lets a subcommand's defaults overwrite what the main parser already parsed, so
    `mailgate --config X inbox list` would lose X: only the main parser sets defaults.
    """
    common = argparse.ArgumentParser(add_help=False)
    default: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    common.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $MAILGATE_CONFIG, else built-in defaults)",
        **default,
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts", **default)
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="mailgate",
        description="Self-hosted IMAP/SMTP gateway.",
        parents=[_common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"mailgate {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the IMAP, SMTP and HTTP API server")
    # Given by a supervising `serve` to the worker processes it starts ([server] workers).
    serve.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    mcp = sub.add_parser(
        "mcp",
        parents=[common],
        help="serve MCP over stdio, through a running mailgate's /mcp",
        description="Serve MCP (the tools of /mcp) on stdin and stdout, for clients that start "
        "a command. The API key comes from $MAILGATE_API_KEY or --api-key-file, never from "
        "the command line.",
    )
    mcp.add_argument("--url", help="the server's /mcp (default: the [api] address configured)")
    mcp.add_argument("--api-key-file", metavar="PATH", help="a file holding the API key")
    mcp.add_argument("--tools", help="offer only these tools (comma-separated names)")
    mcp.set_defaults(run=_mcp)

    db = sub.add_parser("db", parents=[common], help="database schema")
    db_sub = db.add_subparsers(metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", parents=[common], help="apply migrations")
    upgrade.set_defaults(run=_db_upgrade)

    pod = sub.add_parser("pod", parents=[common], help="manage pods (groups of inboxes)")
    pod_sub = pod.add_subparsers(metavar="ACTION")
    pod_create = pod_sub.add_parser("create", parents=[common], help="create an empty pod")
    pod_create.add_argument("name")
    pod_create.set_defaults(run=_pod_create)
    pod_list = pod_sub.add_parser("list", parents=[common], help="list pods")
    pod_list.set_defaults(run=_pod_list)
    pod_delete = pod_sub.add_parser(
        "delete", parents=[common], help="delete an empty pod (not the default one)"
    )
    pod_delete.add_argument("name")
    pod_delete.set_defaults(run=_pod_delete)

    inbox = sub.add_parser("inbox", parents=[common], help="manage inboxes")
    inbox_sub = inbox.add_subparsers(metavar="ACTION")
    create = inbox_sub.add_parser("create", parents=[common], help="create an inbox and a key")
    create.add_argument("address")
    create.add_argument("--pod", default="default", help="pod to put it in (default: default)")
    create.set_defaults(run=_inbox_create)
    listing = inbox_sub.add_parser("list", parents=[common], help="list inboxes")
    listing.add_argument("--pod", help="only this pod's inboxes")
    listing.set_defaults(run=_inbox_list)
    delete = inbox_sub.add_parser("delete", parents=[common], help="delete an inbox and its mail")
    delete.add_argument("address")
    delete.set_defaults(run=_inbox_delete)
    quota = inbox_sub.add_parser(
        "quota", parents=[common], help="show or set how much mail an inbox may hold"
    )
    quota.add_argument("address")
    quota.add_argument(
        "size",
        nargs="?",
        type=_quota_size,
        help="bytes, or with K, M, G (1024-based): 500M; 0: no limit; "
        "default: [limits] inbox_quota; none given: show it",
    )
    quota.set_defaults(run=_inbox_quota)

    key = sub.add_parser("key", parents=[common], help="manage API keys")
    key_sub = key.add_subparsers(metavar="ACTION")
    key_create = key_sub.add_parser("create", parents=[common], help="create an API key")
    scope = key_create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--inbox", metavar="ADDRESS", help="the key opens this inbox only")
    scope.add_argument("--pod", metavar="POD", help="the key opens every inbox of this pod")
    scope.add_argument(
        "--org",
        action="store_true",
        help="the key opens every pod; over the HTTP API it may create pods, inboxes and keys",
    )
    key_create.add_argument("--label", default="", help="a note to recognise the key by")
    key_create.set_defaults(run=_key_create)
    key_list = key_sub.add_parser("list", parents=[common], help="list API keys")
    key_list.set_defaults(run=_key_list)
    revoke = key_sub.add_parser("revoke", parents=[common], help="revoke an API key")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(run=_key_revoke)

    domain = sub.add_parser("domain", parents=[common], help="manage domains and DKIM keys")
    domain_sub = domain.add_subparsers(metavar="ACTION")
    domain_add = domain_sub.add_parser("add", parents=[common], help="add a domain (with keys)")
    domain_add.add_argument("domain")
    domain_add.add_argument(
        "--dmarc-policy",
        choices=("none", "quarantine", "reject"),
        default="quarantine",
        help="the p= of the DMARC record to publish (default: quarantine)",
    )
    domain_add.add_argument("--spf", default="v=spf1 mx -all", help="the SPF record to publish")
    domain_add.set_defaults(run=_domain_add)
    domain_list = domain_sub.add_parser("list", parents=[common], help="list domains")
    domain_list.set_defaults(run=_domain_list)
    for action, helptext, run in (
        ("show", "a domain and its DKIM keys", _domain_show),
        ("delete", "delete a domain that has no inboxes", _domain_delete),
        ("dns", "the DNS records to publish, zone-file ready", _domain_dns),
        ("rotate-dkim", "new DKIM keys; the old ones stay published", _domain_rotate),
    ):
        command = domain_sub.add_parser(action, parents=[common], help=helptext)
        command.add_argument("domain")
        command.set_defaults(run=run)
    remove_key = domain_sub.add_parser(
        "remove-dkim", parents=[common], help="stop publishing a retired DKIM key"
    )
    remove_key.add_argument("domain")
    remove_key.add_argument("selector")
    remove_key.set_defaults(run=_domain_remove_key)

    queue = sub.add_parser("queue", parents=[common], help="the outbound queue")
    queue_sub = queue.add_subparsers(metavar="ACTION")
    queue_list = queue_sub.add_parser("list", parents=[common], help="queued recipients")
    queue_list.set_defaults(run=_queue_list)
    queue_retry = queue_sub.add_parser("retry", parents=[common], help="try again now")
    which = queue_retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="the queue id (see queue list)")
    which.add_argument("--all", action="store_true", help="every queued recipient")
    queue_retry.set_defaults(run=_queue_retry)
    queue_delete = queue_sub.add_parser(
        "delete", parents=[common], help="give up on a recipient (its sender gets a bounce)"
    )
    queue_delete.add_argument("id", type=int)
    queue_delete.set_defaults(run=_queue_delete)

    rules = sub.add_parser("list", parents=[common], help="allow and block lists")
    rules_sub = rules.add_subparsers(metavar="ACTION")
    for action, helptext in (
        ("add", "allow or block an address or domain"),
        ("remove", "remove an entry"),
        ("show", "show a list"),
    ):
        command = rules_sub.add_parser(action, parents=[common], help=helptext)
        owner = command.add_mutually_exclusive_group(required=True)
        owner.add_argument("--inbox", metavar="ADDRESS", help="the list of this inbox")
        owner.add_argument("--pod", metavar="POD", help="the list of every inbox of this pod")
        kind = command.add_mutually_exclusive_group(required=action != "show")
        kind.add_argument("--allow", metavar="ENTRY", help="an address or domain to allow")
        kind.add_argument("--block", metavar="ENTRY", help="an address or domain to block")
        command.set_defaults(run=_rules, rules_action=action)

    check = sub.add_parser(
        "check", parents=[common], help="log in over IMAP and SMTP as a client would"
    )
    check.add_argument("address")
    check.add_argument("--key", required=True, help="the API key to log in with")
    check.add_argument("--host", help="server to connect to (default: [server] hostname)")
    check.add_argument("--imap-port", type=int, help="IMAP TLS port (default: [imap] tls_port)")
    check.add_argument("--smtp-port", type=int, help="SMTP TLS port (default: [smtp] tls_port)")
    trust = check.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", help="trust this certificate (e.g. the self-signed one)")
    trust.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    check.set_defaults(run=_check)
    return parser


# -------------------------------------------------------------------- helpers


def _with_store(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from mailgate.store.api import Store
    from mailgate.store.errors import StoreError, Unavailable

    async def run() -> Any:
        try:
            store = await Store.open(
                settings.database_url,
                pool_size=settings.database.pool_size,
                pool_timeout=settings.database.pool_timeout,
                inbox_quota=settings.limits.inbox_quota,
            )
        except Unavailable as exc:
            raise Failed(f"cannot open the database ({_shown(settings)}): {exc}") from None
        try:
            return await work(store)
        except StoreError as exc:
            raise Failed(str(exc)) from None
        finally:
            await store.close()

    return asyncio.run(run())


def _shown(settings: Settings) -> str:
    """The database URL without its password, fit for a terminal or a log."""
    url = settings.database_url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _key_dict(key: Any) -> dict[str, Any]:
    data = asdict(key)
    data.pop("secret_hash", None)
    data["scope"] = "organization" if key.scope == "organization" else _key_scope(key)
    data["active"] = key.active
    return data


# -------------------------------------------------------------------- commands


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate.workers import worker_count

    if args.worker:
        return _serve_worker(json.loads(args.worker), settings)
    count = worker_count(settings)
    if count > 1:
        return _serve_workers(args, settings, count)
    from mailgate.app import App, install_reactor
    from mailgate.store.errors import Unavailable

    _configure_logging()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    app = App(settings)
    stopping = asyncio.Event()

    async def run() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await app.start()
        except Unavailable as exc:
            raise Failed(f"cannot open the database ({_shown(settings)}): {exc}") from None
        if args.json:
            _announce_json(app)
        else:
            _announce(app)
        await stopping.wait()
        print('{"status": "stopping"}' if args.json else "mailgate: stopping", flush=True)
        await app.stop()
        print('{"status": "stopped"}' if args.json else "mailgate: stopped", flush=True)

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings, count: int) -> int:
    """The parent of `count` worker processes (mailgate/workers.py): it prints what `serve`
    prints, and its exit code is the one a single process would have."""
    from mailgate.store.errors import Unavailable
    from mailgate.workers import Supervisor, WorkerFailed

    _configure_logging()
    command = [sys.executable, "-m", "mailgate", "serve"]
    if args.config:
        command += ["--config", args.config]

    async def run() -> int:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        supervisor = Supervisor(settings, count, command)
        try:
            serving = await supervisor.start()
        except Unavailable as exc:
            raise Failed(f"cannot open the database ({_shown(settings)}): {exc}") from None
        except WorkerFailed as exc:
            return exc.code if exc.code > 0 else EXIT_FAILED
        if args.json:
            _announce_json(serving, serving.pids)
        else:
            _announce(serving, serving.pids)
        await stopping.wait()
        print('{"status": "stopping"}' if args.json else "mailgate: stopping", flush=True)
        await supervisor.stop()
        print('{"status": "stopped"}' if args.json else "mailgate: stopped", flush=True)
        return 0

    return asyncio.run(run())


def _serve_worker(spec: dict[str, Any], settings: Settings) -> int:
    """One worker of a supervising `serve`: an App on the sockets it inherited; it prints
    nothing (its parent does) and tells its parent on `ready` when it serves."""
    from mailgate.app import App, install_reactor
    from mailgate.store.errors import Unavailable

    index = int(spec["index"])
    sockets = {name: socket.socket(fileno=fd) for name, fd in spec["sockets"].items()}
    relay = socket.socket(fileno=spec["relay"])
    ready = socket.socket(fileno=spec["ready"])
    _configure_logging(f"worker {index}")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    stopping = asyncio.Event()
    app = App(settings, worker=index, sockets=sockets, relay=relay, on_orphaned=stopping.set)

    async def run() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await app.start()
        except Unavailable as exc:
            raise Failed(f"cannot open the database ({_shown(settings)}): {exc}") from None
        with ready:
            ready.sendall(b"ready\n")
        await stopping.wait()
        await app.stop()

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return 0


def _announce(app: Any, workers: list[int] | None = None) -> None:
    settings: Settings = app.settings
    cert = app.certificate
    print(f"mailgate {__version__} serving {settings.server.hostname}")
    print(f"  database     {_shown(settings)}")
    origin = "self-signed, generated now" if cert.generated else "configured"
    if not settings.tls.cert and not cert.generated:
        origin = "self-signed"
    print(f"  certificate  {cert.cert_path} ({origin})")
    print(f"  sha256       {cert.fingerprint}")
    for listener in app.listeners:
        where = f"{listener.host}:{listener.port}"
        if listener.url:
            print(f"  listening    {listener.name:<12} {where} ({listener.url}, docs at /docs)")
        else:
            print(f"  listening    {listener.name:<12} {where} ({listener.security})")
    if workers:
        pids = ", ".join(map(str, workers))
        print(f"  workers      {len(workers)} processes (pids {pids})")
    print("ready", flush=True)


def _announce_json(app: Any, workers: list[int] | None = None) -> None:
    """The same as _announce, as one line of JSON for a supervisor or a script to read."""
    cert = app.certificate
    ready = {
        "status": "ready",
        "version": __version__,
        "hostname": app.settings.server.hostname,
        "database": _shown(app.settings),
        "certificate": {
            "path": str(cert.cert_path),
            "sha256": cert.fingerprint,
            "generated": cert.generated,
        },
        "listeners": [asdict(listener) for listener in app.listeners],
    }
    if workers:
        ready["workers"] = workers
    print(json.dumps(ready), flush=True)


def _configure_logging(process: str = "") -> None:
    """`process` names a worker in each of its lines (they share the parent's stderr)."""
    where = f"[{process}] " if process else ""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s"
    )
    # alembic logs every start at INFO; aiosmtpd logs every command, and on the implicit-TLS
    # port warns that AUTH lacks TLS (it cannot see the TLS it runs in); Twisted logs each
    # port it opens and closes, which `serve` prints itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    logging.getLogger("twisted").setLevel(logging.WARNING)
    # httpx logs every webhook delivery at INFO, its full URL (and any token in it) included;
    # the webhook worker logs what matters itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The MCP SDK tells of its session manager starting and stopping at INFO.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    observer: Any = STDLibLogObserver()  # provides ILogObserver (zope), which mypy cannot see
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Any) -> None:
        return None  # opening the store applied the migrations

    _with_store(settings, work)
    _emit(args, {"database": _shown(settings), "status": "up to date"}, "database is up to date")
    return 0


def _pod_create(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    pod = _with_store(settings, lambda store: provision.create_pod(store, args.name))
    _emit(args, asdict(pod), f"created pod {pod.name}")
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate.http.mcp.bridge import bridge

    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text().strip()
        except OSError as exc:
            raise Failed(f"cannot read --api-key-file: {exc.strerror}") from None
    else:
        key = os.environ.get("MAILGATE_API_KEY", "").strip()
    if not key:
        raise Failed("give an API key in $MAILGATE_API_KEY or --api-key-file")
    url = args.url or _api_url(settings) + "/mcp"
    tools = {t.strip() for t in args.tools.split(",") if t.strip()} if args.tools else None
    asyncio.run(bridge(url, key, tools))
    return 0


def _api_url(settings: Settings) -> str:
    """The configured API's address, as a client on this machine reaches it."""
    host = settings.server.bind
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.api.tls else "http"
    return f"{scheme}://{host}:{settings.api.port}"


def _pod_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Any) -> list[tuple[Any, int]]:
        inboxes = await store.list_inboxes()
        return [
            (pod, sum(1 for i in inboxes if i.pod == pod.name)) for pod in await store.list_pods()
        ]

    pods = _with_store(settings, work)
    lines = [f"{pod.name:<40} {count} inbox(es)" for pod, count in pods] or ["no pods"]
    _emit(args, [{**asdict(pod), "inboxes": count} for pod, count in pods], "\n".join(lines))
    return 0


def _pod_delete(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    _with_store(settings, lambda store: provision.delete_pod(store, args.name))
    _emit(args, {"deleted": args.name}, f"deleted pod {args.name}")
    return 0


def _inbox_create(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    async def work(store: Any) -> tuple[Any, Any, str]:
        inbox = await provision.create_inbox(store, args.address, args.pod)
        key, token = await provision.issue_key(
            store, inbox=inbox.address, label="created with the inbox"
        )
        return inbox, key, token

    inbox, key, token = _with_store(settings, work)
    domain = inbox.address.rpartition("@")[2]
    _emit(
        args,
        {"inbox": asdict(inbox), "key": _key_dict(key), "api_key": token},
        f"created inbox {inbox.address} (pod {inbox.pod})\n"
        f"API key (shown only now, keep it safe): {token}\n"
        f"key id: {key.id}\n"
        f"to send to and receive from the internet: mailgate domain dns {domain}",
    )
    return 0


def _inbox_list(args: argparse.Namespace, settings: Settings) -> int:
    inboxes = _with_store(settings, lambda store: store.list_inboxes(args.pod))
    lines = [f"{i.address:<40} pod {i.pod}" for i in inboxes] or ["no inboxes"]
    _emit(args, [asdict(i) for i in inboxes], "\n".join(lines))
    return 0


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _quota_size(text: str) -> int | str:
    if text == "default":
        return text
    number, unit = text.rstrip("KMGTkmgt"), text[len(text.rstrip("KMGTkmgt")) :].upper()
    if not number.isdigit() or len(unit) > 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (bytes, or a number with K, M, G or T; or default)"
        )
    return int(number) * _SIZE_UNITS[unit]


def _inbox_quota(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Any) -> tuple[Any, Any]:
        inbox = await store.get_inbox(args.address)
        if args.size is None:
            return inbox, await store.quota(inbox.id)
        own = None if args.size == "default" else args.size
        return inbox, await store.set_inbox_quota(inbox.address, own)

    inbox, quota = _with_store(settings, work)
    limit = f"{quota.limit} bytes" if quota.limit else "no limit"
    _emit(
        args,
        {"inbox": inbox.address, "used": quota.used, "limit": quota.limit},
        f"inbox {inbox.address}: {quota.used} bytes used, quota {limit}",
    )
    return 0


def _inbox_delete(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    _with_store(settings, lambda store: provision.delete_inbox(store, args.address))
    _emit(args, {"deleted": args.address}, f"deleted inbox {args.address} and all its mail")
    return 0


def _key_create(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    async def work(store: Any) -> tuple[Any, str]:
        return await provision.issue_key(
            store, inbox=args.inbox, pod=args.pod, organization=args.org, label=args.label
        )

    key, token = _with_store(settings, work)
    scope = _key_scope(key)
    _emit(
        args,
        {"key": _key_dict(key), "api_key": token},
        f"API key for {scope} (shown only now, keep it safe): {token}\nkey id: {key.id}",
    )
    return 0


def _key_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = _with_store(settings, lambda store: store.list_keys())
    lines = [
        f"{k.id}  {'active ' if k.active else 'revoked'}  {_key_scope(k):<40} {k.label}"
        for k in keys
    ] or ["no keys"]
    _emit(args, [_key_dict(k) for k in keys], "\n".join(lines))
    return 0


def _key_scope(key: Any) -> str:
    if key.scope == "inbox":
        return f"inbox {key.inbox}"
    return "every pod (organization)" if key.scope == "organization" else f"pod {key.pod}"


def _key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    key = _with_store(settings, lambda store: provision.revoke_key(store, args.key_id))
    _emit(args, _key_dict(key), f"revoked key {key.id}")
    return 0


def _domain_dict(domain: Any, settings: Settings) -> dict[str, Any]:
    from mailgate.delivery.domains import records_to_publish

    return {
        "name": domain.name,
        "created_at": domain.created_at,
        "spf": domain.spf,
        "dmarc": domain.dmarc,
        "dkim": [
            {"selector": k.selector, "algorithm": k.algorithm, "active": k.active}
            for k in domain.keys
        ],
        "dns": [
            {"name": r.name, "type": r.type, "value": r.value, "strings": r.strings}
            for r in records_to_publish(domain, settings)
        ],
    }


def _domain_text(domain: Any) -> str:
    keys = "\n".join(
        f"  dkim {k.selector:<16} {k.algorithm:<15} {'signs' if k.active else 'retired'}"
        for k in domain.keys
    )
    return f"{domain.name}\n  spf   {domain.spf}\n  dmarc {domain.dmarc}\n{keys}"


def _domain_add(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    domain = _with_store(
        settings,
        lambda store: provision.add_domain(
            store, args.domain, spf=args.spf, dmarc_policy=args.dmarc_policy
        ),
    )
    _emit(
        args,
        _domain_dict(domain, settings),
        f"added domain {domain.name}\npublish its records: mailgate domain dns {domain.name}",
    )
    return 0


def _domain_list(args: argparse.Namespace, settings: Settings) -> int:
    domains = _with_store(settings, lambda store: store.list_domains())
    _emit(
        args,
        [_domain_dict(d, settings) for d in domains],
        "\n".join(d.name for d in domains) or "no domains",
    )
    return 0


def _domain_show(args: argparse.Namespace, settings: Settings) -> int:
    domain = _with_store(settings, lambda store: store.get_domain(args.domain))
    _emit(args, _domain_dict(domain, settings), _domain_text(domain))
    return 0


def _domain_delete(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    _with_store(settings, lambda store: provision.delete_domain(store, args.domain))
    _emit(args, {"deleted": args.domain}, f"deleted domain {args.domain}")
    return 0


def _domain_dns(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate.delivery.domains import zone_file

    domain = _with_store(settings, lambda store: store.get_domain(args.domain))
    hostname = settings.server.hostname
    _emit(args, _domain_dict(domain, settings)["dns"], zone_file(domain, settings))
    if "." not in hostname.strip(".") or hostname.lower().endswith("localhost"):
        print(
            f"warning: [server] hostname is {hostname!r}: the MX record must name this "
            "server's public DNS name; set [server] hostname to it",
            file=sys.stderr,
        )
    return 0


def _domain_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    domain = _with_store(settings, lambda store: provision.rotate_dkim(store, args.domain))
    _emit(
        args,
        _domain_dict(domain, settings),
        f"{_domain_text(domain)}\npublish the new selectors (mailgate domain dns {domain.name}); "
        "remove a retired one with `mailgate domain remove-dkim` once mail signed with it "
        "has been delivered",
    )
    return 0


def _domain_remove_key(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    domain = _with_store(
        settings, lambda store: provision.remove_dkim(store, args.domain, args.selector)
    )
    _emit(args, _domain_dict(domain, settings), _domain_text(domain))
    return 0


def _queue_list(args: argparse.Namespace, settings: Settings) -> int:
    import time

    items = _with_store(settings, lambda store: store.list_outbound())
    now = int(time.time())
    lines = [
        f"{i.id:>6}  {i.recipient:<36} from {i.mail_from:<30} attempts {i.attempts:<3} "
        f"next in {max(i.next_attempt_at - now, 0)}s  {i.last_reply or '-'}"
        for i in items
    ] or ["the queue is empty"]
    _emit(args, [asdict(i) for i in items], "\n".join(lines))
    return 0


def _queue_retry(args: argparse.Namespace, settings: Settings) -> int:
    ids = None if args.all else [args.id]
    if ids is not None:
        _with_store(settings, lambda store: store.get_outbound(args.id))
    count = _with_store(settings, lambda store: store.retry_outbound(ids))
    _emit(args, {"rescheduled": count}, f"{count} recipient(s) will be tried now")
    return 0


def _queue_delete(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate.delivery.outbound import cancel

    item = _with_store(settings, lambda store: cancel(store, settings.server.hostname, args.id))
    _emit(
        args,
        asdict(item),
        f"deleted {item.recipient} from the queue; {item.mail_from} gets a bounce",
    )
    return 0


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate import provision

    owner = {"inbox": args.inbox} if args.inbox else {"pod": args.pod}
    action = "allow" if args.allow else "block"
    entry = args.allow or args.block
    if args.rules_action == "add":
        _with_store(
            settings, lambda store: provision.add_sender_rule(store, action, entry, **owner)
        )
    elif args.rules_action == "remove":
        _with_store(
            settings, lambda store: provision.remove_sender_rule(store, action, entry, **owner)
        )
    rules = _with_store(settings, lambda store: store.list_sender_rules(**owner))
    if args.rules_action == "show" and entry:
        rules = [r for r in rules if r.action == action and r.entry == entry.lower()]
    lines = [f"{r.action:<6} {r.entry}" for r in rules] or ["the list is empty"]
    _emit(args, [asdict(r) for r in rules], "\n".join(lines))
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from mailgate.check import ConnectionCheck

    check = ConnectionCheck(
        address=args.address,
        key=args.key,
        host=args.host or settings.server.hostname,
        imap_port=args.imap_port or settings.imap.tls_port,
        smtp_port=args.smtp_port or settings.smtp.tls_port,
        ca_file=args.ca_file,
        insecure=args.insecure,
    )
    result = check.run()
    _emit(args, asdict(result), result.summary())
    return 0 if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
