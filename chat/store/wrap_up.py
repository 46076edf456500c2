"""Wrap-up (PRODUCT.md §8): after a conversation ends for a specialist, a pause with no
offers and no claims; `wrap_up` records the outcome and may end it early, except the
first half of an urgent one.

The lengths come from the configuration (PEERCHAT_WRAP_UP_S, PEERCHAT_WRAP_UP_URGENT_S);
`configure` sets them once at start, before any conversation can end (chat/lifespan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.store.db import Db

# No wrap-up until `configure` (repository tests); the service configures it at start.
_LENGTHS = {"normal": 0.0, "urgent": 0.0}


def configure(wrap_up_s: float, wrap_up_urgent_s: float) -> None:
    _LENGTHS["normal"], _LENGTHS["urgent"] = wrap_up_s, wrap_up_urgent_s


async def begin(conn: Db, conversation_id: str, specialist_id: str) -> None:
    """The conversation just ended (inside the transaction that ended it): start or
    lengthen the specialist's wrap-up. Urgent: the request was urgent or the conversation
    reached `risk: "high"`."""
    urgent = await conn.fetchval(
        """SELECT c.risk IS NOT NULL OR COALESCE(r.priority = 'urgent', false)
             FROM conversations c LEFT JOIN requests r ON r.id = c.request_id WHERE c.id = $1""",
        conversation_id,
    )
    length = _LENGTHS["urgent"] if urgent else _LENGTHS["normal"]
    floor = length / 2 if urgent else 0.0
    await conn.execute(
        """UPDATE specialists
              SET wrap_up_until = GREATEST(COALESCE(wrap_up_until, now()), now() + make_interval(secs => $2)),
                  wrap_up_floor = GREATEST(COALESCE(wrap_up_floor, now()), now() + make_interval(secs => $3))
            WHERE id = $1""",
        specialist_id,
        length,
        floor,
    )


@dataclass(frozen=True, slots=True)
class Saved:
    wrap_up_until: datetime


async def save(
    conn: Db, conversation_id: str, specialist_id: str, outcome: str, risk_level: str, note: str | None
) -> Saved:
    """Record the outcome (a second `wrap_up` replaces the first; each specialist who held
    a handed-on conversation records their own) and end the wrap-up now,
    or at its floor if that is later. Returns when it now ends."""
    await conn.execute(
        """INSERT INTO wrap_ups (conversation_id, specialist_id, outcome, risk_level, note)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (conversation_id, specialist_id) DO UPDATE
              SET outcome = EXCLUDED.outcome, risk_level = EXCLUDED.risk_level,
                  note = EXCLUDED.note, at = now()""",
        conversation_id,
        specialist_id,
        outcome,
        risk_level,
        note,
    )
    until = await conn.fetchval(
        """UPDATE specialists
              SET wrap_up_until = LEAST(COALESCE(wrap_up_until, now()),
                                        GREATEST(now(), COALESCE(wrap_up_floor, now())))
            WHERE id = $1 RETURNING wrap_up_until""",
        specialist_id,
    )
    return Saved(until)


async def until(db: Db, specialist_id: str) -> datetime | None:
    """When the specialist's wrap-up ends, if it is still running."""
    value: datetime | None = await db.fetchval(
        "SELECT wrap_up_until FROM specialists WHERE id = $1 AND wrap_up_until > now()", specialist_id
    )
    return value
