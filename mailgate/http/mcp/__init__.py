"""The MCP server: /mcp on the API's port, MCP's streamable HTTP transport (the official `mcp`
SDK), with tools named and shaped as AgentMail's (agentmail-toolkit's schemas) for assistants
and agent frameworks that reach mail through tools.

The door: a request whose `Origin` is present and not allowed gets 403 (DNS rebinding: a page
of a foreign site in the user's browser must not reach a server on loopback); then the API key,
as `Authorization: Bearer KEY` or `x-api-key: KEY`, verified as every API request is (the same
throttle), else 401.

A tool calls the HTTP API's own handler for the same request (the route functions of
inboxes.py, threads.py, messages.py, drafts.py), with the dependencies FastAPI would have given
it: the verified caller, the services, a page window, and a copy of the MCP request (for the
download links it makes). So a tool has the key's scope, the same validation, From check,
limits and Sent copy, and the same errors naming the field; a failure is a tool result with
isError, never a dropped session. Nothing goes over HTTP twice, and no SQL is spoken here.

Inboxes are resources (`mailgate://inboxes/{inbox_id}`: the inbox's newest threads), and a
client subscribed to one is told when it changes (watch.py), by either protocol era:
`resources/subscribe` on a handshake-era session, `subscriptions/listen` at 2026-07-28.
Handshake-era clients hold a session (the SDK's, in memory on this node): bound to the key
that opened it, at most `[api] mcp_sessions_per_key` per key, expired after
`[api] mcp_session_timeout` idle seconds. Every request is authenticated on its own still, so a
revoked key stops working at once. 2026-07-28 requests need no session.

Modules: arguments.py (each tool's arguments, as agentmail-toolkit names them), tools.py (the
tools, each the API's handler for the same request), resources.py (inboxes as resources),
watch.py (subscriptions), server.py (the door and the SDK), bridge.py (`mailgate mcp`).
"""

from mailgate.http.mcp.server import PATH, McpServer, offered

__all__ = ["PATH", "McpServer", "offered"]
