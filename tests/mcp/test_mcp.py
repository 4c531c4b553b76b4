"""The MCP server at /mcp, driven by the official `mcp` client SDK over streamable HTTP against
the real server: the tools and their schemas, a conversation between two inboxes made and read
with tools only, labels seen over IMAP, key scopes, argument errors, and the door (Origin, key).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.documents import docx_of, text_pdf
from tests.harness import DOMAIN, Server
from tests.http.sdk import Api, username

T = TypeVar("T")

TOOLS = {
    "list_inboxes": set(),
    "get_inbox": {"inbox_id"},
    "create_inbox": set(),
    "delete_inbox": {"inbox_id"},
    "list_threads": {"inbox_id"},
    "get_thread": {"inbox_id", "thread_id"},
    "get_attachment": {"inbox_id", "thread_id", "attachment_id"},
    "send_message": {"inbox_id", "to"},
    "reply_to_message": {"inbox_id", "message_id"},
    "forward_message": {"inbox_id", "message_id", "to"},
    "update_message": {"inbox_id", "message_id"},
    "list_messages": {"inbox_id"},
    "get_message": {"inbox_id", "message_id"},
    "search": {"query"},
    "create_draft": {"inbox_id"},
    "list_drafts": {"inbox_id"},
    "get_draft": {"inbox_id", "draft_id"},
    "update_draft": {"inbox_id", "draft_id"},
    "send_draft": {"inbox_id", "draft_id"},
    "delete_draft": {"inbox_id", "draft_id"},
}


def mcp_url(server: Server) -> str:
    return server.api_url + "/mcp"


def with_tools(
    server: Server,
    headers: dict[str, str],
    use: Callable[[Client], Awaitable[T]],
    mode: Any = "auto",
) -> T:
    """`use` run with an MCP client connected with `headers`; `mode` "auto" speaks the
    2026-07-28 revision (server/discover), "legacy" the initialize handshake."""

    async def run() -> T:
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(mcp_url(server), http_client=http)
            async with Client(transport, mode=mode) as client:
                return await use(client)

    return asyncio.run(run())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ok(result: CallToolResult) -> dict[str, Any]:
    """A tool's structured result, once it is known to have succeeded, with text beside it."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.content
    assert result.content[0].type == "text"
    return result.structured_content


def error(result: CallToolResult) -> str:
    assert result.is_error
    assert result.content[0].type == "text"
    return result.content[0].text


def test_tools_are_listed_with_required_arguments_and_annotations(server: Server, org: Api) -> None:
    async def use(client: Client) -> Any:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in with_tools(server, bearer(org.key), use)}
    assert set(tools) == set(TOOLS)
    for name, required in TOOLS.items():
        tool = tools[name]
        assert set(tool.input_schema.get("required", [])) == required, name
        assert tool.description
        assert len(tool.description) > 40
        assert tool.annotations is not None
    assert tools["list_threads"].annotations.read_only_hint is True
    assert tools["delete_inbox"].annotations.destructive_hint is True
    assert tools["send_message"].annotations.read_only_hint is False
    assert tools["update_message"].annotations.idempotent_hint is True


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_both_protocol_eras(server: Server, org: Api, mode: str) -> None:
    inbox = server.account().address

    async def use(client: Client) -> tuple[Any, ...]:
        tools = (await client.list_tools()).tools
        got = ok(await client.call_tool("get_inbox", {"inbox_id": inbox}))
        failed = await client.call_tool("get_inbox", {})
        return client.protocol_version, tools, got, failed

    version, tools, got, failed = with_tools(server, bearer(org.key), use, mode)
    if mode == "legacy":
        assert version < "2026-07-28"
    else:
        assert version >= "2026-07-28"
    assert {t.name for t in tools} == set(TOOLS)
    assert got["inbox_id"] == inbox
    assert "inbox_id: Field required" in error(failed)


