"""The audit log: every supervisor read of a transcript, with who, when and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.store.db import Db


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    conversation_id: str | None
    reason: str


async def record(
    db: Db,
    *,
    actor_id: str,
    actor_role: str,
    actor_name: str,
    action: str,
    conversation_id: str | None,
    reason: str,
) -> None:
    await db.execute(
        """INSERT INTO audit_log (actor_id, actor_role, actor_name, action, conversation_id, reason)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        actor_id,
        actor_role,
        actor_name,
        action,
        conversation_id,
        reason,
    )


async def recent(db: Db, limit: int = 200) -> list[AuditEntry]:
    rows = await db.fetch(
        """SELECT at, actor_id, actor_name, action, conversation_id, reason FROM audit_log
           ORDER BY id DESC LIMIT $1""",
        limit,
    )
    return [AuditEntry(**dict(r)) for r in rows]
