"""Pods: /v0/pods (the SDK's `client.pods`). A pod's id is its name, as in the CLI.

Only an organization key creates or deletes pods; a pod or inbox key sees its own pod and no
other. Deleting takes an empty pod, never the default one (403 otherwise: the SDK would repeat
a 409, and repeating cannot make it allowed).

This module is the pattern the other resources follow: a router, the JSON models of the
resource (named as the SDK names them), and handlers that take the caller (`CallerDep`),
the services (`ServicesDep`) and, for lists, `Paging`; they raise `errors.Problem`s and let
store errors through to the one mapping in errors.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel

from mailgate import provision
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import NotFound
from mailgate.http.fields import ClientId, PodName
from mailgate.http.pagination import Cursor, PageFields, PagingDep
from mailgate.store import errors as store_errors
from mailgate.store.records import Pod as PodRecord

router = APIRouter(prefix="/v0/pods", tags=["pods"])


class Pod(BaseModel):
    pod_id: str
    name: str
    updated_at: datetime
    created_at: datetime
    client_id: str | None = None

    @classmethod
    def of(cls, pod: PodRecord) -> Pod:
        return cls(
            pod_id=pod.name,
            name=pod.name,
            updated_at=datetime.fromtimestamp(pod.updated_at or pod.created_at, UTC),
            created_at=datetime.fromtimestamp(pod.created_at, UTC),
            client_id=pod.client_id,
        )


class ListPodsResponse(PageFields):
    pods: list[Pod]


class CreatePodRequest(BaseModel):
    name: PodName | None = None
    client_id: ClientId | None = None


async def visible_pod(caller: Caller, services: Services, pod_id: str) -> PodRecord:
    """The pod named `pod_id` if the caller sees it; else NotFound, as if it did not exist."""
    try:
        pod = await services.store.get_pod(pod_id)
    except (store_errors.PodNotFound, store_errors.InvalidName):
        pod = None
    if pod is None or not caller.sees_pod(pod):
        raise NotFound(f"no pod {pod_id}")
    return pod


# How a resource served both at the top and under /v0/pods/{pod_id} finds the pod its path
# names: None at the top; under a pod, the pod if the caller sees it (else NotFound).
PodLookup = Callable[..., Awaitable[PodRecord | None]]


async def top_level() -> None:
    return None


async def in_pod(pod_id: str, caller: CallerDep, services: ServicesDep) -> PodRecord:
    return await visible_pod(caller, services, pod_id)


def _order(pod: PodRecord) -> Cursor:
    return (pod.created_at, pod.id)


@router.get("", response_model_exclude_none=True)
async def list_pods(
    caller: CallerDep,
    services: ServicesDep,
    paging: PagingDep,
    ascending: bool = False,
) -> ListPodsResponse:
    """Pods the key sees, newest first (`ascending`: oldest first)."""
    window = await paging.window(f"pods:ascending={ascending}")
    pods = sorted(
        (p for p in await services.store.list_pods() if caller.sees_pod(p)),
        key=_order,
        reverse=not ascending,
    )
    page = await paging.page(window, pods, _order, descending=not ascending)
    return ListPodsResponse(**page.fields(), pods=[Pod.of(p) for p in page.items])


@router.get("/{pod_id}", response_model_exclude_none=True)
async def get_pod(pod_id: str, caller: CallerDep, services: ServicesDep) -> Pod:
    return Pod.of(await visible_pod(caller, services, pod_id))


@router.post("", response_model_exclude_none=True)
async def create_pod(
    caller: CallerDep,
    services: ServicesDep,
    request: Annotated[CreatePodRequest | None, Body()] = None,
) -> Pod:
    """A new pod (`name` generated if not given); with a `client_id` a pod already has, that
    pod, so repeating a create is harmless."""
    caller.require("organization", doing="create pods")
    request = request or CreatePodRequest()
    name = request.name or f"pod-{secrets.token_hex(6)}"
    pod = await provision.create_pod(services.store, name, client_id=request.client_id)
    return Pod.of(pod)


@router.delete("/{pod_id}", status_code=204)
async def delete_pod(pod_id: str, caller: CallerDep, services: ServicesDep) -> Response:
    pod = await visible_pod(caller, services, pod_id)
    caller.require("organization", doing="delete pods")
    await provision.delete_pod(services.store, pod.name)
    return Response(status_code=204)
