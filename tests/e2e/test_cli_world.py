"""The `mailgate` commands for mail to and from the world (run as tests/e2e/test_cli.py runs
them): domains and their DNS records, DKIM key rotation, the outbound queue, allow and block
lists. Where a command's effect shows elsewhere (a bounce, a refused sender) a real server
shows it."""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from mailgate.delivery.outbound import cancel
from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.process import clean_env, config_file
from tests.e2e.test_cli import CLI
from tests.e2e.world import (
    REMOTE,
    attempted,
    cli_config,
    eventually,
    outbound_settings,
    point_mx,
    queue_of,
)
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, read_mailbox
from tests.smtppeer import refusing_port

BOB = f"bob@{REMOTE}"
CAROL = f"carol@{REMOTE}"


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> Iterator[CLI]:
    with config_file(tmp_path, backend) as path:
        yield CLI(path)


def usage_error(cli: CLI, *args: str) -> str:
    """A command line argparse refuses: exit code 2, and its reason on stderr."""
    done = cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    return done.stderr


# -------------------------------------------------------------------- domains


def test_domain_add_list_show_delete(cli: CLI) -> None:
    assert cli.ok("domain", "list").strip() == "no domains"
    assert cli.json("domain", "list") == []

    # The first inbox of a domain adds it, with an RSA and an Ed25519 key that sign.
    out = cli.ok("inbox", "create", "alice@shop.test")
    assert "mailgate domain dns shop.test" in out
    (shop,) = cli.json("domain", "list")
    assert shop["name"] == "shop.test"
    assert sorted((k["algorithm"], k["active"]) for k in shop["dkim"]) == [
        ("ed25519-sha256", True),
        ("rsa-sha256", True),
    ]
    assert len({k["selector"] for k in shop["dkim"]}) == 2

    out = cli.ok("domain", "add", "News.TEST")
    assert "added domain news.test" in out
    assert "mailgate domain dns news.test" in out
    assert "already exists" in cli.fails("domain", "add", "news.test")
    assert "not a valid domain" in cli.fails("domain", "add", "bad..name")
    assert cli.ok("domain", "list").split() == ["news.test", "shop.test"]

    shown = cli.ok("domain", "show", "news.test")
    assert shown.startswith("news.test\n")
    assert "spf   v=spf1 mx -all" in shown
    assert "p=quarantine" in shown
    assert shown.count(" signs") == 2
    details = cli.json("domain", "show", "news.test")
    # The private keys never leave the database.
    assert "PRIVATE" not in str(details).upper()
    # The client set-up names too; no SRV records, as the test config's ports are 0.
    assert {r["type"] for r in details["dns"]} == {"MX", "TXT", "CNAME"}

    # Not while it has inboxes; then it goes.
    assert "inbox" in cli.fails("domain", "delete", "shop.test")
    cli.ok("inbox", "delete", "alice@shop.test")
    assert cli.json("domain", "delete", "shop.test") == {"deleted": "shop.test"}
    assert "no domain shop.test" in cli.fails("domain", "show", "shop.test")
    assert "no domain shop.test" in cli.fails("domain", "delete", "shop.test")
    assert cli.ok("domain", "list").split() == ["news.test"]


def test_the_embedded_database_holding_the_keys_is_private(backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL guards its own files")
    with config_file(tmp_path, backend) as path:
        CLI(path).ok("domain", "add", "keys.test")  # DKIM private keys, in mailgate.db
    database = tmp_path / "data" / "mailgate.db"
    assert database.stat().st_mode & 0o077 == 0, oct(database.stat().st_mode)


def zone_of(text: str, origin: str) -> dns.zone.Zone:
    """Parse what `domain dns` prints as a zone file would be parsed."""
    return dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)


def txt_strings(zone: dns.zone.Zone, name: str) -> list[list[bytes]]:
    node = zone.get_node(name)
    assert node is not None, name
    rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
    assert rdataset is not None, name
    return [list(r.strings) for r in rdataset]