def imap_keywords(server: Server, address: str, message_id: str) -> str:
    """The FLAGS IMAP shows for the message of INBOX with `message_id`."""
    imap = server.imap_client()
    try:
        imap.login(address, server.inbox_key(address))
        imap.select("INBOX")
        _, found = imap.search(None, "HEADER", "Message-ID", message_id)
        (number,) = found[0].split()
        _, data = imap.fetch(number, "(FLAGS)")
        return data[0].decode() if isinstance(data[0], bytes) else str(data[0])
    finally:
        imap.logout()


def test_a_conversation_made_and_read_with_tools(server: Server, org: Api) -> None:
    """Two inboxes made with tools; one writes to the other with an attachment; the other
    finds it, reads it and its attachment, answers everyone, forwards it, and labels it."""
    note = b"The meeting moved to Thursday.\n"
    third = server.account().address

    async def use(client: Client) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        a, b = [
            ok(await client.call_tool("create_inbox", {"username": username(), "domain": DOMAIN}))
            for _ in range(2)
        ]
        a_id, b_id = a["inbox_id"], b["inbox_id"]
        seen["ids"] = (a_id, b_id)
        sent = ok(
            await client.call_tool(
                "send_message",
                {
                    "inbox_id": a_id,
                    "to": [b_id],
                    "cc": [third],
                    "subject": "Meeting",
                    "text": "See the note.",
                    "attachments": [
                        {
                            "filename": "note.txt",
                            "content_type": "text/plain",
                            "content": base64.b64encode(note).decode(),
                        }
                    ],
                },
            )
        )
        assert sent["message_id"]
        assert sent["thread_id"]
        threads = ok(await client.call_tool("list_threads", {"inbox_id": b_id}))["threads"]
        assert [t["subject"] for t in threads] == ["Meeting"]
        (thread,) = threads
        assert [a["filename"] for a in thread["attachments"]] == ["note.txt"]
        got = ok(
            await client.call_tool(
                "get_thread", {"inbox_id": b_id, "thread_id": thread["thread_id"]}
            )
        )
        (message,) = got["messages"]
        assert message["extracted_text"].strip() == "See the note."
        attachment = ok(
            await client.call_tool(
                "get_attachment",
                {
                    "inbox_id": b_id,
                    "thread_id": thread["thread_id"],
                    "attachment_id": thread["attachments"][0]["attachment_id"],
                },
            )
        )
        assert attachment["filename"] == "note.txt"
        assert attachment["text"] == note.decode()
        assert attachment["download_url"].startswith(server.api_url)
        received_id = message["message_id"]
        seen["received"] = received_id
        reply = ok(
            await client.call_tool(
                "reply_to_message",
                {
                    "inbox_id": b_id,
                    "message_id": received_id,
                    "text": "Thursday works.",
                    "reply_all": True,
                },
            )
        )
        assert reply["thread_id"] == thread["thread_id"]
        answered = ok(
            await client.call_tool(
                "get_message", {"inbox_id": b_id, "message_id": reply["message_id"]}
            )
        )
        assert answered["to"] == [a_id]
        assert answered["cc"] == [third]
        assert answered["extracted_text"].strip() == "Thursday works."
        # In a's inbox, the answer's own text without the quoted original.
        back = ok(await client.call_tool("list_threads", {"inbox_id": a_id}))["threads"]
        assert back[0]["message_count"] == 2
        forwarded = ok(
            await client.call_tool(
                "forward_message",
                {
                    "inbox_id": b_id,
                    "message_id": received_id,
                    "to": [third],
                    "text": "FYI",
                },
            )
        )
        fwd = ok(
            await client.call_tool(
                "get_message", {"inbox_id": b_id, "message_id": forwarded["message_id"]}
            )
        )
        assert fwd["subject"] == "Fwd: Meeting"
        assert [a["filename"] for a in fwd["attachments"]] == ["note.txt"]
        labelled = ok(
            await client.call_tool(
                "update_message",
                {
                    "inbox_id": b_id,
                    "message_id": received_id,
                    "add_labels": ["urgent"],
                    "remove_labels": ["unread"],
                },
            )
        )
        assert "urgent" in labelled["labels"]
        assert "unread" not in labelled["labels"]
        found = ok(await client.call_tool("search", {"query": "Thursday", "inbox_id": a_id}))
        assert [t["thread_id"] for t in found["threads"]] == [back[0]["thread_id"]]
        everywhere = ok(await client.call_tool("search", {"query": "Thursday"}))["threads"]
        assert {t["inbox_id"] for t in everywhere} >= {a_id, b_id}
        hits = ok(
            await client.call_tool(
                "search", {"query": "Thursday", "inbox_id": a_id, "type": "messages"}
            )
        )["messages"]
        assert [m["message_id"] for m in hits] == [reply["message_id"]]
        listed = ok(await client.call_tool("list_messages", {"inbox_id": b_id}))["messages"]
        assert received_id in {m["message_id"] for m in listed}
        return seen

    seen = with_tools(server, bearer(org.key), use)
    flags = imap_keywords(server, seen["ids"][1], seen["received"])
    assert re.search(r"\burgent\b", flags), flags
    assert "\\Seen" in flags


