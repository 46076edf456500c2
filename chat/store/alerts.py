"""Supervisor alerts (PRODUCT.md §8): raised by whatever saw the event, open until one
supervisor acknowledges them for every supervisor, and kept across restarts.

An event that several processes may see (an urgent request, the first risk phrase of a
conversation) is raised with a `once_key`, so it becomes one alert however often it is
raised. Alerts hold ids, tags, levels and times, and a flag's note from the specialist
(for supervisors); never a message body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chat.store.db import Db, FromRow


class AlertKind(StrEnum):
    URGENT_REQUEST = "urgent_request"
    RISK_MESSAGE = "risk_message"
    FLAGGED = "flagged"
    LONG_WAIT = "long_wait"
    REPORT = "report"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Alert(FromRow):
    id: str
    kind: str
    at: datetime
    request_id: str | None
    conversation_id: str | None
    tags: list[str] | None
    waited_s: int | None
    level: str | None
    note: str | None
    acked_at: datetime | None
    acked_by_id: str | None
    acked_by_name: str | None


_ALERT = Alert.columns()
# How many open alerts `queue_stats` carries: the oldest first, so none is hidden by newer ones.
OPEN_LIMIT = 200


async def raise_alert(
    db: Db,
    kind: AlertKind,
    *,
    request_id: str | None = None,
    conversation_id: str | None = None,
    tags: list[str] | None = None,
    waited_s: int | None = None,
    level: str | None = None,
    note: str | None = None,
    once_key: str | None = None,
) -> Alert | None:
    """Store a new open alert and return it; None if `once_key` was raised before."""
    row = await db.fetchrow(
        f"""INSERT INTO alerts (id, kind, request_id, conversation_id, tags, waited_s, level, note, once_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (once_key) DO NOTHING
            RETURNING {_ALERT}""",
        uuid.uuid4().hex,
        kind.value,
        request_id,
        conversation_id,
        tags,
        waited_s,
        level,
        note,
        once_key,
    )
    return Alert.of(row) if row else None


_OPEN = ", ".join(
    f"a.{c}"
    if c != "waited_s"
    # While its request still waits, an alert's wait is the request's wait now.
    else "COALESCE(floor(extract(epoch FROM now() - r.created_at))::integer, a.waited_s) AS waited_s"
    for c in _ALERT.split(", ")
)


async def open_alerts(db: Db, limit: int = OPEN_LIMIT) -> list[Alert]:
    """Alerts no supervisor has acknowledged yet, oldest first."""
    rows = await db.fetch(
        f"""SELECT {_OPEN} FROM alerts a
              LEFT JOIN requests r ON r.id = a.request_id AND r.state IN ('waiting', 'offered')
             WHERE a.acked_at IS NULL ORDER BY a.at, a.id LIMIT $1""",
        limit,
    )
    return [Alert.of(r) for r in rows]


async def get(db: Db, alert_id: str) -> Alert | None:
    row = await db.fetchrow(f"SELECT {_ALERT} FROM alerts WHERE id = $1", alert_id)
    return Alert.of(row) if row else None


class Acked(StrEnum):
    ACKED = "acked"
    ALREADY = "already"  # someone acknowledged it first
    NOT_FOUND = "not_found"


async def acknowledge(db: Db, alert_id: str, *, by_id: str, by_name: str) -> tuple[Acked, Alert | None]:
    """Close an open alert for every supervisor. Exactly one of several racing
    acknowledgements wins (`ACKED`); the others get `ALREADY`."""
    row = await db.fetchrow(
        f"""UPDATE alerts SET acked_at = now(), acked_by_id = $2, acked_by_name = $3
            WHERE id = $1 AND acked_at IS NULL
            RETURNING {_ALERT}""",
        alert_id,
        by_id,
        by_name,
    )
    if row is not None:
        return Acked.ACKED, Alert.of(row)
    existing = await get(db, alert_id)
    return (Acked.ALREADY, existing) if existing else (Acked.NOT_FOUND, None)


async def mark_risk_high(db: Db, conversation_id: str) -> bool:
    """Mark the conversation `risk: "high"` (sticky); True only for the call that set it."""
    done = await db.fetchval(
        """UPDATE conversations SET risk = 'high' WHERE id = $1 AND risk IS NULL RETURNING true""",
        conversation_id,
    )
    return bool(done)


async def add_flag(db: Db, conversation_id: str, level: str) -> None:
    await db.execute(
        "UPDATE conversations SET flags = array_append(flags, $2) WHERE id = $1",
        conversation_id,
        level,
    )
