#!/usr/bin/env python3
"""mailgate benchmark: start a real `mailgate serve`, load it over loopback, print numbers.

    .venv/bin/python bench/bench.py [--quick]
                                    [--only throughput,api_send,idle,api_idle,ws_event,webhook,
                                            mcp_notify,mcp_call,api_list,crossnode,fetch,
                                            sort,outbound,inbound,stall,memory,compress_memory,
                                            api_memory,ws_memory,mcp_memory,crash,stress,fuzz]
                                    [--database-url postgresql+asyncpg://postgres@127.0.0.1/test]
                                    [--nodes N] [--reference] [--imaptest PATH]

The server runs as a subprocess (its CPU time and memory are read from /proc, apart from the
load generator) with a temporary data directory, a generated config and ports picked by the
server itself (port 0, read back from its "listening" lines). Inboxes are created with
`mailgate inbox create --json`. Measurements (see bench/README.md for what each number means):

- throughput: SMTP submission over implicit TLS with AUTH, N concurrent clients.
- idle: latency from the SMTP 250 after DATA to the "* n EXISTS" seen by an idling IMAP client.
- crossnode (--nodes 2 or more, PostgreSQL): the same, submitting through the first node and
  idling on the last, so the change travels by LISTEN/NOTIFY.
- fetch: the header-sync FETCHes a mail client runs on opening a folder of 1,000 messages.
- sort: SORT and THREAD over a mailbox of 10,000 messages, and a NOOP's wait meanwhile.
- outbound: mail submitted for another domain, DKIM-signed by the server's delivery worker and
  delivered to a local SMTP sink found through MX records on a loopback DNS server.
- inbound: mail from another domain straight to the MX port, DKIM-signed by the benchmark, with
  SPF/DKIM/DMARC evaluated by the server against the same loopback DNS server.
- memory: server RSS/PSS per idle IMAP connection (TLS, logged in, INBOX selected, IDLE).
- compress_memory: the same with COMPRESS=DEFLATE turned on before SELECT, beside plain ones
  measured again on a fresh server.
- api_send, api_idle: the HTTP API's twins of throughput and idle, run right after them: messages
  sent with the official agentmail SDK (N concurrent clients; one at a time to an idling client).
- api_list: an inbox of thousands of messages paged through over the API, 100 a page, with the
  SDK and with bare httpx.
- api_memory: what the HTTP API adds to the server's memory: its first request, and each open
  keep-alive connection.
- ws_event: the websocket event stream's twin of idle, run right after api_idle: from the SMTP
  250 after DATA to the message.received event at a client subscribed to /v0.
- webhook: the webhooks' twin of ws_event, run right after it: from the SMTP 250 after DATA to
  the message.received event POSTed, Svix-signed, to a receiver on loopback (its signature
  verified with the svix library); then the deliveries/s of a burst of messages from several
  SMTP clients to 4 webhooks, each event exactly once at each. The server gets
  [api] allow_private_webhooks = true for it.
- ws_memory: server memory per open websocket on /v0 (authenticated, subscribed), as memory
  measures it, run right after api_memory.
- mcp_notify: the MCP server's twin of ws_event, run right after webhook: from the SMTP 250
  after DATA to notifications/resources/updated at an MCP client (the official mcp SDK)
  subscribed to the inbox's resource, in both protocol eras (resources/subscribe on a session,
  subscriptions/listen at 2026-07-28).
- mcp_call: MCP tool calls over streamable HTTP (/mcp), send_message and list_threads: latency
  of one client in each era, with the REST API's twins beside them, then calls/s of several.
- mcp_memory: server memory per open MCP session (initialize, its GET stream open, one resource
  subscription), as memory measures it, run right after ws_memory. The server gets
  [api] mcp_sessions_per_key = 10000 for it (one key opens them all).
- fanout: --connections IMAP sessions idle on one INBOX (held by load-generator processes, as
  memory's are) and 5 messages are submitted one at a time: from each 250 after DATA to the
  EXISTS at every session (p50, p99, max), and the server's CPU per session told.
- crash (only when --only names it): clients submit and APPEND while the server is killed with
  SIGKILL --kills times at random moments (--seed) and restarted on the same data; then every
  acknowledged message must be in its mailbox (or at the sink) exactly once.
- stress (only when --only names it): Dovecot's imaptest in its stress mode (50 clients, a
  random mix of commands with every reply checked against the state it tracks) for 300 s,
  with a second client timing LOGIN+SELECT+FETCH rounds meanwhile; commands/s and errors.
- fuzz (only when --only names it): --fuzz-inputs mutated commands, messages and PROXY headers
  (1,000,000) through the IMAP parser, MIME parsing and the PROXY parser in this process, and a
  share of them over TLS to the server's IMAP and SMTP; crashes, hangs, inputs/s, memory.
- workers (only when --only names it): servers of their own with [server] workers = 1, then 2;
  SMTP submission msgs/s (--messages over --clients) and an IMAP loop's loops/s for each.

With --nodes N (N >= 2, PostgreSQL only) N servers share one fresh database, each with its own
data directory and ports; the throughput clients are spread over them round-robin, and the other
single-server phases run on the first node.

With --reference, throughput, idle, fetch, sort, stress and memory also run against Dovecot +
Postfix started here for the run (reference.py), and the summary shows both side by side.

The runner (this file) sets up what the chosen phases need, runs them in the order of PHASES
and prints the summary; each phase is a module of its own (throughput.py, idle.py, ...), and the
pieces they share are in common.py, report.py, server.py, meters.py, clients.py, messages.py,
world.py and fleet.py. A phase may ask for server settings (Phase.settings), set in the config of
a run that includes it; --set overrides them.

This is a script, not a test: it prints numbers and judges only correctness (every message
arrived, every FETCH returned every message). It stops by itself and removes what it made.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import api_idle
import api_list
import api_memory
import api_send
import compress_memory
import crash
import crossnode
import events
import fanout
import fetch
import fuzz
import idle
import inbound
import mcp_calls
import mcp_memory
import mcp_notify
import memory
import outbound
import reference
import sort
import stall
import stress
import throughput
import webhooks
import workers
import ws_memory
from common import DOMAIN, HOST, BenchError
from phase import Bench, Counts, Phase
from reference import Reference
from report import Summary, progress
from server import (
    SERVER_HOSTNAME,
    Postgres,
    Server,
    create_inbox,
    db_upgrade,
    server_env,
    toml_value,
    write_config,
)
from world import SINK_DOMAIN, ZONE_TTL, Sink, Zone, publish_domain

# The phases, in the order they run.
PHASES: tuple[Phase, ...] = (
    throughput.PHASE,
    api_send.PHASE,
    idle.PHASE,
    api_idle.PHASE,
    events.PHASE,
    webhooks.PHASE,
    mcp_notify.PHASE,
    mcp_calls.PHASE,
    api_list.PHASE,
    crossnode.PHASE,
    fetch.PHASE,
    sort.PHASE,
    outbound.PHASE,
    inbound.PHASE,
    stall.PHASE,
    crash.PHASE,
    stress.PHASE,
    fuzz.PHASE,
    workers.PHASE,
    memory.PHASE,
    fanout.PHASE,
    compress_memory.PHASE,
    api_memory.PHASE,
    ws_memory.PHASE,
    mcp_memory.PHASE,
)

FULL = Counts(
    messages=800,
    clients=8,
    idle_messages=200,
    crossnode_messages=200,
    fetch_messages=1000,
    fetch_runs=20,
    connections=2000,
    outbound_messages=500,
    inbound_messages=500,
    stall_messages=20000,
    sort_messages=10000,
    sort_runs=20,
    list_messages=2000,
    list_runs=5,
    api_connections=500,
    ws_connections=1000,
    mcp_sessions=500,
    kills=100,
    seed=0,
    stress_clients=50,
    stress_secs=300,
    stress_messages=1000,
    fuzz_inputs=1_000_000,
)
QUICK = Counts(
    messages=80,
    clients=8,
    idle_messages=20,
    crossnode_messages=20,
    fetch_messages=200,
    fetch_runs=5,
    connections=200,
    outbound_messages=80,
    inbound_messages=80,
    stall_messages=2000,
    sort_messages=1000,
    sort_runs=5,
    list_messages=300,
    list_runs=3,
    api_connections=200,
    ws_connections=200,
    mcp_sessions=100,
    kills=20,
    seed=0,
    stress_clients=50,
    stress_secs=30,
    stress_messages=200,
    fuzz_inputs=20_000,
)


def parse_set(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or "." not in name:
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return name.strip(), value


def raise_fd_limit(needed: int) -> int:
    """Raise our soft RLIMIT_NOFILE (the server and client workers inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def machine_info() -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    libs = ", ".join(
        f"{n} {version(n)}"
        for n in ("Twisted", "aiosmtpd", "pyOpenSSL", "SQLAlchemy", "uvicorn", "agentmail")
    )
    return [
        f"machine   {os.cpu_count()} CPUs ({model}){mem}, {platform.platform()}",
        f"python    {platform.python_version()} ({sys.executable})",
        f"mailgate  {version('mailgate')} from {_source()}; {libs}",
    ]


def _source() -> str:
    """Where the server's `mailgate` package comes from, with its git commit if it has one."""
    spec = importlib.util.find_spec("mailgate")
    if spec is None or spec.origin is None:
        return "?"
    root = Path(spec.origin).parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(root)
    return f"{root} (git {rev})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [phase.name for phase in PHASES]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    p.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(names)} (default: all of them; "
        f"{','.join(x.name for x in PHASES if x.min_nodes > 1)} only with --nodes 2 or more; "
        f"{','.join(x.name for x in PHASES if not x.default)} only when named here)",
    )
    p.add_argument(
        "--database-url",
        help="SQLAlchemy URL of a PostgreSQL server: a fresh database is created on it for the "
        "run and dropped afterwards (default: SQLite in the temporary data directory)",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="mailgate servers sharing the database (1); 2 or more need --database-url",
    )
    p.add_argument("--messages", type=int, help="throughput: total messages (800)")
    p.add_argument("--clients", type=int, help="throughput: concurrent SMTP clients (8)")
    p.add_argument("--idle-messages", type=int, help="idle: messages (200)")
    p.add_argument("--crossnode-messages", type=int, help="crossnode: messages (200)")
    p.add_argument("--fetch-messages", type=int, help="fetch: mailbox size (1000)")
    p.add_argument("--stall-messages", type=int, help="stall: mailbox size (20000)")
    p.add_argument("--fetch-runs", type=int, help="fetch: repetitions of each FETCH (20)")
    p.add_argument("--sort-messages", type=int, help="sort: mailbox size (10000)")
    p.add_argument("--sort-runs", type=int, help="sort: repetitions of each command (20)")
    p.add_argument("--connections", type=int, help="memory, fanout: idle IMAP connections (2000)")
    p.add_argument("--outbound-messages", type=int, help="outbound: messages (500)")
    p.add_argument("--inbound-messages", type=int, help="inbound: messages (500)")
    p.add_argument("--list-messages", type=int, help="api_list: inbox size (2000)")
    p.add_argument("--list-runs", type=int, help="api_list: times to page through it (5)")
    p.add_argument(
        "--api-connections", type=int, help="api_memory: keep-alive HTTP connections (500)"
    )
    p.add_argument("--ws-connections", type=int, help="ws_memory: subscribed websockets (1000)")
    p.add_argument("--mcp-sessions", type=int, help="mcp_memory: subscribed MCP sessions (500)")
    p.add_argument("--kills", type=int, help="crash: SIGKILLs (100)")
    p.add_argument(
        "--seed",
        type=int,
        help="crash: seed of the kill moments (random); fuzz: of its inputs (15)",
    )
    p.add_argument("--fuzz-inputs", type=int, help="fuzz: inputs in all (1000000)")
    p.add_argument("--stress-clients", type=int, help="stress: imaptest's clients (50)")
    p.add_argument("--stress-secs", type=int, help="stress: seconds imaptest runs (300)")
    p.add_argument("--stress-messages", type=int, help="stress: messages in imaptest's mbox (1000)")
    p.add_argument(
        "--imaptest",
        help=f"stress: imaptest's binary (default: ${stress.IMAPTEST_ENV}, else on the PATH)",
    )
    p.add_argument(
        "--memory-rounds",
        type=int,
        default=2,
        help="memory, ws_memory, mcp_memory: times to open and close all connections; a second "
        "round shows leaks (2)",
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=parse_set,
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra server setting, e.g. database.pool_size=20 (repeatable)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help=f"also run {','.join(x.name for x in PHASES if x.reference)} on Dovecot + Postfix "
        "started here (they must be installed; root)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = p.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql"):
        p.error("--database-url must be a postgresql URL (SQLite is the default)")
    if args.nodes < 1:
        p.error("--nodes must be 1 or more")
    if args.nodes > 1 and not args.database_url:
        p.error("--nodes 2 or more needs --database-url: SQLite serves one node only")
    available = [x.name for x in PHASES if args.nodes >= x.min_nodes]
    if args.only is None:
        args.phases = [x.name for x in PHASES if x.name in available and x.default]
    else:
        only = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = set(only) - set(names)
        if unknown or not only:
            p.error(f"--only takes a comma-separated subset of {','.join(names)}")
        if set(only) - set(available):
            p.error(f"{','.join(sorted(set(only) - set(available)))} needs --nodes 2 or more")
        args.phases = [x for x in names if x in only]
    if "stress" in args.phases:
        try:
            stress.imaptest_path(args.imaptest)
        except BenchError as exc:
            p.error(str(exc))
    base = QUICK if args.quick else FULL
    args.counts = Counts(
        messages=args.messages or base.messages,
        clients=args.clients or base.clients,
        idle_messages=args.idle_messages or base.idle_messages,
        crossnode_messages=args.crossnode_messages or base.crossnode_messages,
        fetch_messages=args.fetch_messages or base.fetch_messages,
        fetch_runs=args.fetch_runs or base.fetch_runs,
        connections=args.connections or base.connections,
        outbound_messages=args.outbound_messages or base.outbound_messages,
        inbound_messages=args.inbound_messages or base.inbound_messages,
        stall_messages=args.stall_messages or base.stall_messages,
        sort_messages=args.sort_messages or base.sort_messages,
        sort_runs=args.sort_runs or base.sort_runs,
        list_messages=args.list_messages or base.list_messages,
        list_runs=args.list_runs or base.list_runs,
        api_connections=args.api_connections or base.api_connections,
        ws_connections=args.ws_connections or base.ws_connections,
        mcp_sessions=args.mcp_sessions or base.mcp_sessions,
        kills=args.kills or base.kills,
        seed=args.seed or base.seed,
        stress_clients=args.stress_clients or base.stress_clients,
        stress_secs=args.stress_secs or base.stress_secs,
        stress_messages=args.stress_messages or base.stress_messages,
        fuzz_inputs=args.fuzz_inputs or base.fuzz_inputs,
    )
    return args


