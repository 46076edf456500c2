"""The audit log, newest first, in pages (supervisors)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.store import audit
from chat.store.db import iso
from chat.web.common import auth, bounded_int, services_of


async def audit_log(request: Request) -> Response:
    auth(request, "supervisor")
    before = bounded_int(request.query_params.get("before"), "before", default=None, low=1, high=2**63 - 1)
    limit = bounded_int(
        request.query_params.get("limit"), "limit", default=audit.PAGE_DEFAULT, low=1, high=audit.PAGE_MAX
    )
    assert limit is not None
    entries = await audit.page(services_of(request).db, before=before, limit=limit)
    return JSONResponse({"entries": [_audit_json(e) for e in entries]})


def _audit_json(e: audit.AuditEntry) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": str(e.id),
        "at": iso(e.at),
        "actor_id": e.actor_id,
        "actor_name": e.actor_name,
        "action": e.action,
    }
    optional = {
        "conversation_id": e.conversation_id,
        "target": e.target,
        "reason": e.reason,
        "detail": e.detail,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry
