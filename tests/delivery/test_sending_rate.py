"""`[limits] messages_per_hour`: an inbox that sent its hourly limit is refused more, through
every door alike (SMTP at MAIL FROM, the API with 429 and Retry-After, an MCP tool), counted
across doors, while other inboxes send on."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest
from agentmail.core.api_error import ApiError
from mcp import Client
from mcp.types import CallToolResult

from tests.conftest import make_message
from tests.harness import Server
from tests.http.sdk import Api
from tests.mcp.test_mcp import bearer, error, with_tools

LIMIT = 3


def test_an_inbox_over_its_hourly_limit_is_refused_by_every_door(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(limits={"messages_per_hour": LIMIT})
    sender, other, reader = server.account(), server.account(), server.account()
    api = Api(server, sender.key)
    try:
        # Two over SMTP and one over the API: the limit counts them together.
        with server.smtp_client(sender) as smtp:
            for n in range(2):
                smtp.sendmail(
                    sender.address,
                    [reader.address],
                    make_message(sender.address, reader.address, subject=f"Fine {n}"),
                )
        api.client.inboxes.messages.send(sender.address, to=[reader.address], subject="Fine 2")

        with server.smtp_client(sender) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                smtp.sendmail(
                    sender.address,
                    [reader.address],
                    make_message(sender.address, reader.address, subject="Too many"),
                )
            assert refused.value.smtp_code == 450
            text = refused.value.smtp_error.decode()
            assert text.startswith("4.7.1 ")
            assert f"{sender.address} sent {LIMIT} messages within the last hour" in text
            # The session is still good for what is allowed.
            assert smtp.noop()[0] == 250

        with pytest.raises(ApiError) as limited:
            api.client.inboxes.messages.send(
                sender.address,
                to=[reader.address],
                subject="Too many",
                request_options={"max_retries": 0},
            )
        assert limited.value.status_code == 429
        assert api.last is not None
        retry_after = int(api.last.headers["Retry-After"])
        assert 1 <= retry_after <= 3601
        assert api.last.json()["name"] == "RateLimitError"

        async def send_with_a_tool(client: Client) -> CallToolResult:
            arguments = {"inbox_id": sender.address, "to": [reader.address], "subject": "Tool"}
            return await client.call_tool("send_message", arguments)

        result = with_tools(server, bearer(sender.key), send_with_a_tool)
        assert result.is_error
        assert "RateLimitError" in error(result)

        # Another inbox is not held back.
        with server.smtp_client(other) as smtp:
            smtp.sendmail(
                other.address,
                [reader.address],
                make_message(other.address, reader.address, subject="Other"),
            )
    finally:
        api.close()

    imap = server.imap_client(reader)
    try:
        imap.select("INBOX")
        _, found = imap.search(None, "ALL")
        # Three from the sender and one from the other inbox; nothing refused was stored.
        assert len(found[0].split()) == LIMIT + 1
        _, refused_found = imap.search(None, "SUBJECT", '"Too many"')
        assert refused_found[0] == b""
    finally:
        imap.logout()


def test_no_limit_when_set_to_zero(make_server: Callable[..., Server]) -> None:
    server = make_server(limits={"messages_per_hour": 0})
    sender, reader = server.account(), server.account()
    with server.smtp_client(sender) as smtp:
        for n in range(5):
            smtp.sendmail(
                sender.address,
                [reader.address],
                make_message(sender.address, reader.address, subject=f"Hello {n}"),
            )
    imap = server.imap_client(reader)
    try:
        imap.select("INBOX")
        _, found = imap.search(None, "ALL")
        assert len(found[0].split()) == 5
    finally:
        imap.logout()
