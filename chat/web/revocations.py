"""POST /api/revocations (PRODUCT.md §4): a supervisor ends a person's access."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.store import revocations
from chat.store.db import iso
from chat.tokens import Role
from chat.web.common import auth, problem, services_of
from protocol.names import has_refused_characters


class RevocationAsked(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    sub: str
    reason: str = ""


async def post_revocation(request: Request) -> Response:
    """A supervisor ends a person's access (PRODUCT.md §4): their tokens issued until now
    are refused and every socket of theirs, on every process, is closed with 4001."""
    identity = auth(request, "supervisor")
    try:
        asked = msgspec.json.decode(await request.body(), type=RevocationAsked)
    except msgspec.DecodeError as exc:
        return problem(400, f"bad revocation: {exc}")
    if not 0 < len(asked.sub) <= 64 or has_refused_characters(asked.sub):
        return problem(400, "sub must be 1 to 64 characters, without control characters")
    reason = asked.reason.strip()[:500]
    if has_refused_characters(reason):
        return problem(400, "reason may not contain control characters")
    services = services_of(request)
    row = await revocations.add(
        services.db,
        role=asked.role,
        sub=asked.sub,
        actor_id=identity.user_id,
        actor_role=identity.role,
        actor_name=identity.name,
        reason=reason,
    )
    await services.admission.revocations.revoke(row)
    body = {"id": str(row.id), "role": row.role, "sub": row.sub, "revoked_at": iso(row.revoked_at)}
    return JSONResponse(body, status_code=201)
