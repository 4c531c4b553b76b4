"""`mailgate mcp`: the MCP server over stdio, for clients that start a command (the hosted
service's `agentmail-mcp` does the same). It holds no tools of its own: it reaches a running
mailgate's /mcp with an API key, and offers what that server offers (all of it, or the tools
named with `--tools`), so every rule of the HTTP door (the key's scope, the checks, the
errors) holds here too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from mailgate import __version__

# Seconds a tool call may take at the server (sending a big message included).
TIMEOUT = 120.0


async def bridge(url: str, key: str, tools: Collection[str] | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes it, each request answered by the
    server at `url` (its /mcp) with `key`."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as http,
        Client(streamable_http_client(url, http_client=http)) as remote,
    ):

        def offered(name: str) -> bool:
            return tools is None or name in tools

        async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
            listed = await remote.list_tools()
            return types.ListToolsResult(tools=[t for t in listed.tools if offered(t.name)])

        async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> Any:
            if not offered(params.name):
                return types.CallToolResult(
                    content=[types.TextContent(text=f"unknown tool {params.name}")],
                    is_error=True,
                )
            return await remote.call_tool(params.name, params.arguments or {})

        server: Server[Any] = Server(
            "mailgate",
            version=__version__,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