def test_a_model_reads_the_text_of_pdf_and_docx_attachments(server: Server, org: Api) -> None:
    sender, recipient = server.account(), server.account()
    pdf_sentence, docx_sentence = "The invoice is due on Friday.", "Ship the order to Lyon."
    files = [
        ("invoice.pdf", "application/pdf", text_pdf(pdf_sentence)),
        (
            "order.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            docx_of("Order", docx_sentence),
        ),
        ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n not really a picture"),
    ]
    org.client.inboxes.messages.send(
        sender.address,
        to=recipient.address,
        subject="Papers",
        text="Attached.",
        attachments=[
            {"filename": n, "content_type": t, "content": base64.b64encode(d).decode()}
            for n, t, d in files
        ],
    )

    async def use(client: Client) -> list[dict[str, Any]]:
        # The recipient's thread: each inbox has its own.
        listed = ok(await client.call_tool("list_threads", {"inbox_id": recipient.address}))
        thread_id = listed["threads"][0]["thread_id"]
        thread = ok(
            await client.call_tool(
                "get_thread", {"inbox_id": recipient.address, "thread_id": thread_id}
            )
        )
        return [
            ok(
                await client.call_tool(
                    "get_attachment",
                    {
                        "inbox_id": recipient.address,
                        "thread_id": thread_id,
                        "attachment_id": attachment["attachment_id"],
                    },
                )
            )
            for attachment in thread["attachments"]
        ]

    pdf, word, picture = with_tools(server, bearer(org.key), use)
    assert (pdf["filename"], pdf["text"]) == ("invoice.pdf", pdf_sentence)
    assert word["filename"] == "order.docx"
    assert word["text"].split("\n") == ["Order", docx_sentence]
    # What is not text comes as it is, for a model that reads images.
    assert "text" not in picture
    assert base64.b64decode(picture["content"]) == files[2][2]


def test_an_inbox_key_sees_only_its_inbox(server: Server, org: Api) -> None:
    mine, other = server.account(), server.account()
    thread_id = org.client.inboxes.messages.send(
        other.address, to=mine.address, subject="Hello", text="Hi"
    ).thread_id

    async def use(client: Client) -> tuple[Any, ...]:
        listed = ok(await client.call_tool("list_inboxes", {}))["inboxes"]
        foreign = await client.call_tool(
            "get_thread", {"inbox_id": other.address, "thread_id": thread_id}
        )
        denied = await client.call_tool(
            "send_message", {"inbox_id": other.address, "to": [mine.address], "text": "x"}
        )
        own = ok(await client.call_tool("list_threads", {"inbox_id": mine.address}))
        later = {"inbox_id": mine.address, "after": "2999-01-01T00:00:00Z"}
        assert ok(await client.call_tool("list_threads", later))["threads"] == []
        earlier = {"inbox_id": mine.address, "before": "2999-01-01T00:00:00Z", "limit": 1}
        assert len(ok(await client.call_tool("list_messages", earlier))["messages"]) == 1
        too_many = await client.call_tool("list_threads", {"inbox_id": mine.address, "limit": 101})
        assert "limit: " in error(too_many)
        return listed, foreign, denied, own

    listed, foreign, denied, own = with_tools(server, {"x-api-key": mine.key}, use)
    assert [i["inbox_id"] for i in listed] == [mine.address]
    assert error(foreign) == f"NotFoundError: no inbox {other.address}"
    assert error(denied) == f"NotFoundError: no inbox {other.address}"
    assert [t["subject"] for t in own["threads"]] == ["Hello"]


