"""`GET /api/me/export` and `DELETE /api/me` (PRODUCT.md §6, §10): a member's own data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from chat.privacy import access, erasure
from chat.services import Services
from chat.store import privacy as store
from chat.store.db import STORAGE_DOWN, iso
from chat.web.common import auth, services_of

_encode = msgspec.json.Encoder().encode
# An erasure that did not happen yet: the member retries; nothing was half done that a
# retry would not finish.
_NOT_YET: tuple[type[BaseException], ...] = (*STORAGE_DOWN, erasure.StillBusy)


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


async def export_me(request: Request) -> Response:
    """The member's requests, conversations with every message, and feedback, as one JSON
    document streamed conversation by conversation: the messages are read through a cursor
    and written as they come, so a long history never sits in memory whole. No staff note
    and no other person's account id is in it (specialists appear by name)."""
    identity = auth(request, "member")
    services = services_of(request)
    now, windows = datetime.now(UTC), access.windows_of(services.settings)
    try:
        requests = await store.export_requests(services.db, identity.user_id)
        found = await store.export_conversations(services.db, identity.user_id)
        feedback = await store.export_feedback(services.db, identity.user_id)
    except STORAGE_DOWN:
        return JSONResponse({"error": "storage unavailable; retry"}, status_code=503)
    # Past retention, content is on its way out: the member's window has closed.
    readable = [c for c in found if access.may_read_conversation("member", c, now, windows)]
    ids = {c.id for c in readable}
    head = {
        "exported_at": iso(now),
        "member": {"id": identity.user_id, "alias": identity.name},
        "requests": [_times(r) for r in requests],
        "feedback": [_times(r) for r in feedback if r["conversation_id"] in ids],
    }
    return StreamingResponse(
        _stream(services, head, readable),
        media_type="application/json",
        headers={"content-disposition": 'attachment; filename="peerchat-my-data.json"'},
    )


async def _stream(
    services: Services, head: dict[str, Any], found: list[store.ExportedConversation]
) -> AsyncIterator[bytes]:
    yield _encode(head)[:-1] + b',"conversations":['
    for i, conv in enumerate(found):
        about = {
            "id": conv.id,
            "state": conv.state,
            "tags": conv.tags,
            "started_at": iso(conv.started_at),
            "ended_at": iso(conv.ended_at) if conv.ended_at else None,
            "ended_by": conv.ended_by,
            "end_reason": conv.end_reason,
            "member": {"alias": conv.member_alias},
            "specialist": {"name": conv.specialist_name},
        }
        yield (b"," if i else b"") + _encode(about)[:-1] + b',"messages":['
        async with services.db.acquire() as conn, conn.transaction(readonly=True):
            first = True
            async for m in store.export_messages(conn, conv.id):
                message = {
                    "seq": m["seq"],
                    "sender": {"role": m["sender_role"], "name": m["sender_name"]},
                    "body": m["body"],
                    "sent_at": iso(m["sent_at"]),  # type: ignore[arg-type]
                }
                yield (b"" if first else b",") + _encode(message)
                first = False
        yield b"]}"
    yield b"]}"


async def erase_me(request: Request) -> Response:
    """202 once the erasure is done (PRODUCT.md §10); a repeat finds nothing and is a no-op."""
    identity = auth(request, "member")
    try:
        erased = await erasure.erase(services_of(request), identity.user_id)
    except _NOT_YET:
        return JSONResponse({"error": "not erased yet; retry in a moment"}, status_code=503)
    return JSONResponse({"erased": not erased.empty}, status_code=202)
