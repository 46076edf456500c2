"""Boundaries over HTTP (PRODUCT.md §9), supervisors only: the blocks in force and lifting
one, the reports, and a member's suspension. Lifting and suspending are audited; an audit
row never holds a member's account id (it is kept forever): a suspension is named by its
own id, and holds no suspension reason (that stays on the suspension row)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.store import audit, boundaries, conversations
from chat.store.db import iso
from chat.web.common import auth, has_control, has_nul, problem, services_of


async def _people(request: Request, conversation_ids: list[str]) -> dict[str, conversations.Conversation]:
    found = await conversations.get_many(services_of(request).db, conversation_ids)
    return {c.id: c for c in found}


def _pair(conv: conversations.Conversation | None, specialist_id: str) -> dict[str, Any]:
    return {
        "specialist": {"id": specialist_id, "name": conv.specialist_name if conv else ""},
        "member": {"alias": conv.member_alias if conv else ""},
    }


async def list_blocks(request: Request) -> Response:
    auth(request, "supervisor")
    found = await boundaries.blocks_in_force(services_of(request).db)
    convs = await _people(request, [b.conversation_id for b in found])
    return JSONResponse(
        {
            "blocks": [
                {
                    "id": b.id,
                    "conversation_id": b.conversation_id,
                    **_pair(convs.get(b.conversation_id), b.specialist_id),
                    "reason": b.reason,
                    "at": iso(b.at),
                    "until": iso(b.until),
                }
                for b in found
            ]
        }
    )


async def lift_block(request: Request) -> Response:
    identity = auth(request, "supervisor")
    block_id = request.path_params["block_id"]
    services = services_of(request)
    if len(block_id) > 64 or has_control(block_id):
        return problem(404, "no such block in force")
    lifted = await boundaries.lift_block(services.db, block_id, identity.user_id)
    if lifted is None:
        return problem(404, "no such block in force")
    await audit.record_by(
        services.db,
        identity,
        action="lift_block",
        conversation_id=lifted.conversation_id,
        target=lifted.id,
    )
    await services.poke_matchmaker()
    return JSONResponse({"id": lifted.id, "lifted_at": iso(lifted.lifted_at or datetime.now(UTC))})


async def list_reports(request: Request) -> Response:
    auth(request, "supervisor")
    found = await boundaries.all_reports(services_of(request).db)
    convs = await _people(request, [r.conversation_id for r in found])
    return JSONResponse(
        {
            "reports": [
                {
                    "id": r.id,
                    "conversation_id": r.conversation_id,
                    **_pair(convs.get(r.conversation_id), r.specialist_id),
                    "reason": r.reason,
                    "details": r.details,
                    "at": iso(r.at),
                }
                for r in found
            ]
        }
    )


class SuspensionAsked(msgspec.Struct, forbid_unknown_fields=True):
    until: str
    reason: str = ""


def _member_id(request: Request) -> str | None:
    member_id: str = request.path_params["member_id"]
    if not 0 < len(member_id) <= 64 or has_control(member_id):
        return None
    return member_id


async def put_suspension(request: Request) -> Response:
    identity = auth(request, "supervisor")
    member_id = _member_id(request)
    if member_id is None:
        return problem(400, "a member id is 1 to 64 characters, without control characters")
    try:
        asked = msgspec.json.decode(await request.body(), type=SuspensionAsked)
    except msgspec.DecodeError as exc:
        return problem(400, f"bad suspension: {exc}")
    try:
        until = datetime.fromisoformat(asked.until)
    except ValueError:
        return problem(422, "until must be an ISO 8601 time with its offset, e.g. 2026-12-31T00:00:00Z")
    if until.tzinfo is None:
        return problem(422, "until must carry its offset (e.g. Z)")
    if until <= datetime.now(UTC):
        return problem(422, "until is in the past")
    reason = asked.reason.strip()
    if len(reason) > 500 or has_nul(reason):
        return problem(422, "reason is at most 500 characters")
    services = services_of(request)
    suspension = await boundaries.suspend(services.db, member_id, until, reason or None)
    await audit.record_by(
        services.db,
        identity,
        action="suspend",
        target=suspension.id,
        # Not the reason: it is about the member, and an audit row outlives their erasure;
        # it stays on the suspension row, which goes with them.
    )
    return JSONResponse({"id": suspension.id, "until": iso(suspension.until)})


async def delete_suspension(request: Request) -> Response:
    identity = auth(request, "supervisor")
    member_id = _member_id(request)
    if member_id is None:
        return problem(400, "a member id is 1 to 64 characters, without control characters")
    services = services_of(request)
    lifted = await boundaries.lift_suspension(services.db, member_id)
    if lifted is None:
        return problem(404, "this member is not suspended")
    await audit.record_by(
        services.db,
        identity,
        action="lift_suspension",
        target=lifted.id,
    )
    return Response(status_code=204)
