"""Specialist profiles: who they are, what they know, how many chats they hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.store.db import Db, FromRow, Reused

DEFAULT_LANGUAGES = ("en",)
DEFAULT_MAX_CHATS = 3


@dataclass(frozen=True, slots=True)
class Profile(FromRow):
    id: str
    name: str
    tags: list[str]
    languages: list[str]
    max_chats: int
    status: str
    active_chats: int
    missed_offers: int
    idle_since: datetime
    # When their wrap-up after a conversation ends (past or None: not in wrap-up).
    wrap_up_until: datetime | None = None


_COLUMNS = Profile.columns()


async def ensure(db: Db, specialist_id: str, name: str) -> Profile:
    """The specialist's profile, created on first connection (PRODUCT.md §5)."""
    row = await db.fetchrow(
        f"INSERT INTO specialists (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
        f" RETURNING {_COLUMNS}",
        specialist_id,
        name,
    )
    if row is None:
        row = await db.fetchrow(f"SELECT {_COLUMNS} FROM specialists WHERE id = $1", specialist_id)
    assert row is not None
    return Profile.of(row)


async def get(db: Db, specialist_id: str) -> Profile | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM specialists WHERE id = $1", specialist_id)
    return Profile.of(row) if row else None


async def list_all(db: Db, reuse: Reused[Profile] | None = None) -> list[Profile]:
    """Every profile; with `reuse`, last time's instance for a row unchanged since."""
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM specialists ORDER BY name, id")
    return reuse.of(rows) if reuse is not None else [Profile.of(r) for r in rows]


async def put(
    db: Db, specialist_id: str, *, name: str, tags: list[str], languages: list[str], max_chats: int
) -> Profile:
    """Create or replace the editable part of a profile; status and live counts are kept."""
    row = await db.fetchrow(
        f"""INSERT INTO specialists (id, name, tags, languages, max_chats) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (id) DO UPDATE SET name = $2, tags = $3, languages = $4, max_chats = $5,
                updated_at = now()
            RETURNING {_COLUMNS}""",
        specialist_id,
        name,
        tags,
        languages,
        max_chats,
    )
    assert row is not None
    return Profile.of(row)


async def set_status(db: Db, specialist_id: str, status: str) -> Profile | None:
    row = await db.fetchrow(
        f"""UPDATE specialists SET status = $2, updated_at = now(),
                missed_offers = CASE WHEN $2 = 'available' THEN 0 ELSE missed_offers END
            WHERE id = $1 RETURNING {_COLUMNS}""",
        specialist_id,
        status,
    )
    return Profile.of(row) if row else None