def test_a_pod_key_sees_only_its_pod(server: Server, org: Api, pod: str) -> None:
    outside = server.account().address

    async def use(client: Client) -> tuple[Any, ...]:
        made = ok(
            await client.call_tool("create_inbox", {"username": username(), "domain": DOMAIN})
        )
        listed = ok(await client.call_tool("list_inboxes", {}))["inboxes"]
        foreign = await client.call_tool("get_inbox", {"inbox_id": outside})
        ok(await client.call_tool("delete_inbox", {"inbox_id": made["inbox_id"]}))
        after = ok(await client.call_tool("list_inboxes", {}))["inboxes"]
        assert after == []
        return made, listed, foreign

    made, listed, foreign = with_tools(server, bearer(server.pod_key(pod)), use)
    assert made["pod_id"] == pod
    assert [i["inbox_id"] for i in listed] == [made["inbox_id"]]
    assert error(foreign) == f"NotFoundError: no inbox {outside}"


def test_argument_errors_are_tool_results_and_the_session_goes_on(server: Server, org: Api) -> None:
    inbox = server.account().address

    async def use(client: Client) -> tuple[Any, ...]:
        missing = await client.call_tool("get_thread", {"inbox_id": inbox})
        wrong = await client.call_tool("list_threads", {"inbox_id": inbox, "limt": 3})
        invalid = await client.call_tool(
            "send_message", {"inbox_id": inbox, "to": ["not an address"], "text": "x"}
        )
        unknown = await client.call_tool("get_thread", {"inbox_id": inbox, "thread_id": "nope"})
        nowhere = await client.call_tool("search", {"query": "x", "type": "messages"})
        after = ok(await client.call_tool("get_inbox", {"inbox_id": inbox}))
        return missing, wrong, invalid, unknown, nowhere, after

    missing, wrong, invalid, unknown, nowhere, after = with_tools(server, bearer(org.key), use)
    assert error(nowhere).startswith("ValidationError: ")
    assert "inbox_id" in error(nowhere)
    assert "thread_id: Field required" in error(missing)
    assert "limt" in error(wrong)
    assert error(invalid).startswith("ValidationError: ")
    assert "to" in error(invalid)
    assert error(unknown).startswith("NotFoundError: ")
    assert after["inbox_id"] == inbox


