"""Domains: /v0/domains and /v0/pods/{pod_id}/domains (the SDK's `client.domains` and
`client.pods.domains`). A domain's id is its name.

In mailgate a domain belongs to the whole server, not to a pod: `mailgate domain add`, this
API, or the first inbox at a domain adds it, with its DKIM keys. So an organization key sees
and manages every domain; a pod key sees the domains of its pod's inboxes, and an inbox key the
domain of its inbox: they may read and verify those, but not create, change or delete domains
(403). Under /v0/pods/{pod_id} are the domains of that pod's inboxes; a domain created there is
created for the whole server, as at the top, and is listed under the pod once one of the pod's
inboxes is at it. Deleting takes a domain no inbox uses (403 otherwise).

A domain's `records` are the records mail needs (MX, SPF, each published DKIM key, DMARC); its
zone file (`zone-file`) is what `mailgate domain dns` prints: those, and the optional ones that
let mail clients set themselves up (SRV and CNAME, see autoconfig.py). Those are not `records`:
the SDK's record types have no SRV, and a domain without them sends and receives mail all the
same, so they must not keep it from being VERIFIED. Whether DNS publishes each record is looked
up when the domain is answered (create, get, update, verify) with the node's resolver: VALID,
MISSING, or INVALID (`value_mismatch`, or `duplicate_records` beside another record of its
kind). The domain is VERIFIED when every record is VALID, else INVALID, PENDING (a record is
missing) or VERIFYING: a lookup failed for now (a DNS timeout or server failure is never a
pass), and that record is MISSING with the reason `dns_temporary_failure` until DNS answers.

The SDK's flags take the values of what mailgate does: it receives mail for every domain it
hosts (`inbound_enabled`), files a bounce (a DSN) in the sending inbox (`feedback_enabled`),
hosts no subdomains and tracks no opens; asking for anything else answers 501, as does the
Domain Connect setup link. `allow_conflicting_provider` is accepted: mailgate does not look
for another provider's MX records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from mailgate import provision
from mailgate.delivery.domains import dns_records, zone_file
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import FieldError, Invalid, NotFound, NotImplementedHere
from mailgate.http.fields import DomainName
from mailgate.http.pagination import Cursor, PageFields, PagingDep
from mailgate.http.pods import PodLookup, in_pod, top_level
from mailgate.mime.addresses import domain_of
from mailgate.store import errors as store_errors
from mailgate.store.names import domain_name
from mailgate.store.records import Domain as DomainRecord
from mailgate.store.records import Pod as PodRecord

# What mailgate does, as the SDK's flags say it, and what asking for the opposite would be.
FLAGS: dict[str, tuple[bool, str]] = {
    "inbound_enabled": (True, "send-only domains (mailgate receives mail for every domain)"),
    "feedback_enabled": (True, "turning off bounces (mailgate files each in the sending inbox)"),
    "subdomains_enabled": (False, "inboxes on subdomains of a domain"),
    "tracking_enabled": (False, "open tracking"),
}

# provision's verdicts, in the SDK's words: (record status, its reason).
RECORD_STATUS: dict[str, tuple[str, str | None]] = {
    provision.VALID: ("VALID", None),
    provision.MISSING: ("MISSING", None),
    provision.INVALID: ("INVALID", None),  # the reason is the check's detail
    provision.UNKNOWN: ("MISSING", "dns_temporary_failure"),
}
DOMAIN_STATUS: dict[str, tuple[str, str | None]] = {
    provision.VALID: ("VERIFIED", None),
    provision.INVALID: ("INVALID", "dns_records_invalid"),
    provision.MISSING: ("PENDING", "dns_records_missing"),
    provision.UNKNOWN: ("VERIFYING", "dns_temporary_failure"),
}


class VerificationRecord(BaseModel):
    type: str  # MX or TXT
    name: str  # fully qualified, without the final dot
    value: str  # an MX's host, a TXT's whole text
    status: str
    priority: int | None = None
    reason: str | None = None

    @classmethod
    def of(cls, check: provision.RecordCheck) -> VerificationRecord:
        record = check.record
        status, reason = RECORD_STATUS[check.status]
        priority: int | None = None
        value = record.value
        if record.type == "MX":
            preference, _, host = value.partition(" ")
            priority, value = int(preference), host.rstrip(".")
        if check.status == provision.INVALID:
            reason = check.detail
        return cls(
            type=record.type,
            name=record.name.rstrip("."),
            value=value,
            status=status,
            priority=priority,
            reason=reason,
        )


class DomainItem(BaseModel):
    domain_id: str
    domain: str
    feedback_enabled: bool = FLAGS["feedback_enabled"][0]
    inbound_enabled: bool = FLAGS["inbound_enabled"][0]
    subdomains_enabled: bool = FLAGS["subdomains_enabled"][0]
    tracking_enabled: bool = FLAGS["tracking_enabled"][0]
    updated_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, domain: DomainRecord) -> DomainItem:
        return cls(**_common(domain))


class Domain(DomainItem):
    status: str
    reason: str | None = None
    records: list[VerificationRecord]

    @classmethod
    def checked(cls, check: provision.DomainCheck) -> Domain:
        status, reason = DOMAIN_STATUS[check.status]
        return cls(
            **_common(check.domain),
            status=status,
            reason=reason,
            records=[VerificationRecord.of(c) for c in check.records],
        )


def _common(domain: DomainRecord) -> dict[str, Any]:
    # A domain changes only when its DKIM keys do (rotation adds keys).
    changed = max([domain.created_at, *(k.created_at for k in domain.keys)])
    return {
        "domain_id": domain.name,
        "domain": domain.name,
        "updated_at": datetime.fromtimestamp(changed, UTC),
        "created_at": datetime.fromtimestamp(domain.created_at, UTC),
    }


class ListDomainsResponse(PageFields):
    domains: list[DomainItem]


class CreateDomainRequest(BaseModel):
    domain: DomainName
    allow_conflicting_provider: bool | None = None
    feedback_enabled: bool | None = None
    inbound_enabled: bool | None = None
    subdomains_enabled: bool | None = None
    tracking_enabled: bool | None = None


class UpdateDomainRequest(BaseModel):
    feedback_enabled: bool | None = None
    inbound_enabled: bool | None = None
    subdomains_enabled: bool | None = None
    tracking_enabled: bool | None = None


def _routes(prefix: str, pod_lookup: PodLookup) -> APIRouter:
    """The domain handlers under `prefix`; `pod_lookup` gives the pod the path names (or None)."""
    routes = APIRouter(prefix=prefix, tags=["domains"])
    route_pod: Any = Depends(pod_lookup)  # see inboxes.py: a default, not an Annotated alias

    @routes.get("", response_model_exclude_none=True)
    async def list_domains(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        ascending: bool = False,
        pod: PodRecord | None = route_pod,
    ) -> ListDomainsResponse:
        """Domains the key sees, newest first (`ascending`: oldest first)."""
        window = await paging.window(f"domains:pod={'' if pod is None else pod.name}:{ascending}")
        seen = await _visible_names(caller, services, pod)
        domains = sorted(
            (d for d in await services.store.list_domains() if seen is None or d.name in seen),
            key=_age,
            reverse=not ascending,
        )
        page = await paging.page(window, domains, _age, descending=not ascending)
        return ListDomainsResponse(**page.fields(), domains=[DomainItem.of(d) for d in page.items])

    @routes.get("/{domain_id}", response_model_exclude_none=True)
    async def get_domain(
        domain_id: str, caller: CallerDep, services: ServicesDep, pod: PodRecord | None = route_pod
    ) -> Domain:
        """The domain, with whether DNS publishes each of its records (looked up now)."""
        domain = await _visible_domain(caller, services, pod, domain_id)
        return await _checked(services, domain.name)

    @routes.get("/{domain_id}/zone-file", response_class=PlainTextResponse)
    async def get_zone_file(
        domain_id: str, caller: CallerDep, services: ServicesDep, pod: PodRecord | None = route_pod
    ) -> PlainTextResponse:
        """The records to publish, as a zone file (what `mailgate domain dns` prints)."""
        domain = await _visible_domain(caller, services, pod, domain_id)
        return PlainTextResponse(zone_file(domain, services.settings) + "\n")

    @routes.post("", response_model_exclude_none=True)
    async def create_domain(
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[CreateDomainRequest, Body()],
        pod: PodRecord | None = route_pod,
    ) -> Domain:
        """A new domain with fresh DKIM keys, and the records to publish for it."""
        caller.require("organization", doing="create domains")
        _check_flags(request.model_dump(exclude={"domain", "allow_conflicting_provider"}))
        domain = await provision.add_domain(services.store, request.domain)
        return await _checked(services, domain.name)

    @routes.patch("/{domain_id}", response_model_exclude_none=True)
    async def update_domain(
        domain_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[UpdateDomainRequest, Body()],
        pod: PodRecord | None = route_pod,
    ) -> Domain:
        """Only what mailgate does can be asked for, so an update changes nothing."""
        domain = await _visible_domain(caller, services, pod, domain_id)
        caller.require("organization", doing="change domains")
        given = request.model_dump(exclude_none=True)
        if not given:
            fields = ", ".join(FLAGS)
            raise Invalid([FieldError((), f"give at least one of {fields}")])
        _check_flags(given)
        return await _checked(services, domain.name)

    @routes.delete("/{domain_id}", status_code=204)
    async def delete_domain(
        domain_id: str, caller: CallerDep, services: ServicesDep, pod: PodRecord | None = route_pod
    ) -> Response:
        domain = await _visible_domain(caller, services, pod, domain_id)
        caller.require("organization", doing="delete domains")
        await provision.delete_domain(services.store, domain.name)
        return Response(status_code=204)

    @routes.post("/{domain_id}/verify", response_model_exclude_none=True)
    async def verify_domain(
        domain_id: str, caller: CallerDep, services: ServicesDep, pod: PodRecord | None = route_pod
    ) -> Domain:
        """Look the domain's records up in DNS now; the answer is the domain as GET shows it."""
        domain = await _visible_domain(caller, services, pod, domain_id)
        return await _checked(services, domain.name)

    return routes


