"""The request body limit (`[api] max_request_size`): a larger body is answered 413, in the SDK's
error shape, without being read.

A declared Content-Length over the limit is refused before the application runs; a body sent
without one (chunked) is counted as the application reads it and refused the moment it passes
the limit. uvicorn stops reading from the socket once 64 KiB wait unread, so what is buffered
never goes much beyond the limit. The rest of a refused body is read and dropped by uvicorn, so
the client, which sends its whole body before reading the answer, gets the 413.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailgate.http.errors import ContentTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large().response()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException, so FastAPI passes it on to the error handlers.
                    raise self._too_large()
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> ContentTooLarge:
        return ContentTooLarge(f"the request body is larger than {self.limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
