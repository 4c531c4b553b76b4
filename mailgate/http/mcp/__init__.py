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

Stateless: every POST is answered on its own, so there are no sessions to bound or to expire,
and a revoked key stops working at once. Resource subscriptions (told of new mail) need
sessions and are not served yet.

Three modules: arguments.py (each tool's arguments, as agentmail-toolkit names them), tools.py
(the tools, each the API's handler for the same request), server.py (the door and the SDK).
"""

from mailgate.http.mcp.server import PATH, McpServer

__all__ = ["PATH", "McpServer"]