top_routes = _routes("/v0/domains", top_level)


@top_routes.get("/{domain_id}/setup-link")
async def get_setup_link(domain_id: str, caller: CallerDep, services: ServicesDep) -> None:
    await _visible_domain(caller, services, None, domain_id)
    raise NotImplementedHere(
        "one-click DNS setup (Domain Connect) is not offered by mailgate: publish the domain's "
        "records (GET /v0/domains/{domain_id}, or its zone-file) with your DNS provider"
    )


router = APIRouter()
router.include_router(top_routes)
router.include_router(_routes("/v0/pods/{pod_id}/domains", in_pod))


def _age(domain: DomainRecord) -> Cursor:
    return (domain.created_at, domain.name)


async def _visible_names(
    caller: Caller, services: Services, pod: PodRecord | None
) -> set[str] | None:
    """The names of the domains the caller sees (of `pod`'s inboxes, if given); None for every
    domain there is."""
    if pod is None and caller.scope == "organization":
        return None
    inboxes = await services.store.list_inboxes(pod.name if pod is not None else caller.pod)
    return {domain_of(i.address) for i in inboxes if caller.sees(i)}


async def _visible_domain(
    caller: Caller, services: Services, pod: PodRecord | None, domain_id: str
) -> DomainRecord:
    """The domain `domain_id` if the caller sees it (under `pod`, if given); else NotFound, the
    same as for a domain that does not exist."""
    try:
        name = domain_name(domain_id)
        seen = await _visible_names(caller, services, pod)
        if seen is not None and name not in seen:
            raise store_errors.DomainNotFound(name)
        return await services.store.get_domain(name)
    except (store_errors.DomainNotFound, store_errors.InvalidName):
        raise NotFound(f"no domain {domain_id}") from None


async def _checked(services: Services, name: str) -> Domain:
    check = await provision.check_domain(
        services.store, services.resolver, name, services.settings.server.hostname
    )
    return Domain.checked(check)


def verified(domain: DomainRecord, hostname: str) -> Domain:
    """The domain as its domain.verified event shows it: every record found published (the
    check that wrote the event found them so; this does not look them up again)."""
    checks = [provision.RecordCheck(r, provision.VALID) for r in dns_records(domain, hostname)]
    return Domain.checked(provision.DomainCheck(domain, tuple(checks)))


def _check_flags(given: dict[str, bool | None]) -> None:
    for flag, value in given.items():
        does, other = FLAGS[flag]
        if value is not None and value is not does:
            raise NotImplementedHere(f"{flag}: {value}: {other} is not supported by mailgate")
