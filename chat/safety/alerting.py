"""Raising alerts and showing the open ones as `queue_stats.alerts`.

Alerts live in PostgreSQL (chat/store/alerts.py); this module turns events into them and
them into frames. Supervisors learn of a change through the next `queue_stats` (the
matchmaker re-reads the open alerts when poked) and, for an acknowledgement, at once
through `alert_acked`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import cast

from chat import views
from chat.metrics import METRICS
from chat.store import alerts
from chat.store.alerts import Alert, AlertKind
from chat.store.db import Db, iso
from chat.store.queue import Request
from protocol import frames as f

log = logging.getLogger("peerchat.safety")

LONG_WAIT_ALERT_S = 300  # a wait this long is a person being let down: tell a human


def frame_of(a: Alert) -> f.Alert:
    return f.Alert(
        id=a.id,
        kind=cast(f.AlertKind, a.kind),
        at=iso(a.at),
        request_id=a.request_id,
        conversation_id=a.conversation_id,
        tags=a.tags,
        waited_s=a.waited_s,
        level=cast("f.AlertLevel | None", a.level),
        note=a.note,
    )


async def open_alert_frames(db: Db) -> list[f.Alert]:
    return [frame_of(a) for a in await alerts.open_alerts(db)]


def _counted(raised: Alert | None) -> Alert | None:
    if raised is not None:
        METRICS.alerts_raised.labels(raised.kind).inc()
        log.warning("alert %s raised (%s)", raised.id[:8], raised.kind)
    return raised


async def raise_once(
    db: Db,
    kind: AlertKind,
    key: str,
    *,
    request_id: str | None = None,
    conversation_id: str | None = None,
    tags: list[str] | None = None,
    waited_s: int | None = None,
    level: str | None = None,
) -> Alert | None:
    """One alert per (kind, key) however many processes or events raise it."""
    raised = await alerts.raise_alert(
        db,
        kind,
        request_id=request_id,
        conversation_id=conversation_id,
        tags=tags,
        waited_s=waited_s,
        level=level,
        once_key=f"{kind.value}:{key}",
    )
    return _counted(raised)


async def raise_alert(
    db: Db,
    kind: AlertKind,
    *,
    conversation_id: str | None = None,
    level: str | None = None,
    note: str | None = None,
) -> Alert:
    """An alert for an event that may repeat (a second flag is a second alert)."""
    raised = await alerts.raise_alert(db, kind, conversation_id=conversation_id, level=level, note=note)
    assert raised is not None  # no once key, so no conflict
    _counted(raised)
    return raised


async def urgent_request(db: Db, request: Request) -> None:
    await raise_once(
        db, AlertKind.URGENT_REQUEST, request.id, request_id=request.id, tags=request.tags, waited_s=0
    )


async def long_waits(db: Db, requests: list[Request], now: datetime) -> None:
    """A `long_wait` alert for each request that has now waited LONG_WAIT_ALERT_S (once)."""
    for r in requests:
        if r.state not in ("waiting", "offered"):
            continue
        waited = views.waited_s(r.created_at, now)
        if waited >= LONG_WAIT_ALERT_S:
            await raise_once(db, AlertKind.LONG_WAIT, r.id, request_id=r.id, tags=r.tags, waited_s=waited)
