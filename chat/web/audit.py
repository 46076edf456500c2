"""The audit log, newest first, in pages, filtered, and exported as CSV (supervisors)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from chat.store import audit
from chat.store.db import iso
from chat.web.common import HttpRefusal, auth, bounded_int, has_control, problem, services_of

_ACTION = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_ID = 128
CSV_COLUMNS = (
    "id",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "conversation_id",
    "target",
    "reason",
    "detail",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _filters(request: Request) -> audit.AuditFilter:
    """`action`, `actor` (an actor id) and `conversation` (a conversation id): each exact,
    bounded, without control characters; absent or empty means "any". Bad input is a 400."""
    q = request.query_params
    values: dict[str, str | None] = {}
    for name in ("action", "actor", "conversation"):
        raw = q.get(name) or None
        if raw is not None:
            if name == "action" and not _ACTION.fullmatch(raw):
                raise HttpRefusal(
                    problem(400, "action must be 1 to 64 of a-z, 0-9 and _, starting with a letter")
                )
            if len(raw) > MAX_ID or has_control(raw):
                raise HttpRefusal(
                    problem(400, f"{name} must be 1 to {MAX_ID} characters, no control characters")
                )
        values[name] = raw
    return audit.AuditFilter(**values)


async def audit_log(request: Request) -> Response:
    auth(request, "supervisor")
    before = bounded_int(request.query_params.get("before"), "before", default=None, low=1, high=2**63 - 1)
    limit = bounded_int(
        request.query_params.get("limit"), "limit", default=audit.PAGE_DEFAULT, low=1, high=audit.PAGE_MAX
    )
    assert limit is not None
    where = _filters(request)
    entries = await audit.page(services_of(request).db, before=before, limit=limit, where=where)
    return JSONResponse({"entries": [_audit_json(e) for e in entries]})


async def audit_csv(request: Request) -> Response:
    """GET /api/audit.csv?action=&actor=&conversation=: every matching entry, newest first,
    streamed a page at a time."""
    auth(request, "supervisor")
    where = _filters(request)
    db = services_of(request).db

    async def rows() -> AsyncIterator[bytes]:
        yield _csv_line(CSV_COLUMNS)
        async for entries in audit.everything(db, where):
            yield b"".join(_csv_line(_csv_cells(e)) for e in entries)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"', "Cache-Control": "no-store"},
    )


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a tab or carriage
    return) gets a leading ' so it is never run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_cells(e: audit.AuditEntry) -> tuple[str, ...]:
    detail = "" if e.detail is None else msgspec.json.encode(e.detail).decode()
    return (
        str(e.id),
        iso(e.at),
        e.actor_id,
        e.actor_name,
        e.action,
        e.conversation_id or "",
        e.target or "",
        e.reason or "",
        detail,
    )


def _csv_line(cells: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(c) for c in cells])
    return out.getvalue().encode()


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
