"""The official `agentmail-toolkit` (0.3.2, unchanged) handed an `AgentMail` client built with
mailgate's base URLs, as its README has users do: each of its tools called through the
toolkit's framework-neutral interface (`agentmail_toolkit.AgentMailToolkit`), then through its
OpenAI Agents SDK, LangChain and LiveKit adapters the way those frameworks call a tool.

The server speaks HTTPS with its self-signed certificate, which the client and the toolkit's
own attachment download trust (`SSL_CERT_FILE`, as a user of a self-signed server would set
it): the toolkit extracts an attachment's text only from an https download URL, as the hosted
service's are.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from agentmail import AgentMail, AgentMailEnvironment
from agentmail.core import ApiError
from agentmail_toolkit import AgentMailToolkit
from agentmail_toolkit.langchain import AgentMailToolkit as LangChainToolkit
from agentmail_toolkit.livekit import AgentMailToolkit as LiveKitToolkit
from agentmail_toolkit.openai import AgentMailToolkit as OpenAIToolkit
from agents import RunContextWrapper
from livekit.agents import ToolError
from mcp import Client

from tests.documents import docx_of, text_pdf
from tests.harness import DOMAIN, Server, running_server
from tests.http.sdk import Api, username
from tests.mcp.test_mcp import bearer, with_tools

# The toolkit's tools, each called below.
TOOLS = [
    "list_inboxes",
    "get_inbox",
    "create_inbox",
    "delete_inbox",
    "list_threads",
    "get_thread",
    "get_attachment",
    "send_message",
    "reply_to_message",
    "forward_message",
    "update_message",
    "agent_attach_human",
    "agent_verify",
]
SIGN_UP = "agent sign-up: a feature of the hosted AgentMail that mailgate does not offer"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def secure(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own whose API speaks HTTPS."""
    with running_server(tmp_path_factory.mktemp("toolkit"), backend, api={"tls": True}) as server:
        server.account()  # the first inbox of example.test adds the domain
        yield server


@pytest.fixture
def client(secure: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentMail]:
    """An organization key's `AgentMail` client with mailgate's base URLs, trusting its
    certificate; so does every https fetch of this process (the toolkit's download)."""
    assert secure.app.certificate is not None
    certificate = str(secure.app.certificate.cert_path)
    monkeypatch.setenv("SSL_CERT_FILE", certificate)
    http = httpx.Client(verify=ssl.create_default_context(cafile=certificate), timeout=30)
    base = secure.api_url
    try:
        yield AgentMail(
            api_key=secure.org_key(),
            environment=AgentMailEnvironment(http=base, websockets=base.replace("https", "wss", 1)),
            httpx_client=http,
        )
    finally:
        http.close()


@pytest.fixture
def toolkit(client: AgentMail) -> AgentMailToolkit:
    return AgentMailToolkit(client)


def call(toolkit: AgentMailToolkit, name: str, **arguments: Any) -> Any:
    """The toolkit's tool `name` run with `arguments`, as its framework-neutral interface has it."""
    (tool,) = toolkit.get_tools([name])
    return tool.func(**arguments)


