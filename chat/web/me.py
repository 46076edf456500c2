"""`GET /api/me/export` and `DELETE /api/me` (PRODUCT.md §6, §10): a member's own data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from chat.privacy import access, erasure
from chat.services import Services
from chat.store import export as store
from chat.store.db import STORAGE_DOWN, iso
from chat.web.common import auth, services_of

_encode = msgspec.json.Encoder().encode
PAGE = 200  # messages per query of an export
# Exports of one member at once, per process: each is cheap on the pool (a query per page,
# no connection held while the client reads) but a member has no need of more.
EXPORTS_PER_MEMBER = 2
_exporting: dict[str, int] = {}
# An erasure that did not happen yet: the member retries; nothing was half done that a
# retry would not finish.
_NOT_YET: tuple[type[BaseException], ...] = (*STORAGE_DOWN, erasure.StillBusy)


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


async def export_me(request: Request) -> Response:
    """The member's requests, conversations with every message, and feedback, as one JSON
    document streamed conversation by conversation: the messages are read a page at a time
    (each page its own short query: a client that reads slowly holds no pool connection)
    and written as they come, so a long history never sits in memory whole. No staff note
    and no other person's account id is in it (specialists appear by name). At most
    EXPORTS_PER_MEMBER at once per member: 429 beyond."""
    identity = auth(request, "member")
    services = services_of(request)
    if _exporting.get(identity.user_id, 0) >= EXPORTS_PER_MEMBER:
        return JSONResponse(
            {"error": "an export of yours is already under way; try again when it is done"},
            status_code=429,
            headers={"retry-after": "10"},
        )
    _exporting[identity.user_id] = _exporting.get(identity.user_id, 0) + 1
    try:
        response = await _export(services, identity.user_id, identity.name)
    except BaseException:
        _give_back(identity.user_id)
        raise
    if not isinstance(response, _CountedExport):
        _give_back(identity.user_id)
    return response


async def _export(services: Services, member_id: str, alias: str) -> Response:
    now, windows = datetime.now(UTC), access.windows_of(services.settings)
    try:
        requests = await store.export_requests(services.db, member_id)
        found = await store.export_conversations(services.db, member_id)
        feedback = await store.export_feedback(services.db, member_id)
    except STORAGE_DOWN:
        return JSONResponse({"error": "storage unavailable; retry"}, status_code=503)
    # Past retention, content is on its way out: the member's window has closed.
    readable = [c for c in found if access.may_read_conversation("member", c, now, windows)]
    ids = {c.id for c in readable}
    head = {
        "exported_at": iso(now),
        "member": {"id": member_id, "alias": alias},
        "requests": [_times(r) for r in requests],
        "feedback": [_times(r) for r in feedback if r["conversation_id"] in ids],
    }
    response = _CountedExport(
        _stream(services, head, readable),
        media_type="application/json",
        headers={"content-disposition": 'attachment; filename="peerchat-my-data.json"'},
    )
    response.member_id = member_id
    return response


class _CountedExport(StreamingResponse):
    """The export's response; while it is being sent it counts as one of the member's
    exports (taken in `export_me` before any await, given back here however it ends)."""

    member_id = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            _give_back(self.member_id)


def _give_back(member_id: str) -> None:
    left = _exporting.get(member_id, 1) - 1
    if left > 0:
        _exporting[member_id] = left
    else:
        _exporting.pop(member_id, None)


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
        after, first = 0, True
        while True:
            page = await store.export_messages(services.db, conv.id, after, PAGE)
            for m in page:
                message = {
                    "seq": m["seq"],
                    "sender": {"role": m["sender_role"], "name": m["sender_name"]},
                    "body": m["body"],
                    "sent_at": iso(m["sent_at"]),  # type: ignore[arg-type]
                }
                yield (b"" if first else b",") + _encode(message)
                first = False
            if len(page) < PAGE:
                break
            after = int(page[-1]["seq"])  # type: ignore[call-overload]
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