def test_domain_dns_prints_exactly_the_records_to_publish(cli: CLI) -> None:
    cli.ok("domain", "add", "example.org")
    text = cli.ok("domain", "dns", "example.org")
    assert text.startswith("; DNS records for example.org")
    zone = zone_of(text, "example.org.")
    keys = cli.json("domain", "show", "example.org")["dkim"]

    # MX: this server's hostname.
    mx = zone.get_node("example.org.").get_rdataset(dns.rdataclass.IN, dns.rdatatype.MX)
    assert [(r.preference, r.exchange.to_text()) for r in mx] == [(10, "mail.example.test.")]
    # SPF and DMARC (quarantine by default).
    assert txt_strings(zone, "example.org.") == [[b"v=spf1 mx -all"]]
    # No rua=: reports would go to an address that need not exist.
    assert txt_strings(zone, "_dmarc.example.org.") == [
        [b"v=DMARC1; p=quarantine; adkim=r; aspf=r"]
    ]
    # Both DKIM keys, each string at most 255 bytes (RFC 1035 §3.3.14); RSA-2048 needs two.
    algorithms = {}
    for key in keys:
        (strings,) = txt_strings(zone, f"{key['selector']}._domainkey.example.org.")
        assert all(len(s) <= 255 for s in strings)
        record = b"".join(strings).decode()
        assert record.startswith("v=DKIM1;")
        algorithms[key["algorithm"]] = (record, len(strings))
    assert "k=rsa" in algorithms["rsa-sha256"][0]
    assert algorithms["rsa-sha256"][1] >= 2
    assert "k=ed25519" in algorithms["ed25519-sha256"][0]

    # --json: the same records, whole and split.
    records = cli.json("domain", "dns", "example.org")
    assert [(r["name"], r["type"]) for r in records] == [
        ("example.org.", "MX"),
        ("example.org.", "TXT"),
        *((f"{k['selector']}._domainkey.example.org.", "TXT") for k in keys),
        ("_dmarc.example.org.", "TXT"),
        ("autoconfig.example.org.", "CNAME"),
        ("autodiscover.example.org.", "CNAME"),
    ]
    for r in records:
        if r["type"] == "TXT":
            assert "".join(r["strings"]) == r["value"]
            assert all(len(s.encode()) <= 255 for s in r["strings"])
            (strings,) = [
                s for s in txt_strings(zone, r["name"]) if b"".join(s).decode() == r["value"]
            ]
            assert [s.decode() for s in strings] == r["strings"]


def test_domain_dns_prints_the_records_mail_clients_set_themselves_up_from(cli: CLI) -> None:
    cli.ok("domain", "add", "example.org")
    standard = {
        "MAILGATE_IMAP_TLS_PORT": "993",
        "MAILGATE_IMAP_PORT": "143",
        "MAILGATE_SMTP_TLS_PORT": "465",
        "MAILGATE_SMTP_SUBMISSION_PORT": "587",
    }
    done = cli("domain", "dns", "example.org", env=clean_env(**standard))
    assert done.returncode == 0, done.stderr
    zone = zone_of(done.stdout, "example.org.")

    # RFC 6186 and RFC 8314 SRV records: the configured ports at [server] hostname, implicit
    # TLS at the lower priority number (preferred), STARTTLS after it.
    def srv(service: str) -> list[tuple[int, int, int, str]]:
        node = zone.get_node(f"_{service}._tcp.example.org.")
        assert node is not None, service
        rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SRV)
        return [(r.priority, r.weight, r.port, r.target.to_text()) for r in rdataset]

    assert srv("imaps") == [(0, 1, 993, "mail.example.test.")]
    assert srv("imap") == [(10, 1, 143, "mail.example.test.")]
    assert srv("submissions") == [(0, 1, 465, "mail.example.test.")]
    assert srv("submission") == [(10, 1, 587, "mail.example.test.")]
    # The names Thunderbird (autoconfig) and Outlook (autodiscover) fetch settings from.
    for label in ("autoconfig", "autodiscover"):
        node = zone.get_node(f"{label}.example.org.")
        assert node is not None, label
        (cname,) = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
        assert cname.target.to_text() == "mail.example.test."

    # --json: the same records, after the ones mail needs.
    done = cli("domain", "dns", "example.org", "--json", env=clean_env(**standard))
    records = json.loads(done.stdout)
    assert [(r["type"], r["value"]) for r in records[-6:]] == [
        ("SRV", "0 1 993 mail.example.test."),
        ("SRV", "10 1 143 mail.example.test."),
        ("SRV", "0 1 465 mail.example.test."),
        ("SRV", "10 1 587 mail.example.test."),
        ("CNAME", "mail.example.test."),
        ("CNAME", "mail.example.test."),
    ]

    # A port of 0 is chosen at start: it has no record, and a comment says why.
    text = cli.ok("domain", "dns", "example.org")  # this test config's ports are all 0
    assert "\tSRV\t" not in text
    assert "; no _imaps._tcp record: [imap] tls_port is 0" in text
    assert "; no _submission._tcp record: [smtp] submission_port is 0" in text
    assert "autoconfig.example.org.\t3600\tIN\tCNAME\tmail.example.test." in text


