"""Safety frames (PRODUCT.md §8): a specialist's `flag`, a supervisor's `ack_alert`."""

from __future__ import annotations

from msgspec import structs

from chat.delivery.hub import STATS_CHANNEL
from chat.gateway.session import Session
from chat.handlers.registry import Refuse, handles
from chat.metrics import METRICS
from chat.safety import alerting, risk_watch
from chat.services import Services
from chat.store import alerts, audit, conversations
from chat.store.alerts import Acked, AlertKind
from protocol import frames as f
from protocol.codes import ErrorCode


@handles(f.Flag, "specialist")
async def on_flag(services: Services, session: Session, frame: f.Flag) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if conv.specialist_id != session.user_id:
        raise Refuse(ErrorCode.FORBIDDEN, "only the conversation's specialist may flag it")
    async with services.db.acquire() as conn, conn.transaction():
        await alerts.add_flag(conn, conv.id, frame.level)
        raised = await alerting.raise_alert(
            conn, AlertKind.FLAGGED, conversation_id=conv.id, level=frame.level, note=frame.note
        )
    if frame.level == "high":
        await risk_watch.mark_high(services, conv.id, level="high")
    session.push_frame(f.Flagged(conversation_id=conv.id, alert_id=raised.id, ref=frame.ref))
    services.hub.to_user(session.person, f.Flagged(conversation_id=conv.id, alert_id=raised.id), skip=session)
    await services.poke_matchmaker()


@handles(f.AckAlert, "supervisor")
async def on_ack_alert(services: Services, session: Session, frame: f.AckAlert) -> None:
    async with services.db.acquire() as conn, conn.transaction():
        outcome, alert = await alerts.acknowledge(
            conn, frame.alert_id, by_id=session.user_id, by_name=session.name
        )
        if outcome is Acked.ACKED:
            await audit.record(
                conn,
                actor_id=session.user_id,
                actor_role=session.role,
                actor_name=session.name,
                action="ack_alert",
                conversation_id=alert.conversation_id if alert else None,
                target=frame.alert_id,
            )
    if outcome is Acked.NOT_FOUND or alert is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such alert")
    if outcome is Acked.ALREADY:
        raise Refuse(ErrorCode.INVALID_STATE, "that alert was already acknowledged")
    METRICS.alerts_acked.labels(alert.kind).inc()
    if alert.acked_at is not None:
        METRICS.alert_ack_seconds.labels(alert.kind).observe(
            max(0.0, (alert.acked_at - alert.at).total_seconds())
        )
    acked = f.AlertAcked(alert_id=alert.id, by=f.AckedBy(name=session.name))
    session.push_frame(structs.replace(acked, ref=frame.ref))
    # To every watching supervisor on every process (the asker too, if watching: without ref).
    await services.hub.broadcast(STATS_CHANNEL, acked)
    await services.poke_matchmaker()
