"""The audit log: every supervisor read of a transcript and every other supervisor action
worth answering for, with who, when, what and why. Append-only: the database itself
refuses UPDATE, DELETE and TRUNCATE (migration 0010), so this module only inserts and reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

import msgspec

from chat.people import Actor
from chat.store.db import Db

# GET /api/audit: `limit` defaults to this, and may not exceed PAGE_MAX (PRODUCT.md §6).
PAGE_DEFAULT = 100
PAGE_MAX = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    conversation_id: str | None
    target: str | None
    reason: str | None
    detail: dict[str, Any] | None


class About(TypedDict, total=False):
    """What an action was about, each part optional: the conversation, `target` the id acted
    on (a specialist, an alert, an identity), the `reason` given, and `detail`, which must
    hold no message body, note or member account id (it is kept forever)."""

    conversation_id: str | None
    target: str | None
    reason: str | None
    detail: dict[str, Any] | None


async def record(
    db: Db, *, actor_id: str, actor_role: str, actor_name: str, action: str, **about: Unpack[About]
) -> None:
    """Append one row."""
    detail = about.get("detail")
    await db.execute(
        """INSERT INTO audit_log
               (actor_id, actor_role, actor_name, action, conversation_id, target, reason, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)""",
        actor_id,
        actor_role,
        actor_name,
        action,
        about.get("conversation_id"),
        about.get("target"),
        about.get("reason"),
        None if detail is None else msgspec.json.encode(detail).decode(),
    )


async def record_by(db: Db, actor: Actor, *, action: str, **about: Unpack[About]) -> None:
    """`record`, with the actor's id, role and name taken from who acts."""
    await record(
        db, actor_id=actor.user_id, actor_role=actor.role, actor_name=actor.name, action=action, **about
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Only entries matching every given field: `action` exactly, `actor` the actor's id
    exactly, `conversation` the conversation id exactly."""

    action: str | None = None
    actor: str | None = None
    conversation: str | None = None


async def page(
    db: Db, *, before: int | None = None, limit: int = PAGE_DEFAULT, where: AuditFilter | None = None
) -> list[AuditEntry]:
    """Newest first; with `before`, only entries older than that entry id."""
    w = where or AuditFilter()
    rows = await db.fetch(
        """SELECT id, at, actor_id, actor_name, action, conversation_id, target, reason,
                  detail::text AS detail
           FROM audit_log
           WHERE ($1::bigint IS NULL OR id < $1::bigint)
             AND ($3::text IS NULL OR action = $3::text)
             AND ($4::text IS NULL OR actor_id = $4::text)
             AND ($5::text IS NULL OR conversation_id = $5::text)
           ORDER BY id DESC LIMIT $2""",
        before,
        limit,
        w.action,
        w.actor,
        w.conversation,
    )
    return [
        AuditEntry(**{**dict(r), "detail": None if r["detail"] is None else msgspec.json.decode(r["detail"])})
        for r in rows
    ]


async def everything(db: Db, where: AuditFilter, batch: int = PAGE_MAX) -> AsyncIterator[list[AuditEntry]]:
    """Every matching entry, newest first, a page at a time (each page its own short query,
    so an export of the whole log holds no connection or transaction open while it is sent)."""
    before: int | None = None
    while True:
        entries = await page(db, before=before, limit=batch, where=where)
        if entries:
            yield entries
        if len(entries) < batch:
            return
        before = entries[-1].id


async def recent(db: Db, limit: int = 200) -> list[AuditEntry]:
    return await page(db, limit=limit)
