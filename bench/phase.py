"""What a phase is to the runner: its name, the summary rows it adds, what it needs set up, and
the set-up it is handed when it runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import Account, Target
from report import Section, Summary, progress
from world import SigningKey, Sink, Zone


@dataclass(frozen=True)
class Counts:
    messages: int  # SMTP throughput: total messages over all clients
    clients: int
    idle_messages: int
    crossnode_messages: int
    fetch_messages: int
    fetch_runs: int
    connections: int
    outbound_messages: int
    inbound_messages: int
    stall_messages: int
    sort_messages: int  # sort: the mailbox SORT and THREAD run over
    sort_runs: int
    list_messages: int  # api_list: the inbox's size
    list_runs: int
    api_connections: int  # api_memory: keep-alive HTTP connections
    ws_connections: int  # ws_memory: websockets subscribed to the event stream
    mcp_sessions: int  # mcp_memory: MCP sessions, each with its GET stream and a subscription
    kills: int  # crash: SIGKILLs
    seed: int  # crash: the seed of the kill moments (0: a random one); fuzz: its inputs'
    fuzz_inputs: int  # fuzz: inputs in all
    stress_clients: int  # stress: imaptest's clients
    stress_secs: int  # stress: how long imaptest runs
    stress_messages: int  # stress: messages in the mbox imaptest appends from


@dataclass
class Bench:
    """What the runner set up, handed to every phase."""

    counts: Counts
    summary: Summary
    config: Path  # node A's, for one-shot `mailgate` commands
    env: dict[str, str]
    hostname: str  # [server] hostname
    postgres: bool  # the database is PostgreSQL: measure its CPU too
    memory_rounds: int
    senders: list[Account]  # sender<i>@, one per client
    watcher: Account
    archive: Account
    agent: Account
    searcher: Account  # the big mailbox the stall phase searches
    lister: Account  # the inbox api_list pages through
    servers: list[Target] = field(default_factory=list)  # node A first
    zone: Zone | None = None  # with a phase that needs DNS
    sink: Sink | None = None  # with a phase that needs the sink
    mx_inboxes: list[Account] = field(default_factory=list)  # made by inbound's `prepare`
    world_keys: list[SigningKey] = field(default_factory=list)  # made by inbound's `prepare`
    used: bool = False  # a phase has run on these servers already
    imaptest: str | None = None  # --imaptest: the stress phase's imaptest binary

    def fresh_server(self, phase: str) -> Target:
        """Node A, restarted first if a phase has run on it: memory that earlier phases freed
        could be reused by what `phase` measures and hide its cost."""
        server = self.servers[0]
        if self.used:
            progress(f"{phase}: restarting the server")
            server.stop()
            server.start()
        return server


@dataclass(frozen=True)
class Phase:
    name: str  # what --only names it
    run: Callable[[Bench], Section]  # adds its rows to the summary, returns its section
    labels: Callable[[Counts, int], list[str]]  # its summary rows (counts, nodes): FAILED ones
    nodes: str = "first"  # with several: "first" (node A alone), "all" (round-robin), "across"
    min_nodes: int = 1
    default: bool = True  # runs without --only; False: only when --only names it
    dns: bool = False  # needs the loopback DNS server
    sink: bool = False  # needs the SMTP sink
    # Server settings it needs ("SECTION.KEY": value), in the config of every run that includes
    # it (the other phases then run with them too); --set overrides them.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Before the servers start, with the zone up: makes what the phase needs; a note on the zone.
    prepare: Callable[[Bench], str] | None = None
    reference: bool = False  # with --reference, measured on Dovecot/Postfix too