def test_domain_dns_warns_while_the_hostname_is_localhost(cli: CLI) -> None:
    cli.ok("domain", "add", "example.org")
    done = cli(
        "domain", "dns", "example.org", env={**clean_env(), "MAILGATE_SERVER_HOSTNAME": "localhost"}
    )
    assert done.returncode == 0, done.stderr
    assert "\tMX\t10 localhost.\n" in done.stdout
    assert done.stderr.startswith("warning: [server] hostname is 'localhost'")


def test_domain_add_with_its_own_policy_and_spf(cli: CLI) -> None:
    spf = "v=spf1 include:_spf.relay.example -all"
    cli.ok("domain", "add", "strict.test", "--dmarc-policy", "reject", "--spf", spf)
    zone = zone_of(cli.ok("domain", "dns", "strict.test"), "strict.test.")
    assert txt_strings(zone, "strict.test.") == [[spf.encode()]]
    (dmarc,) = txt_strings(zone, "_dmarc.strict.test.")
    assert b"".join(dmarc).startswith(b"v=DMARC1; p=reject;")
    assert "invalid choice" in usage_error(cli, "domain", "add", "x.test", "--dmarc-policy", "no")


def test_rotate_dkim_then_remove_the_retired_keys(cli: CLI) -> None:
    cli.ok("domain", "add", "rotate.test")
    old = {k["selector"] for k in cli.json("domain", "show", "rotate.test")["dkim"]}
    out = cli.ok("domain", "rotate-dkim", "rotate.test")
    assert "remove-dkim" in out
    keys = {k["selector"]: k for k in cli.json("domain", "show", "rotate.test")["dkim"]}
    new = set(keys) - old
    assert len(new) == 2
    assert {s for s, k in keys.items() if k["active"]} == new  # the new ones sign
    assert sorted(keys[s]["algorithm"] for s in new) == ["ed25519-sha256", "rsa-sha256"]
    published = {r["name"].split(".")[0] for r in cli.json("domain", "dns", "rotate.test")} - {
        "rotate",
        "_dmarc",
        "autoconfig",
        "autodiscover",
    }
    assert published == old | new  # the old ones stay published

    active = next(iter(new))
    assert "still signs" in cli.fails("domain", "remove-dkim", "rotate.test", active)
    assert "no DKIM selector" in cli.fails("domain", "remove-dkim", "rotate.test", "nope")
    for selector in old:
        cli.ok("domain", "remove-dkim", "rotate.test", selector)
    published = {r["name"].split(".")[0] for r in cli.json("domain", "dns", "rotate.test")} - {
        "rotate",
        "_dmarc",
        "autoconfig",
        "autodiscover",
    }
    assert published == new


