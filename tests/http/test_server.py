"""The API's listener and its edges: docs, keys (missing, wrong, revoked), unknown routes and
methods, the body limit, what answers 501, TLS, the PROXY protocol, and a clean stop; every
failure in the SDK's error shape."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from agentmail import AgentMail, AgentMailEnvironment
from agentmail.auth import Identity
from agentmail.core.api_error import ApiError
from agentmail.types import ErrorResponse, ValidationErrorResponse

from mailgate.config import Settings
from mailgate.provision import revoke_key
from tests.harness import Server
from tests.http.sdk import NO_RETRIES, Api


def _error(response: httpx.Response, status: int, name: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    model = ValidationErrorResponse if status == 400 else ErrorResponse
    model.model_validate(body)
    assert body["name"] == name
    assert "Traceback" not in response.text
    return str(body["message"])


def _until_closed(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def _raw(port: int, request: bytes, *, header: bytes = b"") -> bytes:
    """One request on a connection of its own; the whole answer, until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(header + request)
        return _until_closed(sock)


def test_docs_and_openapi_need_no_key(server: Server) -> None:
    spec = httpx.get(f"{server.api_url}/openapi.json", timeout=30)
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"/v0/inboxes", "/v0/pods/{pod_id}/inboxes/{inbox_id}", "/v0/auth/me"} <= set(paths)
    assert not any("calendar" in path for path in paths)  # what answers 501 is not documented
    docs = httpx.get(f"{server.api_url}/docs", timeout=30)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_missing_wrong_and_revoked_keys_are_401(server: Server, org: Api) -> None:
    missing = httpx.get(f"{server.api_url}/v0/inboxes", timeout=30)
    assert "Bearer" in _error(missing, 401, "UnauthorizedError")
    assert missing.headers["www-authenticate"] == "Bearer"
    basic = org.raw("GET", "/v0/inboxes", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    _error(basic, 401, "UnauthorizedError")

    wrong = Api(server, "mgk_000000000000_not-the-secret")
    try:
        with pytest.raises(ApiError) as refused:
            wrong.client.inboxes.list()
    finally:
        wrong.close()
    assert refused.value.status_code == 401
    assert refused.value.body["name"] == "UnauthorizedError"

    key_id = org.valid(Identity, org.client.auth.me()).api_key_id
    assert key_id is not None
    server.call(revoke_key(server.store, key_id))
    with pytest.raises(ApiError) as revoked:
        org.client.inboxes.list()
    assert revoked.value.status_code == 401


def test_unknown_routes_and_wrong_methods(org: Api) -> None:
    assert "/v0/nowhere" in _error(org.raw("GET", "/v0/nowhere"), 404, "NotFoundError")
    wrong = org.raw("PUT", "/v0/pods")
    _error(wrong, 405, "MethodNotAllowedError")
    assert "GET" in wrong.headers["allow"]


def test_malformed_json_is_a_validation_error(org: Api) -> None:
    bad = org.raw(
        "POST", "/v0/pods", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert "JSON" in _error(bad, 400, "ValidationError")
    assert bad.json()["errors"][0]["path"] == []


@pytest.mark.parametrize(
    ("path", "feature"),
    [
        ("/v0/inboxes/{inbox}/calendar/events", "calendar"),
        ("/v0/apps", "apps"),
        ("/v0/inboxes/{inbox}/authorize", "apps"),
        ("/v0/accounts", "app accounts"),
        ("/v0/pods/default/accounts/x", "app accounts"),
        ("/v0/agent/sign-up", "agent sign-up"),
        ("/v0/inboxes/{inbox}/messages/m1/agent-armor/release", "agent armor"),
        ("/v0/inboxes/{inbox}/files", "files"),
        ("/v0/organizations/labs", "organizations"),
    ],
)
def test_out_of_scope_features_answer_501_naming_them(
    server: Server, org: Api, path: str, feature: str
) -> None:
    url_path = path.format(inbox=server.account().address)
    method = "POST" if path.endswith(("authorize", "release", "sign-up")) else "GET"
    message = _error(org.raw(method, url_path), 501, "NotImplementedError")
    assert message.startswith(feature)
    # Like every /v0 request, only with a key.
    _error(httpx.request(method, server.api_url + url_path, timeout=30), 401, "UnauthorizedError")


def test_a_plain_get_of_the_websocket_url_says_to_upgrade(server: Server) -> None:
    answer = httpx.get(server.api_url + "/v0", timeout=30)
    assert answer.status_code == 426
    assert answer.headers["upgrade"] == "websocket"
    assert answer.json()["name"] == "UpgradeRequired"


def test_sdk_sees_501_as_an_api_error(org: Api) -> None:
    with pytest.raises(ApiError) as refused:
        org.client.organizations.get(request_options=NO_RETRIES)
    assert refused.value.status_code == 501


@pytest.fixture
def small(make_server: Callable[..., Server]) -> Server:
    return make_server(api={"max_request_size": 4096})


def test_a_body_over_the_limit_is_413(small: Server) -> None:
    small.account()
    api = Api(small, small.org_key())
    try:
        with pytest.raises(ApiError) as declared:
            api.client.pods.inboxes.create("default", metadata={"notes": "x" * 5000})
        assert declared.value.status_code == 413
        assert declared.value.body["name"] == "ContentTooLargeError"

        def chunks() -> Iterator[bytes]:
            yield b'{"metadata": {"notes": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}}'

        # Without a Content-Length (chunked), it is counted as it arrives.
        chunked = api.raw(
            "POST", "/v0/inboxes", content=chunks(), headers={"Content-Type": "application/json"}
        )
        _error(chunked, 413, "ContentTooLargeError")
        # The connection still serves, and a body within the limit is fine.
        assert api.client.pods.inboxes.create("default", metadata={"notes": "short"}).inbox_id
    finally:
        api.close()


def test_stalled_clients_get_408_and_everyone_else_is_served(
    make_server: Callable[..., Server],
) -> None:
    node = make_server(api={"read_timeout": 1})
    port = node.port("api")
    api = Api(node, node.org_key())
    # Connected and silent; a header sent a piece at a time and never ended; a body that
    # stops halfway. uvicorn alone would hold each of these for good.
    silent = socket.create_connection(("127.0.0.1", port), timeout=30)
    trickle = socket.create_connection(("127.0.0.1", port), timeout=30)
    trickle.sendall(b"GET /v0/auth/me HTTP/1.1\r\nHost: x\r\n")
    stalled = socket.create_connection(("127.0.0.1", port), timeout=30)
    stalled.sendall(
        b"POST /v0/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + api.key.encode()
        + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name": '
    )
    try:
        for sock in (silent, trickle, stalled):
            answer = _until_closed(sock)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), answer
            assert json.loads(body)["name"] == "RequestTimeoutError"
        # A client between requests is uvicorn's keep-alive to close; one that keeps asking is
        # answered, and the API served everyone else meanwhile.
        assert api.client.auth.me().organization_id
    finally:
        for sock in (silent, trickle, stalled):
            sock.close()
        api.close()
    assert [p.name for p in node.call(node.store.list_pods())] == ["default"]


def test_the_default_limit_fits_a_largest_message_in_base64() -> None:
    settings = Settings()
    assert settings.api.max_request_size > settings.smtp.max_message_size * 4 / 3


def test_tls(make_server: Callable[..., Server]) -> None:
    secure = make_server(api={"tls": True})
    assert secure.api_url.startswith("https://")
    http = httpx.Client(verify=False, timeout=30)
    try:
        client = AgentMail(
            api_key=secure.org_key(),
            environment=AgentMailEnvironment(http=secure.api_url, websockets="wss://unused"),
            httpx_client=http,
        )
        assert client.auth.me().scope_type == "organization"
    finally:
        http.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(secure.api_url.replace("https://", "http://") + "/openapi.json", timeout=10)


def test_behind_a_proxy_protocol_balancer_each_client_is_its_own(
    make_server: Callable[..., Server],
) -> None:
    proxied = make_server(
        server={"proxy_networks": ("127.0.0.1/32",)},
        auth={"ban_after": 2, "lockout": 60, "failure_delay": 0.0},
    )
    good = proxied.org_key()
    port = proxied.port("api")

    def me(client: str, key: str) -> int:
        header = f"PROXY TCP4 {client} 127.0.0.1 40000 8080\r\n".encode()
        request = (
            f"GET /v0/auth/me HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {key}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        return int(_raw(port, request, header=header).split(b" ", 2)[1])

    assert [me("203.0.113.9", "mgk_000000000000_wrong") for _ in range(2)] == [401, 401]
    # That address is banned now, even with a good key; another client behind the same
    # balancer is not.
    assert me("203.0.113.9", good) == 429
    assert me("203.0.113.10", good) == 200
    # Without the header the connection is dropped unanswered.
    plain = b"GET /openapi.json HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
    assert _raw(port, plain) == b""


def _waiting_for_its_body(port: int, key: str, length: int) -> socket.socket:
    """A request whose headers the server has read (it asked for the body: 100 Continue) and
    whose body has not been sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(
        f"POST /v0/pods HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    assert sock.recv(65536).startswith(b"HTTP/1.1 100")
    return sock


def test_stop_lets_a_request_finish_and_closes_idle_connections(
    make_server: Callable[..., Server],
) -> None:
    node = make_server()
    key = node.org_key()
    port = node.port("api")
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    idle.request("GET", "/openapi.json")
    assert idle.getresponse().read()  # kept alive, and idle now
    body = b'{"name": "finished-during-stop"}'
    busy = _waiting_for_its_body(port, key, len(body))
    stopping = threading.Thread(target=node.stop)
    stopping.start()
    # The idle connection is closed at once; the request under way is still answered.
    assert idle.sock is not None
    assert _until_closed(idle.sock) == b""
    busy.sendall(body)
    answer = _until_closed(busy)
    stopping.join(60)
    assert not stopping.is_alive()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"finished-during-stop" in answer  # and then the server closed the connection
    idle.close()
    busy.close()


def test_stop_cuts_a_request_that_does_not_finish(make_server: Callable[..., Server]) -> None:
    node = make_server()
    stalled = _waiting_for_its_body(node.port("api"), node.org_key(), 100)
    node.stop()  # waits out the drain time (app.DRAIN_SECONDS), then cuts
    assert _until_closed(stalled) == b""
    stalled.close()