def node_name(k: int) -> str:
    return f"node {chr(ord('A') + k)}" if k < 26 else f"node {k + 1}"


def on_reference(phase: Phase, bench: Bench, failed: list[str]) -> list[str]:
    """Run `phase` on the reference servers too; their results for its rows of the summary."""
    ref = bench.servers[0]
    labels = phase.labels(bench.counts, 1)
    if not ref.alive():
        failed.append(f"{phase.name} on {ref.name}: skipped, not running")
        return ["FAILED"] * len(labels)
    progress(f"{phase.name}: now on {ref.name}")
    bench.summary = Summary()
    try:
        section = phase.run(bench)
    except Exception as exc:
        failed.append(f"{phase.name} on {ref.name}: {exc}")
        print(f"\n== {phase.name} on {ref.name}: FAILED: {exc}", flush=True)
        if not ref.alive():
            print(f"{ref.name} logs (last lines):\n{ref.log_tail()}", flush=True)
        return ["FAILED"] * len(labels)
    bench.used = True
    section.title = f"{ref.name}: {section.title}"
    section.print()
    return [result for _, result, _ in bench.summary.rows]


def _terminate(signum: int, _frame: Any) -> None:
    print(f"\ninterrupted by {signal.Signals(signum).name}; cleaning up", file=sys.stderr)
    raise SystemExit(128 + signum)  # unwinds through the `finally` that cleans up


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts: Counts = args.counts
    nodes: int = args.nodes
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    began = time.perf_counter()
    fd_limit = raise_fd_limit(
        max(
            counts.connections,
            counts.api_connections,
            counts.ws_connections,
            counts.mcp_sessions * 2,
        )
        * 2
        + 1024
    )
    if "memory" in args.phases and fd_limit < counts.connections + 256:
        print(f"warning: open-file limit {fd_limit} is low for {counts.connections} connections")
    if "ws_memory" in args.phases and fd_limit < counts.ws_connections + 256:
        print(f"warning: open-file limit {fd_limit} is low for {counts.ws_connections} websockets")

    workdir = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    pg = Postgres(args.database_url) if args.database_url else None
    servers: list[Server] = []
    summary = Summary()
    failed: list[str] = []
    zone: Zone | None = None
    sink: Sink | None = None
    ref: Reference | None = None
    ref_bench: Bench | None = None
    try:
        print(f"mailgate benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        for line in machine_info():
            print("  " + line)
        if pg is not None:
            pg.create()
            database_url = pg.run_url
            print(f"  database  PostgreSQL {pg.version}, fresh database {pg.name}")
            database = f"PostgreSQL {pg.version.split()[0]}"
        else:
            import sqlite3

            database_url = ""
            print(
                f"  database  SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL) in {workdir}"
            )
            database = f"SQLite {sqlite3.sqlite_version}"
        summary.setup = f"{database}, {nodes} node{'s' if nodes > 1 else ''}"
        env = server_env()
        chosen = [phase for phase in PHASES if phase.name in args.phases]
        # Some phases need the world: a DNS server on loopback that the servers resolve through,
        # and an SMTP sink their [outbound] mx_port points at. Both start before the servers;
        # --set still overrides these settings.
        world: dict[str, Any] = {}
        if any(phase.dns for phase in chosen):
            zone = Zone()
            zone.start()
            world["dns.nameservers"] = [zone.address]
            print(f"  dns       loopback DNS server (dnslib) on {zone.address}, TTL {ZONE_TTL} s")
        if any(phase.sink for phase in chosen):
            sink = Sink(workdir / "sink")
            world["outbound.mx_port"] = sink.port
            print(
                f"  sink      aiosmtpd on {HOST}:{sink.port} (STARTTLS), MX of {SINK_DOMAIN}, "
                f"in process {sink.proc.pid}"
            )
        # What the chosen phases need in the config (the webhook phase's receiver is on
        # loopback); --set still overrides it.
        needs = {key: value for phase in chosen for key, value in phase.settings.items()}
        settings = {**world, **needs, **dict(args.settings)}
        for phase in chosen:
            if phase.settings:
                shown = ", ".join(f"{k} = {toml_value(v)}" for k, v in phase.settings.items())
                print(f"  settings  {shown} (for {phase.name})")
        # One server keeps the layout it always had; several get a directory each (their own
        # config, data directory, certificate and log), sharing only the database.
        dirs = [workdir] if nodes == 1 else [workdir / f"node{k + 1}" for k in range(nodes)]
        configs = []
        for d in dirs:
            d.mkdir(exist_ok=True)
            config = d / "mailgate.toml"
            write_config(config, d / "data", database_url, settings)
            configs.append(config)
        if nodes > 1:
            progress("migrating the database once (mailgate db upgrade)")
            db_upgrade(configs[0], env)

        progress("creating inboxes")
        config = configs[0]
        bench = Bench(
            counts=counts,
            summary=summary,
            config=config,
            env=env,
            hostname=str(settings.get("server.hostname", SERVER_HOSTNAME)),
            postgres=pg is not None,
            memory_rounds=args.memory_rounds,
            senders=[
                create_inbox(config, env, f"sender{i}@{DOMAIN}") for i in range(counts.clients)
            ],
            watcher=create_inbox(config, env, f"watcher@{DOMAIN}"),
            archive=create_inbox(config, env, f"archive@{DOMAIN}"),
            agent=create_inbox(config, env, f"agent@{DOMAIN}"),
            searcher=create_inbox(config, env, f"searcher@{DOMAIN}"),
            lister=create_inbox(config, env, f"lister@{DOMAIN}"),
            zone=zone,
            sink=sink,
            imaptest=args.imaptest,
        )
        if zone is not None:
            published = publish_domain(zone, config, env, DOMAIN)
            notes = [f"{published} records of {DOMAIN} (mailgate domain dns --json)"]
            notes += [phase.prepare(bench) for phase in chosen if phase.prepare is not None]
            print(f"  zone      {'; '.join(notes)}")

        servers = [
            Server(d, c, env, node_name(k) if nodes > 1 else "")
            for k, (d, c) in enumerate(zip(dirs, configs, strict=True))
        ]
        bench.servers = [*servers]
        for server in servers:  # all start together, as nodes behind a balancer would
            server.launch()
        for server in servers:
            server.wait_ready()
        for server in servers:
            print(
                f"  {server.name or 'server':<8}  pid {server.pid}; "
                + ", ".join(f"{name} {HOST}:{port}" for name, port in sorted(server.ports.items()))
            )
        across = f", crossnode {counts.crossnode_messages} msgs" if nodes > 1 else ""
        print(
            f"  counts    throughput {counts.messages} msgs / {counts.clients} clients, "
            f"idle {counts.idle_messages} msgs{across}, fetch {counts.fetch_messages} msgs x "
            f"{counts.fetch_runs} runs, outbound {counts.outbound_messages} msgs, inbound "
            f"{counts.inbound_messages} msgs, memory {counts.connections} connections, "
            f"api_list {counts.list_messages} msgs x {counts.list_runs} runs, api_memory "
            f"{counts.api_connections} connections, ws_memory {counts.ws_connections} "
            f"websockets, mcp_memory {counts.mcp_sessions} sessions; open-file limit {fd_limit}"
        )
        print(f"  phases    {', '.join(args.phases)}")
        if nodes > 1:
            roles = []
            for phase in chosen:
                if phase.nodes == "all":
                    roles.append(f"{phase.name} round-robin over all")
                elif phase.nodes == "across":
                    roles.append(f"{phase.name} from {servers[0].name} to {servers[-1].name}")
            alone = [phase.name for phase in chosen if phase.nodes == "first"]
            if alone:
                roles.append(f"{'/'.join(alone)} on {servers[0].name}")
            print(f"  nodes     {nodes} on one database; {', '.join(roles)}")
        compared = [phase.name for phase in chosen if phase.reference]
        if args.reference and compared:
            reason = reference.missing()
            if reason is not None:
                print(f"  reference {reason}")
                failed.append(f"reference: {reason}")
            else:
                # Dovecot spends two processes on each IDLE connection: a few hundred give
                # the figure per connection as well as thousands would.
                ref_counts = dataclasses.replace(
                    counts, connections=min(counts.connections, reference.MAX_CONNECTIONS)
                )
                ref = Reference(
                    [*bench.senders, bench.watcher, bench.archive, bench.agent, bench.searcher],
                    ref_counts.connections,
                )
                ref.start()
                ref_bench = dataclasses.replace(
                    bench, servers=[ref], counts=ref_counts, postgres=False, summary=Summary()
                )
                summary.reference = ref.name
                print(
                    f"  reference {ref.title} in {ref.dir}; imaps {HOST}:{ref.ports['imaps']}, "
                    f"submissions {HOST}:{ref.ports['submissions']}; {', '.join(compared)} "
                    f"measured on it too (memory with {ref_counts.connections} connections)"
                )
        sys.stdout.flush()

        for phase in chosen:
            labels = phase.labels(counts, nodes)
            down = [s for s in servers if not s.alive()]
            if down:
                which = "the server is" if nodes == 1 else f"{down[0].name} is"
                failed.append(f"{phase.name}: skipped, {which} not running")
                summary.failed(len(summary.rows), labels, f"skipped, {which} not running")
                continue
            mark = len(summary.rows)
            try:
                section = phase.run(bench)
                bench.used = True
                section.print()
            except Exception as exc:
                failed.append(f"{phase.name}: {exc}")
                summary.failed(mark, labels, str(exc))
                print(f"\n== {phase.name}: FAILED: {exc}", flush=True)
                for server in servers:
                    if not server.alive():
                        which = f"{server.name} log" if server.name else "server log"
                        print(f"{which} (last lines):\n{server.log_tail()}", flush=True)
            if ref_bench is not None and phase.reference:
                summary.compare(mark, on_reference(phase, ref_bench, failed))
        if summary.rows:
            summary.print()
    except BenchError as exc:
        failed.append(f"setup: {exc}")
    finally:
        for server in servers:
            server.stop()
        if sink is not None:
            sink.close()
        if zone is not None:
            zone.stop()
        if ref is not None:
            ref.close(keep=args.keep)
            if args.keep:
                print(f"kept {ref.dir}")
        problems = [
            f"{log.parent.name}: {line}" if nodes > 1 else line
            for log in sorted(workdir.rglob("server-*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if re.search(r" (ERROR|CRITICAL) |Traceback", line)
        ]
        if problems:
            print(f"\nserver logged {len(problems)} error line(s), e.g. {problems[0]}")
        if pg is not None:
            try:
                pg.drop()
            except Exception as exc:
                print(f"could not drop database {pg.name}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nrun took {time.perf_counter() - began:.1f} s")
    for problem in failed:
        print(f"FAILED {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