# -------------------------------------------------------------------- the outbound queue


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as dns_server:
        yield dns_server


@pytest.fixture
def queued(
    make_server: Callable[..., Server], zone: ZoneServer, tmp_path: Path
) -> Iterator[tuple[Server, Account, CLI]]:
    """A server with mail for BOB and CAROL queued after one failed try (the MX refuses
    connections; the next try is an hour away), and the CLI on its database."""
    point_mx(zone)
    with refusing_port() as port:
        server = make_server(**outbound_settings(zone, port, retry_intervals=(3600,)))
        alice = server.account()
        message = make_message(alice.address, [BOB, CAROL], "Queued")
        with server.smtp_client(alice) as smtp:
            smtp.sendmail(alice.address, [BOB, CAROL], message)
        attempted(server)
        yield server, alice, CLI(cli_config(server, tmp_path))


def test_queue_list_shows_each_recipient_with_attempts_and_last_answer(
    queued: tuple[Server, Account, CLI],
) -> None:
    _, alice, cli = queued
    rows = cli.json("queue", "list")
    assert [(r["recipient"], r["mail_from"], r["attempts"]) for r in rows] == [
        (BOB, alice.address, 1),
        (CAROL, alice.address, 1),
    ]
    assert all("connection refused" in r["last_reply"] for r in rows)
    text = cli.ok("queue", "list").splitlines()
    assert len(text) == 2
    assert BOB in text[0]
    assert "attempts 1" in text[0]
    assert "connection refused" in text[0]
    assert "next in" in text[0]


def test_queue_retry_makes_recipients_due_now(
    queued: tuple[Server, Account, CLI],
) -> None:
    server, _, cli = queued
    bob_row, _ = cli.json("queue", "list")
    assert "no queued recipient 999999" in cli.fails("queue", "retry", "999999")
    assert cli.json("queue", "retry", str(bob_row["id"])) == {"rescheduled": 1}
    # The worker finds it due at its next poll and tries again; CAROL waits for her hour.
    eventually(lambda: [r.attempts for r in queue_of(server)] == [2, 1] or None, 20, "a second try")
    assert "2 recipient(s) will be tried now" in cli.ok("queue", "retry", "--all")
    assert "required" in usage_error(cli, "queue", "retry")  # an id or --all


def test_queue_delete_sends_the_bounce(queued: tuple[Server, Account, CLI]) -> None:
    server, alice, cli = queued
    bob_row, _ = cli.json("queue", "list")
    out = cli.ok("queue", "delete", str(bob_row["id"]))
    assert out.strip() == f"deleted {BOB} from the queue; {alice.address} gets a bounce"
    assert [r["recipient"] for r in cli.json("queue", "list")] == [CAROL]
    (dsn,) = read_mailbox(server, alice)
    text = dsn.raw.decode()
    assert "multipart/report" in text
    assert f"Final-Recipient: rfc822; {BOB}" in text
    assert "Status: 5.0.0" in text
    assert "deleted from the queue by the administrator" in text
    assert CAROL not in text.split("message/delivery-status", 1)[1].split("rfc822-headers")[0]
    assert "no queued recipient" in cli.fails("queue", "delete", str(bob_row["id"]))


def test_queue_delete_is_refused_while_a_node_is_delivering(
    queued: tuple[Server, Account, CLI],
) -> None:
    server, alice, cli = queued
    assert server.app.outbound is not None
    server.call(server.app.outbound.stop())  # this node's worker stays out of the race
    server.call(server.store.retry_outbound())
    # Another node claims both (as its worker would, just before connecting).
    claimed = server.call(server.store.claim_outbound("node-b", 600, 10))
    assert len(claimed) == 2
    message = cli.fails("queue", "delete", str(claimed[0].id))
    assert "being delivered by node-b" in message
    assert len(queue_of(server)) == 2
    assert read_mailbox(server, alice) == []  # no bounce for mail that may be arriving
    # Once node-b gives its claims back (it stopped), the delete goes through.
    server.call(server.store.release_leases("node-b"))
    server.call(cancel(server.store, "mail.example.test", claimed[0].id))
    assert len(read_mailbox(server, alice)) == 1