def content(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_toolkit_offers_these_tools(toolkit: AgentMailToolkit) -> None:
    assert [tool.name for tool in toolkit.get_tools()] == TOOLS


def test_mailgates_mcp_tools_take_the_toolkits_arguments(
    server: Server, org: Api, toolkit: AgentMailToolkit
) -> None:
    """mailgate's own MCP tools of the same names take every argument the toolkit's do and
    require the same ones (the sign-up tools are not among them)."""

    async def use(mcp: Client) -> dict[str, dict[str, Any]]:
        return {t.name: t.input_schema for t in (await mcp.list_tools()).tools}

    offered = with_tools(server, bearer(org.key), use)
    for tool in toolkit.get_tools():
        if tool.name in ("agent_attach_human", "agent_verify"):
            assert tool.name not in offered
            continue
        theirs = tool.params_schema.model_json_schema()
        ours = offered[tool.name]
        assert set(theirs["properties"]) <= set(ours["properties"]), tool.name
        assert set(theirs.get("required", [])) == set(ours.get("required", [])), tool.name


def test_inboxes_created_listed_read_and_deleted(toolkit: AgentMailToolkit) -> None:
    name = username()
    made = call(toolkit, "create_inbox", username=name, domain=DOMAIN, display_name="Desk")
    assert made.inbox_id == f"{name}@{DOMAIN}"
    assert made.display_name == "Desk"
    other = call(toolkit, "create_inbox", domain=DOMAIN)
    assert other.inbox_id.endswith(f"@{DOMAIN}")

    got = call(toolkit, "get_inbox", inbox_id=made.inbox_id)
    assert (got.inbox_id, got.display_name, got.created_at) == (
        made.inbox_id,
        "Desk",
        made.created_at,
    )
    # Newest first, paginated with the previous page's token.
    first = call(toolkit, "list_inboxes", limit=1)
    assert [i.inbox_id for i in first.inboxes] == [other.inbox_id]
    second = call(toolkit, "list_inboxes", limit=1, page_token=first.next_page_token)
    assert [i.inbox_id for i in second.inboxes] == [made.inbox_id]
    assert {made.inbox_id, other.inbox_id} <= {
        i.inbox_id for i in call(toolkit, "list_inboxes").inboxes
    }

    assert call(toolkit, "delete_inbox", inbox_id=other.inbox_id) is None
    with pytest.raises(ApiError) as gone:
        call(toolkit, "get_inbox", inbox_id=other.inbox_id)
    assert gone.value.status_code == 404
    assert other.inbox_id not in {i.inbox_id for i in call(toolkit, "list_inboxes").inboxes}


def test_a_conversation_through_the_toolkit(toolkit: AgentMailToolkit) -> None:
    """One inbox sends another a PDF and a DOCX; the other lists and reads the thread and its
    attachments, replies, forwards it to a third and labels it, each with the toolkit."""
    a, b, third = (call(toolkit, "create_inbox", username=username(), domain=DOMAIN) for _ in "abc")
    pdf_sentence = "The invoice is due on Friday."
    sent = call(
        toolkit,
        "send_message",
        inbox_id=a.inbox_id,
        to=[b.inbox_id],
        subject="Papers",
        text="The invoice and the order.",
        html="<p>The invoice and the order.</p>",
        labels=["papers"],
        attachments=[
            {"filename": "invoice.pdf", "content": content(text_pdf(pdf_sentence))},
            {"filename": "order.docx", "content": content(docx_of("Ship the order to Lyon."))},
        ],
    )
    assert sent.message_id.startswith("<")
    assert sent.thread_id

    listed = call(toolkit, "list_threads", inbox_id=b.inbox_id)
    (summary,) = listed.threads
    assert summary.subject == "Papers"
    assert summary.senders == [a.inbox_id]
    assert summary.message_count == 1
    assert "unread" in summary.labels
    assert [(x.filename, x.content_type) for x in summary.attachments] == [
        ("invoice.pdf", "application/pdf"),
        ("order.docx", DOCX_TYPE),
    ]
    thread = call(toolkit, "get_thread", inbox_id=b.inbox_id, thread_id=summary.thread_id)
    (received,) = thread.messages
    assert (received.from_, received.to, received.subject) == (a.inbox_id, [b.inbox_id], "Papers")
    assert received.text.strip() == "The invoice and the order."

    pdf_id, docx_id = (x.attachment_id for x in thread.attachments)
    pdf = call(
        toolkit,
        "get_attachment",
        inbox_id=b.inbox_id,
        thread_id=thread.thread_id,
        attachment_id=pdf_id,
    )
    assert pdf.filename == "invoice.pdf"
    assert pdf.download_url.startswith("https://")
    assert pdf.text.strip() == pdf_sentence
    # The toolkit reads a DOCX only when `filetype` calls it application/zip, which it never
    # does (it names DOCX by its own type): metadata and the link, as from the hosted service.
    word = call(
        toolkit,
        "get_attachment",
        inbox_id=b.inbox_id,
        thread_id=thread.thread_id,
        attachment_id=docx_id,
    )
    assert (word.filename, word.content_type) == ("order.docx", DOCX_TYPE)
    assert word.download_url.startswith("https://")
    assert getattr(word, "text", None) is None

    reply = call(
        toolkit,
        "reply_to_message",
        inbox_id=b.inbox_id,
        message_id=received.message_id,
        text="Paid on Thursday.",
    )
    assert reply.thread_id == thread.thread_id
    # It arrives in a's thread of the first message.
    back = call(toolkit, "list_threads", inbox_id=a.inbox_id)
    (answered,) = back.threads
    assert answered.message_count == 2
    read = call(toolkit, "get_thread", inbox_id=a.inbox_id, thread_id=answered.thread_id)
    assert [m.subject for m in read.messages] == ["Papers", "Re: Papers"]
    assert {"sent", "papers"} <= set(read.messages[0].labels)
    assert read.messages[-1].from_ == b.inbox_id
    assert read.messages[-1].text.startswith("Paid on Thursday.")

    forwarded = call(
        toolkit,
        "forward_message",
        inbox_id=b.inbox_id,
        message_id=received.message_id,
        to=[third.inbox_id],
        text="FYI",
    )
    assert forwarded.message_id
    (arrived,) = call(toolkit, "list_threads", inbox_id=third.inbox_id).threads
    assert arrived.subject == "Fwd: Papers"
    assert [x.filename for x in arrived.attachments] == ["invoice.pdf", "order.docx"]

    labelled = call(
        toolkit,
        "update_message",
        inbox_id=b.inbox_id,
        message_id=received.message_id,
        add_labels=["paid"],
        remove_labels=["unread"],
    )
    assert "paid" in labelled.labels
    assert "unread" not in labelled.labels
    since = datetime.now(UTC) - timedelta(hours=1)
    found = call(toolkit, "list_threads", inbox_id=b.inbox_id, labels=["paid"], after=since)
    assert [t.thread_id for t in found.threads] == [thread.thread_id]
    assert call(toolkit, "list_threads", inbox_id=b.inbox_id, before=since).threads == []


def test_the_sign_up_tools_are_answered_501(toolkit: AgentMailToolkit) -> None:
    """The SDK repeats a 501 twice (a few seconds) before the toolkit sees it."""
    with pytest.raises(ApiError) as attach:
        call(toolkit, "agent_attach_human", human_email="human@example.org")
    with pytest.raises(ApiError) as verify:
        call(toolkit, "agent_verify", otp_code="123456")
    for refused in (attach.value, verify.value):
        assert refused.status_code == 501
        assert refused.body == {"name": "NotImplementedError", "message": SIGN_UP}


# The SDK turns LangChain's Attachment models into JSON with pydantic's deprecated .dict().
@pytest.mark.filterwarnings("ignore::pydantic.PydanticDeprecatedSince20")
def test_the_framework_adapters(client: AgentMail) -> None:
    """Each adapter's tools called as its framework calls them: arguments as a model writes
    them (JSON, or a dict LangChain validates), the result as the model reads it, and a failure
    the way the framework expects, with the API's message."""
    openai = {tool.name: tool for tool in OpenAIToolkit(client).get_tools()}
    langchain = {tool.name: tool for tool in LangChainToolkit(client).get_tools()}
    livekit = {tool.info.name: tool for tool in LiveKitToolkit(client).get_tools()}
    assert list(openai) == list(langchain) == list(livekit) == TOOLS

    def run_openai(name: str, arguments: dict[str, Any]) -> str:
        context = RunContextWrapper(context=None)
        return str(asyncio.run(openai[name].on_invoke_tool(context, json.dumps(arguments))))

    def run_livekit(name: str, arguments: dict[str, Any]) -> str:
        # The voice session the tool tells what it is doing while it runs.
        async def generate_reply(instructions: str) -> None:
            pass

        context = SimpleNamespace(session=SimpleNamespace(generate_reply=generate_reply))

        async def run() -> str:
            return str(await livekit[name](arguments, context))

        return asyncio.run(run())

    made = json.loads(
        run_openai("create_inbox", {"username": username(), "domain": DOMAIN, "display_name": None})
    )
    inbox = made["inbox_id"]
    assert json.loads(run_livekit("get_inbox", {"inbox_id": inbox}))["inbox_id"] == inbox

    # LangChain validates the arguments with the toolkit's schema first: the attachment becomes
    # the toolkit's Attachment model, its unset fields None.
    sent = langchain["send_message"].invoke(
        {
            "inbox_id": inbox,
            "to": [inbox],
            "subject": "To myself",
            "text": "A note.",
            "attachments": [{"filename": "note.txt", "content": content(b"Remember.\n")}],
        }
    )
    listed = json.loads(run_openai("list_threads", {"inbox_id": inbox, "limit": 10}))
    (thread,) = listed["threads"]
    assert thread["thread_id"] == sent.thread_id
    assert [a["filename"] for a in thread["attachments"]] == ["note.txt"]
    messages = json.loads(
        run_livekit("get_thread", {"inbox_id": inbox, "thread_id": sent.thread_id})
    )["messages"]
    assert [m["subject"] for m in messages] == ["To myself"]

    # Failures: the API's message and status, as each framework expects them.
    with pytest.raises(RuntimeError, match=rf"^{SIGN_UP} \(HTTP 501\)$"):
        run_openai("agent_verify", {"otp_code": "123456"})
    missing = f"nobody-{username()}@{DOMAIN}"
    answer = langchain["get_inbox"].invoke({"inbox_id": missing})
    assert isinstance(answer, str)
    assert answer.endswith("(HTTP 404)")
    with pytest.raises(ToolError, match=r"\(HTTP 404\)$"):
        run_livekit("delete_inbox", {"inbox_id": missing})
    assert run_openai("delete_inbox", {"inbox_id": inbox}) == "OK"
