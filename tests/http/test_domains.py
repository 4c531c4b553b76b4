"""Domains over the HTTP API, driven by the agentmail SDK: create, get, list, update, delete,
verify and the zone file, at the top level and under a pod; each record's status looked up in a
real DNS server on loopback (missing, then published and verified, then wrong, then timing out).
An organization key manages every domain; pod and inbox keys see the domains of their inboxes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
from agentmail import NotFoundError, ValidationError
from agentmail.core.api_error import ApiError
from agentmail.domains import Domain, ListDomainsResponse
from agentmail.events.types.domain_verified_event import DomainVerifiedEvent
from websockets.sync.client import connect

from mailgate.delivery.domains import dns_records
from tests.dnsserver import ZoneServer
from tests.e2e.process import clean_env, run
from tests.harness import Server, running_server
from tests.http.sdk import NO_RETRIES, Api, username

HOSTNAME = "mail.example.test"  # the test server's [server] hostname (tests/harness.py)


@pytest.fixture(scope="module")
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as dns:
        yield dns


@pytest.fixture(autouse=True)
def empty_zone(zone: ZoneServer) -> Iterator[ZoneServer]:
    yield zone
    zone.answering = True
    zone.clear()


@pytest.fixture(scope="module")
def server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, zone: ZoneServer
) -> Iterator[Server]:
    """This module's own server (the fixtures of conftest.py use it), resolving through `zone`
    (a short timeout keeps the DNS timeout test quick)."""
    directory = tmp_path_factory.mktemp(f"domains-{backend}")
    dns = {"nameservers": (zone.address,), "timeout": 0.5}
    with running_server(directory, backend, dns=dns) as srv:
        yield srv


def _name() -> str:
    return f"d{uuid.uuid4().hex[:10]}.test"


def _statuses(domain: Domain) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {(r.type, r.name): (r.status, r.reason) for r in domain.records}


def publish(zone: ZoneServer, domain: Domain) -> None:
    """Every record the API asks for, exactly as it gives it."""
    for record in domain.records:
        if record.type == "MX":
            zone.set(record.name, "MX", [f"{record.priority} {record.value}"])
        else:
            zone.set(record.name, "TXT", [record.value])


def test_create_get_list_delete(server: Server, org: Api) -> None:
    name = _name()
    created = org.valid(Domain, org.client.domains.create(domain=name.upper()))
    assert (created.domain_id, created.domain) == (name, name)
    assert created.pod_id is None  # a domain is the whole server's
    assert (created.inbound_enabled, created.feedback_enabled) == (True, True)
    assert (created.subdomains_enabled, created.tracking_enabled) == (False, False)
    assert created.updated_at >= created.created_at
    # The records `mailgate domain dns` prints: MX, SPF, two DKIM keys, DMARC.
    stored = server.call(server.store.get_domain(name))
    expected = dns_records(stored, HOSTNAME)
    assert [(r.type, r.name, r.value) for r in created.records] == [
        (r.type, r.name.rstrip("."), HOSTNAME if r.type == "MX" else r.value) for r in expected
    ]
    assert [r.priority for r in created.records] == [10, None, None, None, None]
    # Nothing is published yet.
    assert (created.status, created.reason) == ("PENDING", "dns_records_missing")
    assert {r.status for r in created.records} == {"MISSING"}

    got = org.valid(Domain, org.client.domains.get(name))
    assert got.records == created.records
    listed = org.valid(ListDomainsResponse, org.client.domains.list())
    assert name in [d.domain_id for d in listed.domains]
    assert listed.count == len(listed.domains)
    oldest = org.valid(ListDomainsResponse, org.client.domains.list(ascending=True))
    assert oldest.domains == listed.domains[::-1]  # newest first, or oldest first

    org.client.domains.delete(name)
    with pytest.raises(NotFoundError):
        org.client.domains.get(name)
    with pytest.raises(NotFoundError):
        org.client.domains.delete(name)


def test_verification_follows_what_dns_publishes(org: Api, zone: ZoneServer) -> None:
    name = _name()
    created = org.valid(Domain, org.client.domains.create(domain=name))
    mx = ("MX", name)
    spf = ("TXT", name)
    dmarc = ("TXT", f"_dmarc.{name}")

    zone.set(name, "MX", [f"10 {HOSTNAME}"])
    partly = org.valid(Domain, org.client.domains.get(name))
    assert _statuses(partly)[mx] == ("VALID", None)
    assert _statuses(partly)[spf] == ("MISSING", None)
    assert (partly.status, partly.reason) == ("PENDING", "dns_records_missing")

    publish(zone, created)
    # verify answers the domain as GET does (the SDK drops the body).
    org.valid(Domain, org.client.domains.verify(name))
    assert org.last is not None
    assert org.last.json()["status"] == "VERIFIED"
    verified = org.valid(Domain, org.client.domains.get(name))
    assert (verified.status, verified.reason) == ("VERIFIED", None)
    assert {r.status for r in verified.records} == {"VALID"}
    # Tags the owner adds to DMARC (aggregate reports) keep it valid.
    dmarc_value = next(r.value for r in created.records if (r.type, r.name) == dmarc)
    zone.set(f"_dmarc.{name}", "TXT", [f"{dmarc_value}; rua=mailto:reports@{name}"])
    assert org.client.domains.get(name).status == "VERIFIED"

    # Another SPF record, then a second one beside ours.
    zone.set(name, "TXT", ["v=spf1 include:elsewhere.test -all"])
    wrong = org.valid(Domain, org.client.domains.get(name))
    assert _statuses(wrong)[spf] == ("INVALID", "value_mismatch")
    assert (wrong.status, wrong.reason) == ("INVALID", "dns_records_invalid")
    zone.set(name, "TXT", ["v=spf1 mx -all", "v=spf1 include:elsewhere.test -all"])
    assert _statuses(org.client.domains.get(name))[spf] == ("INVALID", "duplicate_records")
    # Other TXT records at the name are not SPF records.
    zone.set(name, "TXT", ["v=spf1 mx -all", "site-verification=abc"])
    assert org.client.domains.get(name).status == "VERIFIED"
    zone.set(name, "MX", [f"10 {HOSTNAME}", "20 backup.elsewhere.test"])
    assert _statuses(org.client.domains.get(name))[mx] == ("INVALID", "duplicate_records")
    zone.set(name, "MX", ["10 mx.elsewhere.test"])
    assert _statuses(org.client.domains.get(name))[mx] == ("INVALID", "value_mismatch")
    zone.set(name, "MX", [f"10 {HOSTNAME.upper()}."])
    assert org.client.domains.get(name).status == "VERIFIED"

    # DNS does not answer: not verified, and not a verdict either.
    zone.answering = False
    waiting = org.valid(Domain, org.client.domains.get(name))
    assert (waiting.status, waiting.reason) == ("VERIFYING", "dns_temporary_failure")
    assert set(_statuses(waiting).values()) == {("MISSING", "dns_temporary_failure")}
    zone.answering = True
    assert org.client.domains.get(name).status == "VERIFIED"


def test_the_first_verification_is_told_once_as_domain_verified(
    server: Server, org: Api, zone: ZoneServer
) -> None:
    name = _name()
    created = org.client.domains.create(domain=name)
    url = server.api_url.replace("http", "ws", 1) + "/v0"
    with connect(url, additional_headers={"Authorization": f"Bearer {org.key}"}) as ws:
        ws.send(json.dumps({"type": "subscribe", "event_types": ["domain.verified"]}))
        assert json.loads(ws.recv(10))["type"] == "subscribed"
        assert org.client.domains.get(name).status == "PENDING"
        publish(zone, created)
        org.client.domains.verify(name)
        org.client.domains.verify(name)  # still verified: nothing new to tell
        event = DomainVerifiedEvent.model_validate(json.loads(ws.recv(10)))
        assert event.domain.domain_id == name
        assert event.domain.status == "VERIFIED"
        with pytest.raises(TimeoutError):
            ws.recv(0.5)


def test_zone_file_is_what_mailgate_domain_dns_prints(server: Server, org: Api) -> None:
    name = _name()
    org.client.domains.create(domain=name)
    zone_file = b"".join(org.client.domains.get_zone_file(name)).decode()
    assert org.last is not None
    assert org.last.headers["content-type"].startswith("text/plain")
    imap, smtp = server.settings.imap, server.settings.smtp  # the SRV records name their ports
    env = clean_env(
        MAILGATE_DATABASE_URL=server.settings.database_url,
        MAILGATE_SERVER_HOSTNAME=HOSTNAME,
        MAILGATE_IMAP_PORT=str(imap.port),
        MAILGATE_IMAP_TLS_PORT=str(imap.tls_port),
        MAILGATE_SMTP_SUBMISSION_PORT=str(smtp.submission_port),
        MAILGATE_SMTP_TLS_PORT=str(smtp.tls_port),
    )
    printed = run("domain", "dns", name, cwd=server.settings.data_path, env=env)
    assert printed.returncode == 0, printed.stderr
    assert zone_file == printed.stdout
    assert f"{name}.\t3600\tIN\tMX\t10 {HOSTNAME}." in zone_file
    assert f"autoconfig.{name}.\t3600\tIN\tCNAME\t{HOSTNAME}." in zone_file


def test_flags_mailgate_does_not_have_answer_501(org: Api) -> None:
    name = _name()
    for flag, value in (
        ("tracking_enabled", True),
        ("subdomains_enabled", True),
        ("inbound_enabled", False),
        ("feedback_enabled", False),
    ):
        with pytest.raises(ApiError) as refused:
            org.client.domains.create(domain=name, request_options=NO_RETRIES, **{flag: value})
        assert refused.value.status_code == 501
        assert refused.value.body["name"] == "NotImplementedError"
        assert flag in refused.value.body["message"]
    with pytest.raises(NotFoundError):
        org.client.domains.get(name)  # nothing was created
    created = org.valid(
        Domain,
        org.client.domains.create(
            domain=name,
            allow_conflicting_provider=True,
            inbound_enabled=True,
            tracking_enabled=False,
        ),
    )
    assert created.domain_id == name
    same = org.valid(Domain, org.client.domains.update(name, feedback_enabled=True))
    assert same.records == created.records
    with pytest.raises(ApiError) as refused:
        org.client.domains.update(name, tracking_enabled=True, request_options=NO_RETRIES)
    assert refused.value.status_code == 501
    with pytest.raises(ApiError) as empty:  # the SDK has no ValidationError for this call
        org.client.domains.update(name)
    assert empty.value.status_code == 400
    with pytest.raises(ApiError) as no_link:
        org.client.domains.get_setup_link(name, request_options=NO_RETRIES)
    assert no_link.value.status_code == 501
    assert "Domain Connect" in no_link.value.body["message"]
    with pytest.raises(NotFoundError):
        org.client.domains.get_setup_link(_name())


def test_bad_taken_and_used_domains(server: Server, org: Api, pod: str) -> None:
    with pytest.raises(ValidationError) as bad:
        org.client.domains.create(domain="not a domain")
    assert [e["path"] for e in bad.value.body.errors] == [["domain"]]
    name = _name()
    org.client.domains.create(domain=name)
    with pytest.raises(ApiError) as taken:
        org.client.domains.create(domain=name, request_options=NO_RETRIES)
    assert taken.value.status_code == 409
    inbox = org.client.pods.inboxes.create(pod, username=username(), domain=name)
    with pytest.raises(ApiError) as used:
        org.client.domains.delete(name)
    assert used.value.status_code == 403
    org.client.pods.inboxes.delete(pod, inbox.inbox_id)
    org.client.domains.delete(name)
    with pytest.raises(NotFoundError):
        org.client.domains.get("not a domain")


def test_pod_and_inbox_keys_see_the_domains_of_their_inboxes(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    ours, theirs = _name(), _name()
    org.client.domains.create(domain=ours)
    org.client.domains.create(domain=theirs)
    org.client.pods.inboxes.create(pod, username=username(), domain=ours)
    other_pod = f"pod-{uuid.uuid4().hex[:10]}"
    org.client.pods.create(name=other_pod)
    org.client.pods.inboxes.create(other_pod, username=username(), domain=theirs)

    key = apis(server.pod_key(pod))
    listed = key.valid(ListDomainsResponse, key.client.domains.list())
    assert [d.domain_id for d in listed.domains] == [ours]
    assert key.valid(Domain, key.client.domains.get(ours)).domain_id == ours
    key.client.domains.verify(ours)
    assert b"".join(key.client.domains.get_zone_file(ours))
    under = key.valid(ListDomainsResponse, key.client.pods.domains.list(pod))
    assert [d.domain_id for d in under.domains] == [ours]
    assert key.valid(Domain, key.client.pods.domains.get(pod, ours)).domain_id == ours
    # Another pod's domain, and another pod, do not exist for this key.
    for hidden in (
        lambda: key.client.domains.get(theirs),
        lambda: key.client.domains.verify(theirs),
        lambda: key.client.domains.delete(theirs),
        lambda: key.client.pods.domains.list(other_pod),
        lambda: key.client.pods.domains.get(pod, theirs),
    ):
        with pytest.raises(NotFoundError):
            hidden()
    # What it sees, it may not change; nor may it create domains.
    for forbidden in (
        lambda: key.client.domains.create(domain=_name()),
        lambda: key.client.domains.delete(ours),
        lambda: key.client.domains.update(ours, tracking_enabled=False),
        lambda: key.client.pods.domains.delete(pod, ours),
    ):
        with pytest.raises(ApiError) as refused:
            forbidden()
        assert refused.value.status_code == 403


def test_an_inbox_key_sees_its_inbox_domain_and_an_org_key_the_pods(
    server: Server, org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    ours, elsewhere = _name(), _name()
    org.client.domains.create(domain=ours)
    org.client.domains.create(domain=elsewhere)
    account = server.account(f"{username()}@{ours}", pod=pod)
    # Another inbox of the same pod, at another domain, which the inbox key does not see.
    org.client.pods.inboxes.create(pod, username=username(), domain=elsewhere)
    key = apis(account.key)
    listed = key.valid(ListDomainsResponse, key.client.domains.list())
    assert [d.domain_id for d in listed.domains] == [ours]
    assert key.valid(Domain, key.client.pods.domains.get(pod, ours)).domain_id == ours
    for hidden in (
        lambda: key.client.domains.get(elsewhere),
        lambda: key.client.pods.domains.get(pod, elsewhere),
    ):
        with pytest.raises(NotFoundError):
            hidden()
    with pytest.raises(ApiError) as refused:
        key.client.domains.create(domain=_name())
    assert refused.value.status_code == 403

    # Under a pod, an organization key sees the domains of that pod's inboxes; one it creates
    # there is the whole server's, listed under the pod once an inbox of the pod is at it.
    under = org.valid(ListDomainsResponse, org.client.pods.domains.list(pod))
    assert {d.domain_id for d in under.domains} == {ours, elsewhere}
    made = _name()
    assert org.valid(Domain, org.client.pods.domains.create(pod, domain=made)).domain_id == made
    with pytest.raises(NotFoundError):
        org.client.pods.domains.get(pod, made)
    assert org.client.domains.get(made).domain_id == made
    org.client.pods.inboxes.create(pod, username=username(), domain=made)
    org.client.pods.domains.verify(pod, made)
    assert org.valid(Domain, org.client.pods.domains.get(pod, made)).domain_id == made