# -------------------------------------------------------------------- allow and block lists


def rules(cli: CLI, *owner: str) -> list[tuple[str, str]]:
    return [(r["action"], r["entry"]) for r in cli.json("list", "show", *owner)]


def test_list_add_remove_show(cli: CLI) -> None:
    cli.ok("inbox", "create", "alice@example.test")
    inbox = ("--inbox", "alice@example.test")
    assert cli.ok("list", "show", *inbox).strip() == "the list is empty"
    out = cli.ok("list", "add", *inbox, "--block", "Spammer.TEST")
    assert "block  spammer.test" in out
    cli.ok("list", "add", *inbox, "--allow", "friend@partner.test")
    cli.ok("list", "add", *inbox, "--block", "spammer.test")  # twice is once
    assert rules(cli, *inbox) == [("allow", "friend@partner.test"), ("block", "spammer.test")]
    assert [
        (r["action"], r["entry"], r["scope"], r["owner"])
        for r in cli.json("list", "show", *inbox, "--block", "spammer.test")
    ] == [("block", "spammer.test", "inbox", "alice@example.test")]

    pod = ("--pod", "default")
    assert rules(cli, *pod) == []
    cli.ok("list", "add", *pod, "--block", "evil.test")
    assert rules(cli, *pod) == [("block", "evil.test")]
    assert rules(cli, *inbox) == [("allow", "friend@partner.test"), ("block", "spammer.test")]

    cli.ok("list", "remove", *inbox, "--block", "spammer.test")
    assert rules(cli, *inbox) == [("allow", "friend@partner.test")]
    assert "no block entry spammer.test" in cli.fails(
        "list", "remove", *inbox, "--block", "spammer.test"
    )
    assert "neither an address nor a domain" in cli.fails(
        "list", "add", *inbox, "--block", "not an entry"
    )
    assert "no inbox" in cli.fails("list", "show", "--inbox", "nobody@example.test")
    assert "no pod" in cli.fails("list", "show", "--pod", "nopod")
    assert "--allow --block is required" in usage_error(cli, "list", "add", *inbox)
    assert "--inbox --pod is required" in usage_error(cli, "list", "show", "--allow", "x.test")


def test_blocked_and_allowed_senders_at_the_mx(
    make_server: Callable[..., Server], zone: ZoneServer, tmp_path: Path
) -> None:
    server = make_server(dns={"nameservers": (zone.address,), "timeout": 1.0})
    alice = server.account()
    cli = CLI(cli_config(server, tmp_path))
    cli.ok("list", "add", "--inbox", alice.address, "--block", "spammer.test")
    cli.ok("list", "add", "--pod", "default", "--allow", "friend@partner.test")

    def mx_session() -> SMTPSession:
        s = SMTPSession(socket.create_connection(("127.0.0.1", server.port("mx")), timeout=30))
        s.ehlo("mail.outside.test")
        return s

    with mx_session() as s:
        s.expect("MAIL FROM:<anyone@spammer.test>", "250")
        s.expect(f"RCPT TO:<{alice.address}>", "550 5.7.1")
    with smtplib.SMTP("127.0.0.1", server.port("mx"), timeout=30) as smtp:
        smtp.sendmail(
            "friend@partner.test",
            [alice.address],
            make_message("friend@partner.test", alice.address, "From a friend"),
        )
    (stored,) = read_mailbox(server, alice)
    assert stored.header("Subject") == ["From a friend"]

    cli.ok("list", "remove", "--inbox", alice.address, "--block", "spammer.test")
    with mx_session() as s:
        s.expect("MAIL FROM:<anyone@spammer.test>", "250")
        s.expect(f"RCPT TO:<{alice.address}>", "250")
