"""Revocations in PostgreSQL: one row per `POST /api/revocations`, never changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chat.store import audit
from chat.store.db import Db


@dataclass(frozen=True, slots=True)
class Revocation:
    id: int
    role: str
    sub: str
    revoked_at: datetime


async def add(
    db: asyncpg.Pool[asyncpg.Record],
    *,
    role: str,
    sub: str,
    actor_id: str,
    actor_role: str,
    actor_name: str,
    reason: str,
) -> Revocation:
    """Record the revocation and its audit row in one transaction: no revocation without
    its trace, no trace of one that did not happen."""
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO revocations (role, sub, revoked_by, reason) VALUES ($1, $2, $3, $4)
               RETURNING id, role, sub, revoked_at""",
            role,
            sub,
            f"{actor_role}:{actor_id}",
            reason,
        )
        assert row is not None
        # The audit row names the revocation, never the account: the row it points to
        # holds that, and can be erased with the person (audit rows are kept forever).
        await audit.record(
            conn,
            actor_id=actor_id,
            actor_role=actor_role,
            actor_name=actor_name,
            action="revoke",
            target=f"revocation:{row['id']}",
            reason=reason or None,
            detail={"role": role},
        )
    return Revocation(**dict(row))


async def since(db: Db, moment: datetime) -> list[Revocation]:
    """Every row revoked after `moment`, committed so far (in any order), oldest first."""
    rows = await db.fetch(
        "SELECT id, role, sub, revoked_at FROM revocations WHERE revoked_at > $1 ORDER BY id", moment
    )
    return [Revocation(**dict(r)) for r in rows]
