"""Download links: the raw message (`.../messages/{id}/raw`) and an attachment
(`.../attachments/{id}`) are answered, as the hosted service answers them, with a `download_url`
that works without the API key until `expires_at`, so that a browser, a worker or a tool the
agent hands the link to can fetch it.

A link is `/v0/downloads/<token>`: the base64url of what it opens (the inbox, the stored
message, the attachment, the expiry) and its HMAC-SHA256 under the store's "tokens" secret with
a purpose of its own. An edited, foreign or expired link answers 404 or 410 (gone), never the
bytes; the message must still be in the inbox when the link is used.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.http.context import ServicesDep
from mailgate.http.errors import NotFound, Problem
from mailgate.http.signing import seal, unseal
from mailgate.mime.apiview import attachment
from mailgate.store.conversations import Mail

router = APIRouter(tags=["downloads"])

LIFETIME = 3600  # seconds a link works
PURPOSE = b"mailgate download link\n"


class Gone(Problem):
    status = 410
    name = "GoneError"


def link(
    request: Request, key: bytes, mail: Mail, attachment_id: str | None
) -> tuple[str, datetime]:
    """(the URL, when it stops working) for the raw message, or one of its attachments."""
    expires = int(time.time()) + LIFETIME
    payload = {"i": mail.inbox_id, "b": mail.blob_id, "a": attachment_id, "e": expires}
    token = seal(key, PURPOSE, payload)
    return str(request.url_for("download", token=token)), datetime.fromtimestamp(expires, UTC)


@router.get("/v0/downloads/{token}", name="download", include_in_schema=False)
async def download(token: str, services: ServicesDep) -> Response:
    inbox_id, blob_id, attachment_id, expires = _open(await services.token_key(), token)
    if expires < time.time():
        raise Gone("this download link has expired; ask the API for a fresh one")
    if await services.store.mail_of_blob(inbox_id, blob_id) is None:
        raise NotFound("the message of this link is no longer there")
    raw = await services.store.blob(blob_id)
    if attachment_id is None:
        return Response(raw, media_type="message/rfc822")
    part = attachment(raw, attachment_id)
    if part is None:
        raise NotFound("the message has no such attachment")
    info, data = part
    headers = {}
    if info.filename:
        quoted = info.filename.replace("\\", "\\\\").replace('"', '\\"')
        headers["Content-Disposition"] = f'attachment; filename="{quoted}"'
    return Response(data, media_type=info.content_type, headers=headers)


def _open(key: bytes, token: str) -> tuple[int, int, str | None, int]:
    """(inbox id, blob id, attachment id, expiry) of a link made here; else NotFound."""
    payload = unseal(key, PURPOSE, token)
    if payload is None:
        raise NotFound("no such download link")
    inbox_id, blob_id, attachment_id, expires = (payload.get(k) for k in "ibae")
    if not (
        isinstance(inbox_id, int)
        and isinstance(blob_id, int)
        and isinstance(expires, int)
        and (attachment_id is None or isinstance(attachment_id, str))
    ):
        raise NotFound("no such download link")
    return inbox_id, blob_id, attachment_id, expires
