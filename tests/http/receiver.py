"""A webhook endpoint for tests: a real HTTP/1.1 server on 127.0.0.1 (http.server, a thread per
connection) that records every request it gets and answers as the test says.

    with Receiver() as rx:                                  # 200 to everything
        ... create a webhook with url=rx.url ...
        deliveries = rx.wait_for(2)                         # bounded wait, no polling
    Receiver(answer=lambda n: 500 if n < 2 else 200)        # the n-th request (from 0)
    Receiver(answer=lambda n: None)                         # never answers (until closed)
    Receiver(delay=0.01)                                    # a slow endpoint
    Receiver(tls=server_context)                            # HTTPS
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Answer = Callable[[int], int | None]


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def event(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def svix_id(self) -> str:
        return self.headers["svix-id"]


class Receiver:
    def __init__(
        self,
        answer: Answer = lambda n: 200,
        *,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.deliveries: list[Delivery] = []
        self.open = 0  # requests being held without an answer
        self.changed = threading.Condition()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                delivery = Delivery(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                with receiver.changed:
                    number = len(receiver.deliveries)
                    receiver.deliveries.append(delivery)
                    receiver.changed.notify_all()
                status = answer(number)
                if status is None:
                    with receiver.changed:
                        receiver.open += 1
                        receiver.changed.notify_all()
                    receiver._closing.wait()
                    self.close_connection = True
                    return
                if delay:
                    receiver._closing.wait(delay)  # a slow endpoint, not a test's wait
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def wait_until(
        self, check: Callable[[list[Delivery]], bool], timeout: float = 15.0, what: str = ""
    ) -> list[Delivery]:
        with self.changed:
            if not self.changed.wait_for(lambda: check(self.deliveries), timeout):
                shown = [(d.event.get("event_type"), d.svix_id) for d in self.deliveries]
                raise AssertionError(f"timed out waiting for {what or 'deliveries'}: {shown}")
            return list(self.deliveries)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Delivery]:
        return self.wait_until(lambda d: len(d) >= count, timeout, f"{count} deliveries")

    def wait_open(self, count: int, timeout: float = 15.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.open >= count, timeout), "no held request"

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
