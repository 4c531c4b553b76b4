"""Inboxes as MCP resources, and being told of new mail: `resources/list` and `read`, then a
subscription in each protocol era (`resources/subscribe` on a handshake-era session,
`subscriptions/listen` at 2026-07-28) notified when mail arrives over SMTP or labels change;
the key's scope; sessions bounded per key; `[api] mcp_tools`; malformed requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceUpdatedNotification, ServerNotification

from tests.e2e.process import clean_env, config_file, run
from tests.harness import Account, Server
from tests.http.sdk import Api
from tests.mcp.test_mcp import ACCEPT, INITIALIZE, bearer, mcp_url, ok

# Seconds a notification may take to come: far more than it needs (milliseconds), so a slow
# machine does not fail the test, and a missing one does.
TOLD_WITHIN = 20.0


def uri(address: str) -> str:
    return f"mailgate://inboxes/{address}"


@contextlib.asynccontextmanager
async def connected(
    server: Server, key: str, mode: str = "auto", handler: Any = None
) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=bearer(key), timeout=30) as http:
        transport = streamable_http_client(mcp_url(server), http_client=http)
        async with Client(transport, mode=mode, message_handler=handler) as client:  # type: ignore[arg-type]
            yield client


def submit(server: Server, sender: Account, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"] = sender.address
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Hello.\n")
    with server.smtp_client(sender) as smtp:
        smtp.send_message(message)


async def in_thread(work: Callable[[], None]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, work)


def test_inboxes_are_resources_the_key_sees(server: Server, org: Api) -> None:
    mine, other = server.account(), server.account()

    async def listed(key: str) -> tuple[set[str], Any]:
        async with connected(server, key) as client:
            found = {str(r.uri) for r in (await client.list_resources()).resources}
            templates = (await client.list_resource_templates()).resource_templates
            return found, templates

    everything, templates = asyncio.run(listed(org.key))
    assert {uri(mine.address), uri(other.address)} <= everything
    assert [t.uri_template for t in templates] == ["mailgate://inboxes/{inbox_id}"]
    own, _ = asyncio.run(listed(mine.key))
    assert own == {uri(mine.address)}


def test_reading_an_inbox_gives_its_newest_threads(server: Server) -> None:
    sender, reader = server.account(), server.account()
    submit(server, sender, reader.address, "First")
    submit(server, sender, reader.address, "Second")

    async def read() -> tuple[Any, str]:
        async with connected(server, reader.key) as client:
            result = await client.read_resource(uri(reader.address))
            with pytest.raises(MCPError) as refused:
                await client.read_resource(uri(sender.address))
            return result, refused.value.error.message

    result, refused = asyncio.run(read())
    (contents,) = result.contents
    assert contents.mime_type == "application/json"
    body = json.loads(contents.text)
    assert body["inbox_id"] == reader.address
    assert [t["subject"] for t in body["threads"]] == ["Second", "First"]
    # Another's inbox is answered as one that does not exist.
    assert f"no inbox {sender.address}" in refused


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_subscriber_is_told_when_mail_arrives_and_labels_change(
    server: Server, mode: str
) -> None:
    sender, reader, other = server.account(), server.account(), server.account()

    async def scenario() -> list[str]:
        told: asyncio.Queue[str] = asyncio.Queue()

        async def handler(message: Any) -> None:
            if isinstance(message, ServerNotification) and isinstance(
                message, ResourceUpdatedNotification
            ):
                told.put_nowait(str(message.params.uri))

        async def next_told() -> str:
            return await asyncio.wait_for(told.get(), TOLD_WITHIN)

        async with connected(server, reader.key, mode, handler) as client:
            if mode == "legacy":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await client.subscribe_resource(uri(reader.address))
                    with pytest.raises(MCPError):
                        await client.subscribe_resource(uri(other.address))
                return await told_legacy(client, next_told)
            async with client.listen(
                resource_subscriptions=[uri(reader.address), uri(other.address)]
            ) as subscription:
                # Only the inbox the key sees is acknowledged.
                assert subscription.honored.resource_subscriptions == [uri(reader.address)]
                events = aiter(subscription)

                async def next_event() -> str:
                    event = await asyncio.wait_for(anext(events), TOLD_WITHIN)
                    assert isinstance(event, ResourceUpdated)
                    return event.uri

                return await told_legacy(client, next_event)

    async def told_legacy(client: Client, next_told: Callable[[], Any]) -> list[str]:
        seen = []
        # Mail for another inbox tells nothing; mail for this one does.
        await in_thread(lambda: submit(server, sender, other.address, "Not yours"))
        await in_thread(lambda: submit(server, sender, reader.address, "Yours"))
        seen.append(await next_told())
        threads = ok(await client.call_tool("list_threads", {"inbox_id": reader.address}))
        assert [t["subject"] for t in threads["threads"]] == ["Yours"]
        message_id = threads["threads"][0]["last_message_id"]
        # A label added (here with a tool; IMAP or the API would do the same).
        await client.call_tool(
            "update_message",
            {"inbox_id": reader.address, "message_id": message_id, "add_labels": ["done"]},
        )
        seen.append(await next_told())
        return seen

    assert asyncio.run(scenario()) == [uri(reader.address)] * 2


def test_sessions_are_bounded_per_key(make_server: Callable[..., Server]) -> None:
    server = make_server(api={"mcp_sessions_per_key": 2})
    first, second = server.account(), server.account()

    def initialize(http: httpx.Client, key: str) -> httpx.Response:
        return http.post(mcp_url(server), json=INITIALIZE, headers={**ACCEPT, **bearer(key)})

    with httpx.Client(timeout=30) as http:
        opened = [initialize(http, first.key) for _ in range(2)]
        assert [r.status_code for r in opened] == [200, 200]
        assert all(r.headers.get("mcp-session-id") for r in opened)
        refused = initialize(http, first.key)
        assert refused.status_code == 503
        # Another key is not held up by the first's sessions.
        assert initialize(http, second.key).status_code == 200
        # A session closed (DELETE) frees its place.
        closing = {**bearer(first.key), "mcp-session-id": opened[0].headers["mcp-session-id"]}
        assert http.delete(mcp_url(server), headers=closing).status_code == 200
        assert initialize(http, first.key).status_code == 200
        # A session is the key's that opened it: another key is told it does not exist.
        borrowed = {
            **ACCEPT,
            **bearer(second.key),
            "mcp-session-id": opened[1].headers["mcp-session-id"],
        }
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        assert http.post(mcp_url(server), json=listing, headers=borrowed).status_code == 404


def test_mcp_tools_limits_the_tools_offered(make_server: Callable[..., Server]) -> None:
    server = make_server(api={"mcp_tools": ["list_threads", "get_thread"]})
    account = server.account()

    async def use() -> tuple[list[str], str]:
        async with connected(server, account.key) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            refused = await client.call_tool("list_inboxes", {})
            return names, refused.content[0].text  # type: ignore[union-attr]

    names, refused = asyncio.run(use())
    assert names == ["get_thread", "list_threads"]
    assert "no tool list_inboxes" in refused


def test_an_unknown_tool_in_mcp_tools_is_a_configuration_error(tmp_path: Path) -> None:
    with config_file(tmp_path, "sqlite") as config:
        env = clean_env(MAILGATE_API_MCP_TOOLS='["list_threads", "read_minds"]')
        done = run("serve", "--config", str(config), cwd=tmp_path, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "[api] mcp_tools: unknown tool 'read_minds'" in lines[0]


def test_malformed_requests_get_the_specifications_errors(server: Server) -> None:
    account = server.account()
    headers = {**ACCEPT, **bearer(account.key), "Content-Type": "application/json"}
    with httpx.Client(timeout=60) as http:
        garbage = http.post(mcp_url(server), content=b"{not json", headers=headers)
        assert garbage.status_code == 400
        assert garbage.json()["error"]["code"] == -32700
        opened = http.post(mcp_url(server), json=INITIALIZE, headers=headers)
        session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
        unknown = http.post(
            mcp_url(server),
            json={"jsonrpc": "2.0", "id": 2, "method": "mail/teleport"},
            headers=session,
        )
        assert unknown.json()["error"]["code"] == -32601
        # An argument of 10 MB: refused by the tool with the field named; the session goes on.
        huge = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_inbox", "arguments": {"inbox_id": "x" * 10_000_000}},
        }
        answered = http.post(mcp_url(server), json=huge, headers=session)
        assert answered.status_code == 200
        result = answered.json()["result"]
        assert result["isError"] is True
        # Larger than the API's request limit: 413 before anything is parsed.
        too_big = b" " * (server.settings.api.max_request_size + 1)
        assert http.post(mcp_url(server), content=too_big, headers=session).status_code == 413
        listing = {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}
        still = http.post(mcp_url(server), json=listing, headers=session)
        assert still.status_code == 200
        assert still.json()["result"]["tools"]


def test_an_idle_session_expires(make_server: Callable[..., Server]) -> None:
    # One session per key: the next can open only once the first has expired (watched that
    # way because a request in the first session would keep it alive).
    server = make_server(api={"mcp_session_timeout": 1, "mcp_sessions_per_key": 1})
    account = server.account()
    headers = {**ACCEPT, **bearer(account.key)}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    with httpx.Client(timeout=30) as http:
        opened = http.post(mcp_url(server), json=INITIALIZE, headers=headers)
        session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
        assert http.post(mcp_url(server), json=listing, headers=session).status_code == 200
        deadline = time.monotonic() + 30
        while (
            again := http.post(mcp_url(server), json=INITIALIZE, headers=headers)
        ).status_code != 200:
            assert again.status_code == 503
            assert time.monotonic() < deadline, "the session never expired"
            time.sleep(0.2)
        # The expired session is gone for good.
        assert http.post(mcp_url(server), json=listing, headers=session).status_code == 404
