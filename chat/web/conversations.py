"""The supervisor's list of conversations (`GET /api/conversations`, PRODUCT.md §6): who is
talking with whom, since when, at what risk. Never a message body or a member account id."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat import handoff
from chat.store import conversation_list, transfer_reads
from chat.store.conversation_list import ListedConversation
from chat.store.db import iso
from chat.web.common import HttpRefusal, auth, bounded_int, has_control, problem, services_of

_STATES = frozenset({"active", "ended"})
_RISKS = frozenset({"high"})
_KNOWN = frozenset({"state", "risk", "limit", "before"})


async def list_conversations(request: Request) -> Response:
    auth(request, "supervisor")
    params = request.query_params
    unknown = set(params) - _KNOWN
    if unknown:
        raise HttpRefusal(problem(400, f"unknown parameter {sorted(unknown)[0]!r}"))
    state, risk, before = params.get("state"), params.get("risk"), params.get("before")
    if state is not None and state not in _STATES:
        raise HttpRefusal(problem(422, "state must be active or ended"))
    if risk is not None and risk not in _RISKS:
        raise HttpRefusal(problem(422, "risk must be high"))
    if before is not None and (not 0 < len(before) <= 64 or has_control(before)):
        raise HttpRefusal(problem(400, "before must be a conversation id"))
    limit = bounded_int(
        params.get("limit"),
        "limit",
        default=conversation_list.DEFAULT_LIMIT,
        low=1,
        high=conversation_list.MAX_LIMIT,
    )
    assert limit is not None
    listed = await conversation_list.list_conversations(
        services_of(request).db, state=state, risk=risk, limit=limit, before=before
    )
    if listed is None:
        raise HttpRefusal(problem(422, "before names no conversation"))
    # A transfer under way marks its row (PRODUCT.md §9): "transferring to X" or "back in the queue".
    db = services_of(request).db
    under_way = await transfer_reads.open_of(db, [c.id for c in listed if c.state == "active"])
    return JSONResponse({"conversations": [_json(c, under_way.get(c.id)) for c in listed]})


def _json(c: ListedConversation, under_way: transfer_reads.Open | None) -> dict[str, Any]:
    return {
        "transfer": msgspec.to_builtins(handoff.transfer_view(under_way)) if under_way else None,
        "id": c.id,
        "state": c.state,
        "tags": c.tags,
        "started_at": iso(c.started_at),
        "ended_at": iso(c.ended_at) if c.ended_at else None,
        "member": {"alias": c.member_alias},
        "specialist": {"id": c.specialist_id, "name": c.specialist_name},
        "risk": c.risk,
        "flags": c.flags,
        "priority": c.priority,
    }
