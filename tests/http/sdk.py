"""The official agentmail SDK pointed at a test server, as agent code would use it.

The SDK builds its response objects without validating them, so a field the server left out
would only show when user code reads it. `Api` keeps the JSON of every response its client got,
and `valid(Model, result)` checks the JSON that `result` was built from against the SDK's own
model, required fields and types included.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from agentmail import AgentMail, AgentMailEnvironment
from pydantic import BaseModel

from tests.harness import Server, client_tls, unique_address

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# The SDK repeats a request answered 409, 429 or 5xx (501 included) after a second or two: a
# test that expects one of those answers asks for no retries.
NO_RETRIES: Any = {"max_retries": 0}


class Api:
    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.key = key
        self.last: httpx.Response | None = None
        # verify: a context without the CA certificates httpx would load for every client.
        self.http = httpx.Client(
            timeout=30, event_hooks={"response": [self._keep]}, verify=client_tls()
        )
        base = server.api_url
        self.client = AgentMail(
            api_key=key,
            environment=AgentMailEnvironment(http=base, websockets=base.replace("http", "ws", 1)),
            httpx_client=self.http,
        )

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.last = response

    def valid(self, model: type[M], result: T) -> T:
        """`result`, once the JSON it was made from has passed the SDK's `model`."""
        assert self.last is not None, "no response yet"
        model.model_validate(self.last.json())
        return result

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request of our own, with this key, to the same server."""
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return self.http.request(method, self.server.api_url + path, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()


def username() -> str:
    """A user name no other test uses."""
    return unique_address("api").partition("@")[0]