def test_drafts_written_changed_sent_and_deleted_with_tools(server: Server, org: Api) -> None:
    a, b = server.account().address, server.account().address

    async def use(client: Client) -> tuple[Any, ...]:
        draft = ok(
            await client.call_tool(
                "create_draft", {"inbox_id": a, "to": [b], "subject": "Draft", "text": "v1"}
            )
        )
        key = {"inbox_id": a, "draft_id": draft["draft_id"]}
        ok(await client.call_tool("update_draft", {**key, "text": "v2"}))
        got = ok(await client.call_tool("get_draft", key))
        listed = ok(await client.call_tool("list_drafts", {"inbox_id": a}))["drafts"]
        sent = ok(await client.call_tool("send_draft", key))
        gone = await client.call_tool("get_draft", key)
        other = ok(await client.call_tool("create_draft", {"inbox_id": a, "to": [b], "text": "x"}))
        other_key = {"inbox_id": a, "draft_id": other["draft_id"]}
        deleted = ok(await client.call_tool("delete_draft", other_key))
        threads = ok(await client.call_tool("list_threads", {"inbox_id": b}))["threads"]
        return got, listed, sent, gone, deleted, threads

    got, listed, sent, gone, deleted, threads = with_tools(server, bearer(org.key), use)
    assert got["text"].strip() == "v2"
    assert [d["draft_id"] for d in listed] == [got["draft_id"]]
    assert sent["message_id"]
    assert error(gone).startswith("NotFoundError: ")
    assert deleted["deleted"] is True
    assert [t["subject"] for t in threads] == ["Draft"]


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def test_the_door_wants_a_key_and_a_local_origin(server: Server, org: Api) -> None:
    url = mcp_url(server)
    port = server.port("api")
    with httpx.Client(timeout=30) as http:
        nokey = http.post(url, json=INITIALIZE, headers=ACCEPT)
        assert nokey.status_code == 401
        assert nokey.json()["name"] == "UnauthorizedError"
        badkey = http.post(url, json=INITIALIZE, headers={**ACCEPT, **bearer("mg_nonsense")})
        assert badkey.status_code == 401
        foreign = http.post(
            url,
            json=INITIALIZE,
            headers={**ACCEPT, **bearer(org.key), "Origin": f"http://evil.example:{port}"},
        )
        assert foreign.status_code == 403
        assert foreign.json()["name"] == "ForbiddenError"
        local = http.post(
            url,
            json=INITIALIZE,
            headers={**ACCEPT, "x-api-key": org.key, "Origin": f"http://localhost:{port}"},
        )
        assert local.status_code == 200, local.text
        assert local.json()["result"]["serverInfo"]["name"] == "mailgate"
        for other in (f"http://127.0.0.1:{port + 1}", "null", f"http://[::1]:{port}"):
            headers = {**ACCEPT, **bearer(org.key), "Origin": other}
            expected = 200 if other.startswith("http://[::1]") else 403
            assert http.post(url, json=INITIALIZE, headers=headers).status_code == expected


def test_configured_origins_are_the_only_ones_allowed(make_server: Callable[..., Server]) -> None:
    origin = "https://app.example"
    server = make_server(api={"mcp_allowed_origins": [origin]})
    server.account()
    key = server.org_key()
    port = server.port("api")
    with httpx.Client(timeout=30) as http:

        def post(origin: str) -> int:
            headers = {**ACCEPT, **bearer(key), "Origin": origin}
            return http.post(mcp_url(server), json=INITIALIZE, headers=headers).status_code

        assert post(origin) == 200
        assert post(f"http://localhost:{port}") == 403
        assert post("https://app.example.evil") == 403


def test_mailgate_mcp_serves_the_tools_over_stdio(server: Server, tmp_path: Any) -> None:
    from mcp.client.stdio import StdioServerParameters, stdio_client

    account = server.account()
    key_file = tmp_path / "key"
    key_file.write_text(account.key + "\n")
    command = str(Path(sys.executable).parent / "mailgate")
    params = StdioServerParameters(
        command=command,
        args=[
            "mcp",
            "--url",
            mcp_url(server),
            "--api-key-file",
            str(key_file),
            "--tools",
            "list_inboxes,list_threads",
        ],
    )

    async def run() -> tuple[list[str], dict[str, Any], str]:
        async with Client(stdio_client(params)) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            inboxes = ok(await client.call_tool("list_inboxes", {}))
            refused = error(await client.call_tool("get_inbox", {"inbox_id": account.address}))
            return names, inboxes, refused

    names, inboxes, refused = asyncio.run(run())
    assert names == ["list_inboxes", "list_threads"]
    # The key's scope, as over HTTP: an inbox key sees its inbox.
    assert [i["inbox_id"] for i in inboxes["inboxes"]] == [account.address]
    assert "unknown tool get_inbox" in refused


def test_mailgate_mcp_wants_a_key_outside_the_command_line(server: Server) -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "MAILGATE_API_KEY"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mailgate"), "mcp", "--url", mcp_url(server)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "MAILGATE_API_KEY" in done.stderr
