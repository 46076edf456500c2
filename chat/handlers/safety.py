"""Safety frames (PRODUCT.md §8): a specialist's `flag`; a supervisor's `ack_alert`,
`monitor` and `unmonitor`."""

from __future__ import annotations

from msgspec import structs

from chat import views
from chat.delivery.hub import STATS_CHANNEL
from chat.gateway.session import Outbound, Session
from chat.handlers.registry import Refuse, handles
from chat.metrics import METRICS
from chat.people import specialist
from chat.safety import alerting, monitoring, risk_watch
from chat.services import Services
from chat.store import alerts, audit, conversations, joins, monitors, notes, transfer_reads, wrap_up
from chat.store.alerts import Acked, AlertKind
from chat.store.conversations import Appended, Conversation
from chat.store.db import iso
from protocol import frames as f
from protocol.codec import encode
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
    flagged = f.Flagged(conversation_id=conv.id, alert_id=raised.id)
    services.hub.to_user(session.person, flagged, skip=session)
    for watcher in services.monitors.watchers(conv.id):
        services.hub.to_user(watcher, flagged, conversation_id=conv.id)
    await services.poke_matchmaker()


@handles(f.AckAlert, "supervisor")
async def on_ack_alert(services: Services, session: Session, frame: f.AckAlert) -> None:
    async with services.db.acquire() as conn, conn.transaction():
        outcome, alert = await alerts.acknowledge(
            conn, frame.alert_id, by_id=session.user_id, by_name=session.name
        )
        if outcome is Acked.ACKED:
            await audit.record_by(
                conn,
                session,
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


# How much history a new watch sends at once; anything older than the last of it that is
# missing is read by the same catch-up as a gap (chat/gateway/session.py).
MONITOR_HISTORY = 1000


async def _reasoned_live_conversation(services: Services, conversation_id: str, reason: str) -> Conversation:
    if not reason.strip():
        raise Refuse(ErrorCode.FORBIDDEN, "say why (`reason`): it is recorded in the audit log")
    conv = await conversations.get(services.db, conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if conv.state != "active":
        raise Refuse(ErrorCode.INVALID_STATE, "only a live conversation can be watched or joined")
    return conv


async def _audit(
    services: Services, session: Session, action: str, conv: Conversation, frame: f.Monitor | f.Join
) -> None:
    # Before anything is sent (PRODUCT.md §8, §10); an emergency is recorded as such.
    await audit.record_by(
        services.db,
        session,
        action=action,
        conversation_id=conv.id,
        reason=frame.reason.strip(),
        detail={"emergency": frame.emergency},
    )


async def _watch(services: Services, session: Session, conv: Conversation, ref: str | None) -> None:
    """History, then the live stream by seq, on this socket (the caller audited it)."""
    stored = await conversations.messages_after(services.db, conv.id, 0, MONITOR_HISTORY)
    session.push_frame(
        f.History(conversation_id=conv.id, messages=[views.message(m) for m in stored], ref=ref)
    )
    # From here live messages follow by seq: a repeat of the history is dropped, one that
    # raced this watch's start is read from PostgreSQL (the resume rules).
    session.know(conv.id, stored[-1].seq if stored else 0)
    watcher = monitoring.watcher_of(session)
    await services.hub.attach(session, watcher)
    await monitors.start(services.db, conv.id, watcher.id, session.user_id, session.name)
    await _watches_changed(services)
    services.hub.to_user(specialist(conv.specialist_id), f.Monitoring(conversation_id=conv.id, watching=True))


@handles(f.Monitor, "supervisor")
async def on_monitor(services: Services, session: Session, frame: f.Monitor) -> None:
    conv = await _reasoned_live_conversation(services, frame.conversation_id, frame.reason)
    if conv.id in session.seen:
        raise Refuse(ErrorCode.INVALID_STATE, "you already watch this conversation here")
    await _audit(services, session, "monitor", conv, frame)
    await _watch(services, session, conv, frame.ref)
    METRICS.monitors.inc()


@handles(f.Join, "supervisor")
async def on_join(services: Services, session: Session, frame: f.Join) -> None:
    conv = await _reasoned_live_conversation(services, frame.conversation_id, frame.reason)
    if await joins.joined(services.db, conv.id, session.user_id):
        raise Refuse(ErrorCode.INVALID_STATE, "you already joined this conversation")
    await _audit(services, session, "join", conv, frame)
    if not await joins.join(services.db, conv.id, session.user_id, session.name):
        raise Refuse(ErrorCode.INVALID_STATE, "you already joined this conversation")
    if conv.id not in session.seen:
        await _watch(services, session, conv, None)  # a joined supervisor sees the whole chat
    METRICS.joins.inc()
    joined = f.ParticipantJoined(conversation_id=conv.id, role="supervisor", name=session.name)
    session.push_frame(structs.replace(joined, ref=frame.ref))
    for person in conv.participants:
        services.hub.to_user(person, joined, conversation_id=conv.id)


@handles(f.Leave, "supervisor")
async def on_leave(services: Services, session: Session, frame: f.Leave) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if not await joins.leave(services.db, conv.id, session.user_id):
        raise Refuse(ErrorCode.INVALID_STATE, "you have not joined this conversation")
    left = f.ParticipantLeft(conversation_id=conv.id, role="supervisor", name=session.name)
    session.push_frame(structs.replace(left, ref=frame.ref))
    for person in conv.participants:
        services.hub.to_user(person, left, conversation_id=conv.id)


async def supervisor_send(services: Services, session: Session, frame: f.Send) -> None:
    """A joined supervisor's `send` (chat/handlers/conversation.py hands it here)."""
    if frame.conversation_id not in session.seen:
        raise Refuse(ErrorCode.FORBIDDEN, "join the conversation (on this socket) to send")
    outcome, seq, sent_at = await joins.append(
        services.db, frame.conversation_id, session.user_id, session.name, frame.client_msg_id, frame.body
    )
    if outcome is Appended.NOT_FOUND:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if outcome is Appended.FORBIDDEN:
        raise Refuse(ErrorCode.FORBIDDEN, "join the conversation to send")
    if outcome is Appended.ENDED:
        raise Refuse(ErrorCode.INVALID_STATE, "this conversation has ended")
    ack = Outbound(
        encode(
            f.Ack(
                conversation_id=frame.conversation_id,
                client_msg_id=frame.client_msg_id,
                seq=seq,
                ref=frame.ref,
            )
        )
    )
    if outcome is Appended.DUPLICATE or sent_at is None:
        session.push(ack)
        return
    data = encode(
        f.Message(
            conversation_id=frame.conversation_id,
            seq=seq,
            sender=f.Sender(role="supervisor", name=session.name),
            body=frame.body,
            client_msg_id=frame.client_msg_id,
            sent_at=iso(sent_at),
        )
    )
    session.push(ack, Outbound(data, frame.conversation_id, seq))
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is not None:
        for person in conv.participants:
            services.hub.to_user(person, data, conversation_id=conv.id, seq=seq)
    own = monitoring.watcher_of(session)
    for watcher in services.monitors.watchers(frame.conversation_id):
        if watcher != own:
            services.hub.to_user(watcher, data, conversation_id=frame.conversation_id, seq=seq)


@handles(f.Unmonitor, "supervisor")
async def on_unmonitor(services: Services, session: Session, frame: f.Unmonitor) -> None:
    if frame.conversation_id not in session.seen:
        raise Refuse(ErrorCode.INVALID_STATE, "you do not watch this conversation here")
    session.forget(frame.conversation_id)
    watcher = monitoring.watcher_of(session)
    await monitors.stop(services.db, frame.conversation_id, watcher.id)
    if not session.seen:
        await services.hub.detach(session, watcher)
    await _watches_changed(services)
    session.push_frame(f.Monitoring(conversation_id=frame.conversation_id, watching=False, ref=frame.ref))
    await _tell_specialist(services, frame.conversation_id)


async def watcher_gone(services: Services, session: Session) -> None:
    """The supervisor's socket closed: end its watches."""
    if session.role != "supervisor" or not session.seen:
        return
    watcher = monitoring.watcher_of(session)
    await services.hub.detach(session, watcher)
    ended = await monitors.stop_watcher(services.db, watcher.id)
    await _watches_changed(services)
    for conversation_id in ended:
        await _tell_specialist(services, conversation_id)


async def _tell_specialist(services: Services, conversation_id: str) -> None:
    conv = await conversations.get(services.db, conversation_id)
    if conv is not None and conv.state == "active":
        still = await monitors.watching(services.db, conversation_id) > 0
        services.hub.to_user(
            specialist(conv.specialist_id), f.Monitoring(conversation_id=conversation_id, watching=still)
        )


async def _watches_changed(services: Services) -> None:
    await services.monitors.reload(services.db)
    await services.bus.publish(monitoring.CHANNEL, b"")


@handles(f.WrapUp, "specialist")
async def on_wrap_up(services: Services, session: Session, frame: f.WrapUp) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no conversation of yours with that id")
    if conv.specialist_id == session.user_id:
        if conv.state != "ended":
            raise Refuse(ErrorCode.INVALID_STATE, "wrap-up comes after the conversation ends")
    elif not await transfer_reads.handed_on_by(services.db, conv.id, session.user_id):
        # One they handed on ended for them then, though it goes on (PRODUCT.md §8, §9).
        raise Refuse(ErrorCode.NOT_FOUND, "no conversation of yours with that id")
    async with services.db.acquire() as conn, conn.transaction():
        saved = await wrap_up.save(
            conn, conv.id, session.user_id, frame.outcome, frame.risk_level, frame.note
        )
    until = iso(saved.wrap_up_until)
    session.push_frame(f.WrapUpSaved(conversation_id=conv.id, wrap_up_until=until, ref=frame.ref))
    services.hub.to_user(
        session.person, f.WrapUpSaved(conversation_id=conv.id, wrap_up_until=until), skip=session
    )
    await services.poke_matchmaker()


@handles(f.Whisper, "supervisor")
async def on_whisper(services: Services, session: Session, frame: f.Whisper) -> None:
    if frame.conversation_id not in session.seen:
        raise Refuse(ErrorCode.FORBIDDEN, "monitor the conversation (on this socket) to whisper")
    body = frame.body.strip()
    if not body:
        raise Refuse(ErrorCode.BAD_FRAME, "an empty whisper")
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
    if conv.state != "active":
        raise Refuse(ErrorCode.INVALID_STATE, "this conversation has ended")
    stored = await notes.add_by(services.db, conv.id, session, body, kind="whisper")
    whispered = f.Whispered(
        conversation_id=conv.id, body=body, sent_at=iso(stored.at), from_=f.WhisperFrom(name=session.name)
    )
    session.push_frame(structs.replace(whispered, ref=frame.ref))
    # The specialist's devices only: never the member's (PRODUCT.md §8).
    services.hub.to_user(specialist(conv.specialist_id), whispered)
