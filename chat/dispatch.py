"""Client frames after `hello`: who may send what, and what each one does.

Every handler is authorised against PostgreSQL's view of the conversation or request,
never against what the client claims. A handler refuses with `Refuse(code, message)`; a
database outage becomes `unavailable` (nothing was stored, retry); anything unexpected is
logged here and becomes `internal` for the client, and the socket stays open.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from msgspec.structs import replace
from redis.exceptions import RedisError

from chat import views, welcome
from chat.metrics import METRICS
from chat.people import Participants, specialist
from chat.services import Services
from chat.session import Outbound, Session
from chat.stats import queue_stats
from chat.store import audit, conversations, profiles, queue
from chat.store.conversations import Appended
from chat.store.db import STORAGE_DOWN, iso
from chat.store.queue import Assignment, OfferOutcome, Refusal
from matching.risk import default_phrases
from protocol import frames as f
from protocol.codec import FrameError, decode_client, encode
from protocol.codes import ErrorCode

log = logging.getLogger("peerchat.dispatch")
EndedBy = Literal["member", "specialist", "supervisor", "system"]
RISK = default_phrases()


# Storage unreachable, or (rarely, given the lock order) a transaction PostgreSQL rolled
# back whole to break a deadlock: either way nothing was stored and a retry is safe.
STORAGE_DOWN_OR_RACE: tuple[type[BaseException], ...] = (
    *STORAGE_DOWN,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


class Refuse(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error(code: ErrorCode, message: str, ref: str | None) -> f.Error:
    METRICS.errors.labels(code.value).inc()
    return f.Error(code=code.value, message=message, ref=ref)


_FRAMES_IN_SEND = METRICS.frames_in.labels("send")
Handler = Callable[[Services, Session, Any], Awaitable[None]]
# Which role may send which frame; anything else is `forbidden`.
_ROLES: dict[type[f.Frame], frozenset[str]] = {}
_HANDLERS: dict[type[f.Frame], Handler] = {}


def handles(frame_type: type[f.Frame], *roles: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[frame_type] = fn
        _ROLES[frame_type] = frozenset(roles)
        return fn

    return register


async def handle(services: Services, session: Session, text: str) -> None:
    frame = decode_client(text)
    if isinstance(frame, FrameError):
        session.push_frame(error(frame.code, frame.message, frame.ref))
        return
    await handle_frame(services, session, frame)


async def handle_frame(services: Services, session: Session, frame: f.ClientFrame) -> None:
    kind = type(frame)
    METRICS.frames_in.labels(kind.__struct_config__.tag).inc()
    handler = _HANDLERS.get(kind)
    if handler is None:  # a second `hello`
        session.push_frame(error(ErrorCode.INVALID_STATE, "already said hello", frame.ref))
        return
    if session.role not in _ROLES[kind]:
        session.push_frame(
            error(
                ErrorCode.FORBIDDEN,
                f"a {session.role} may not send `{kind.__struct_config__.tag}`",
                frame.ref,
            )
        )
        return
    if session.sending and kind is not f.Send:
        # Whatever this frame does comes after the socket's earlier sends (see on_send).
        await asyncio.wait(set(session.sending))
    try:
        await handler(services, session, frame)
    except Exception as exc:
        session.push_frame(_failure(kind, exc, frame.ref))


def _failure(kind: type[f.Frame], exc: Exception, ref: str | None) -> f.Error:
    """The `error` reply for a handler that raised."""
    if isinstance(exc, Refuse):
        return error(exc.code, exc.message, ref)
    tag = kind.__struct_config__.tag
    if isinstance(exc, STORAGE_DOWN_OR_RACE):
        log.warning("%s unavailable: %s", tag, type(exc).__name__)
        return error(ErrorCode.UNAVAILABLE, "storage unavailable; nothing was stored, retry", ref)
    if isinstance(exc, asyncpg.PostgresError):
        # Its text can carry the row it refused (DETAIL: Failing row contains ...): a
        # message body must never reach the log.
        log.error("handler for %s failed: %s (SQLSTATE %s)", tag, type(exc).__name__, exc.sqlstate)
    else:
        log.error("handler for %s failed", tag, exc_info=exc)
    return error(ErrorCode.INTERNAL, "something went wrong on our side; retry", ref)


async def settle() -> None:
    """At shutdown, after the appender closed: let the re-sends of repeated messages finish."""
    if _BACKGROUND:
        await asyncio.wait(set(_BACKGROUND), timeout=5)


async def backfill(
    services: Services, conversation_id: str, after: int, limit: int
) -> list[tuple[int, bytes]]:
    stored = await conversations.messages_after(services.db, conversation_id, after, limit)
    return [(m.seq, encode(views.message(m))) for m in stored]


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- member


@handles(f.RequestPeer, "member")
async def on_request(services: Services, session: Session, frame: f.RequestPeer) -> None:
    tags = sorted({t.strip().lower() for t in frame.tags if t.strip()})
    urgent = RISK.matches(frame.note or "")
    try:
        request = await queue.create_request(
            services.db,
            member_id=session.user_id,
            member_alias=session.name,
            tags=tags,
            language=(frame.language or None),
            note=frame.note,
            priority="urgent" if urgent else "normal",
            prefer_specialist=frame.prefer_specialist,
        )
    except queue.AlreadyOpen:
        raise Refuse(ErrorCode.INVALID_STATE, "you already have an open request or conversation") from None
    if urgent:
        log.warning("urgent request %s queued: supervisors alerted", request.id[:8])
    position, wait = await welcome.position_of(services, request)
    reply = f.Queued(request_id=request.id, position=position, estimated_wait_s=wait, ref=frame.ref)
    session.push_frame(reply)
    services.hub.to_user(
        session.person,
        f.QueueUpdate(request_id=request.id, position=position, estimated_wait_s=wait),
        skip=session,
    )
    await services.poke_matchmaker()


@handles(f.Cancel, "member")
async def on_cancel(services: Services, session: Session, frame: f.Cancel) -> None:
    revoked = await queue.cancel_request(services.db, frame.request_id, session.user_id)
    if revoked is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no open request of yours with that id")
    session.push_frame(f.Cancelled(request_id=frame.request_id, ref=frame.ref))
    services.hub.to_user(session.person, f.Cancelled(request_id=frame.request_id), skip=session)
    for offer in revoked:
        services.hub.to_user(
            specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="cancelled")
        )
    await services.poke_matchmaker()


@handles(f.Feedback, "member")
async def on_feedback(services: Services, session: Session, frame: f.Feedback) -> None:
    conv = await conversations.get(services.db, frame.conversation_id)
    if conv is None or conv.member_id != session.user_id:
        raise Refuse(ErrorCode.NOT_FOUND, "no conversation of yours with that id")
    if conv.state != "ended":
        raise Refuse(ErrorCode.INVALID_STATE, "feedback comes after the conversation ends")
    await conversations.save_feedback(services.db, conv.id, session.user_id, frame.rating, frame.comment)
    session.push_frame(f.FeedbackSaved(conversation_id=conv.id, ref=frame.ref))


# --------------------------------------------------------------------------- specialist


@handles(f.SetAvailability, "specialist")
async def on_availability(services: Services, session: Session, frame: f.SetAvailability) -> None:
    profile = await profiles.set_status(services.db, session.user_id, frame.status)
    if profile is None:
        raise Refuse(ErrorCode.NOT_FOUND, "no profile")
    session.push_frame(f.AvailabilityChanged(status=frame.status, ref=frame.ref))
    services.hub.to_user(session.person, f.AvailabilityChanged(status=frame.status), skip=session)
    await services.poke_matchmaker()


@handles(f.Accept, "specialist")
async def on_accept(services: Services, session: Session, frame: f.Accept) -> None:
    result = await queue.accept_offer(services.db, frame.offer_id, session.user_id)
    await _started(services, session, result, frame.ref)


@handles(f.Claim, "specialist")
async def on_claim(services: Services, session: Session, frame: f.Claim) -> None:
    result = await queue.claim_request(services.db, frame.request_id, session.user_id)
    await _started(services, session, result, frame.ref)


_REFUSALS = {
    Refusal.OFFER_EXPIRED: (ErrorCode.OFFER_EXPIRED, "that offer has expired or was taken"),
    Refusal.ALREADY_CLAIMED: (ErrorCode.ALREADY_CLAIMED, "someone else took that request"),
    Refusal.NO_SLOT: (ErrorCode.INVALID_STATE, "you are at your chat capacity"),
    Refusal.LANGUAGE: (ErrorCode.INVALID_STATE, "that request asks for a language you do not list"),
    Refusal.NOT_FOUND: (ErrorCode.NOT_FOUND, "no such request"),
}


async def _started(
    services: Services, session: Session, result: Assignment | Refusal, ref: str | None
) -> None:
    if isinstance(result, Refusal):
        code, message = _REFUSALS[result]
        raise Refuse(code, message)
    conv = await conversations.get(services.db, result.conversation_id)
    assert conv is not None
    services.participants[conv.id] = conv.participants
    started = f.ConversationStarted(conversation=views.conversation_info(conv))
    # The direct reply carries the ref; the fan-out (other devices, the member) does not.
    session.push(Outbound(encode(replace(started, ref=ref)), conv.id, None, True))
    for person in (conv.specialist, conv.member):
        services.hub.to_user(person, started, conversation_id=conv.id, starts_conversation=True, skip=session)
    for offer in result.revoked:
        services.hub.to_user(
            specialist(offer.specialist_id), f.OfferRevoked(offer_id=offer.id, reason="claimed")
        )
    await services.poke_matchmaker()


@handles(f.Decline, "specialist")
async def on_decline(services: Services, session: Session, frame: f.Decline) -> None:
    closed = await queue.close_offer(services.db, frame.offer_id, OfferOutcome.DECLINED, session.user_id)
    if closed is None:
        raise Refuse(ErrorCode.OFFER_EXPIRED, "that offer is no longer open")
    session.push_frame(f.Declined(offer_id=frame.offer_id, ref=frame.ref))
    await services.poke_matchmaker()


@handles(f.QueueWatch, "specialist", "supervisor")
async def on_queue_watch(services: Services, session: Session, frame: f.QueueWatch) -> None:
    now = _now()
    waiting = [r for r in await queue.open_requests(services.db) if r.state == "waiting"]
    if not services.hub.queue_watchers:
        await services.bus.subscribe("pc:queue")
    services.hub.queue_watchers.add(session)
    session.push_frame(f.Queue(requests=[views.queue_entry(r, now) for r in waiting], ref=frame.ref))


# --------------------------------------------------------------------------- both sides


async def _participant(services: Services, session: Session, conversation_id: str) -> Participants:
    """(member, specialist) if this person (role and sub) is in the conversation, else
    `forbidden`: a member whose `sub` is the specialist's id is someone else."""
    pair = services.participants.get(conversation_id)
    if pair is None:
        conv = await conversations.get(services.db, conversation_id)
        if conv is None:
            raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
        pair = conv.participants
        if len(services.participants) > 50_000:
            services.participants.clear()
        services.participants[conversation_id] = pair
    if session.person not in pair:
        raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
    return pair


# A socket's sends are pipelined: each goes to the group commit and the reader goes on to
# the next frame; the ack and the fan-out follow when its batch commits (`_stored`, called
# in the order the sends arrived). Any other frame first waits for the socket's sends to
# settle, so `send` then `end` still stores the message before the conversation ends.
# A socket has at most SENDS_IN_FLIGHT uncommitted; the next waits for the oldest.
SENDS_IN_FLIGHT = 32
_BACKGROUND: set[asyncio.Task[None]] = set()


@handles(f.Send, "member", "specialist")
async def on_send(services: Services, session: Session, frame: f.Send) -> None:
    if len(frame.body) > services.settings.max_body_chars:
        raise Refuse(ErrorCode.TOO_LARGE, f"a message may hold {services.settings.max_body_chars} characters")
    if not frame.body.strip():
        raise Refuse(ErrorCode.BAD_FRAME, "an empty message")
    pair = await _participant(services, session, frame.conversation_id)
    if len(session.sending) >= SENDS_IN_FLIGHT:
        await asyncio.wait(set(session.sending), return_when=asyncio.FIRST_COMPLETED)
    _submit(services, session, frame, pair)


def send_now(services: Services, session: Session, frame: f.Send, admit: Callable[[], bool]) -> bool:
    """`on_send` without a task, for a `send` read while the socket's reader was idle
    (chat/gateway.py): True if the message went to the group commit, False (and nothing
    done) if anything needs the reader: a refusal to explain, a conversation not in the
    cache, a full pipeline, or `admit` (the flood guard) saying no."""
    if session.role not in _ROLES[f.Send]:
        return False
    body = frame.body
    if len(body) > services.settings.max_body_chars or not body.strip():
        return False
    pair = services.participants.get(frame.conversation_id)
    if pair is None or session.person not in pair or len(session.sending) >= SENDS_IN_FLIGHT:
        return False
    if not admit():
        return False
    _FRAMES_IN_SEND.inc()
    _submit(services, session, frame, pair)
    return True


def _submit(services: Services, session: Session, frame: f.Send, pair: Participants) -> None:
    done = services.appender.submit(
        conversation_id=frame.conversation_id,
        sender_id=session.user_id,
        sender_role=session.role,
        sender_name=session.name,
        client_msg_id=frame.client_msg_id,
        body=frame.body,
    )
    session.sending.add(done)
    done.add_done_callback(functools.partial(_stored, services, session, frame, pair, time.perf_counter()))


def _stored(
    services: Services,
    session: Session,
    frame: f.Send,
    pair: Participants,
    started: float,
    done: asyncio.Future[tuple[Appended, int, datetime]],
) -> None:
    """A send's batch committed (or failed): the ack, then the fan-out; or the error."""
    session.sending.discard(done)
    if done.cancelled():
        return
    try:
        outcome, seq, sent_at = done.result()
        if outcome is Appended.NOT_FOUND:
            raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
        if outcome is Appended.FORBIDDEN:
            raise Refuse(ErrorCode.FORBIDDEN, "not your conversation")
        if outcome is Appended.ENDED:
            raise Refuse(ErrorCode.INVALID_STATE, "this conversation has ended")
        METRICS.store_seconds.observe(time.perf_counter() - started)
        # Committed: now, and only now, the ack.
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
        if outcome is Appended.DUPLICATE:
            session.push(ack)
            # The first copy's fan-out may have died with its process; receivers drop
            # repeats by seq. Rare (a client's retry), so it may take a task.
            task = asyncio.get_running_loop().create_task(_fan_out_stored(services, frame, pair, seq))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            # The socket's next non-send frame (an `end`, say) waits for this too.
            session.sending.add(task)
            task.add_done_callback(session.sending.discard)
            return
        METRICS.messages_stored.inc()
        data = encode(
            f.Message(
                conversation_id=frame.conversation_id,
                seq=seq,
                sender=f.Sender(role=session.role, name=session.name),
                body=frame.body,
                client_msg_id=frame.client_msg_id,
                sent_at=iso(sent_at),
            )
        )
        # The sending socket gets the ack and its own copy together (one write).
        session.push(ack, Outbound(data, frame.conversation_id, seq))
        for person in pair:
            services.hub.to_user(
                person,
                data,
                conversation_id=frame.conversation_id,
                seq=seq,
                skip=session if person == session.person else None,
            )
    except Exception as exc:
        session.push_frame(_failure(f.Send, exc, frame.ref))


async def _fan_out_stored(services: Services, frame: f.Send, pair: Participants, seq: int) -> None:
    try:
        stored = await conversations.get_message(services.db, frame.conversation_id, seq)
    except Exception as exc:
        log.warning("re-sending a repeated message failed: %s", type(exc).__name__)
        return
    if stored is None:
        return
    data = encode(views.message(stored))
    for person in pair:
        services.hub.to_user(person, data, conversation_id=frame.conversation_id, seq=seq)


@handles(f.Typing, "member", "specialist")
async def on_typing(services: Services, session: Session, frame: f.Typing) -> None:
    pair = await _participant(services, session, frame.conversation_id)
    peer = pair[1] if session.person == pair[0] else pair[0]
    services.hub.to_user(peer, f.PeerTyping(conversation_id=frame.conversation_id, role=session.role))


@handles(f.Read, "member", "specialist")
async def on_read(services: Services, session: Session, frame: f.Read) -> None:
    pair = await _participant(services, session, frame.conversation_id)
    peer = pair[1] if session.person == pair[0] else pair[0]
    services.hub.to_user(
        peer, f.PeerRead(conversation_id=frame.conversation_id, seq=frame.seq, role=session.role)
    )


@handles(f.HistoryQuery, "member", "specialist")
async def on_history(services: Services, session: Session, frame: f.HistoryQuery) -> None:
    await _participant(services, session, frame.conversation_id)
    stored = await conversations.messages_after(
        services.db, frame.conversation_id, frame.after_seq, frame.limit
    )
    session.push_frame(
        f.History(
            conversation_id=frame.conversation_id, messages=[views.message(m) for m in stored], ref=frame.ref
        )
    )


@handles(f.End, "member", "specialist", "supervisor")
async def on_end(services: Services, session: Session, frame: f.End) -> None:
    if session.role != "supervisor":
        await _participant(services, session, frame.conversation_id)
    ended = await end_conversation(
        services, frame.conversation_id, by=session.role, reason="ended", asked=session, ref=frame.ref
    )
    if ended is None:
        existing = await conversations.get(services.db, frame.conversation_id)
        if existing is None:
            raise Refuse(ErrorCode.NOT_FOUND, "no such conversation")
        raise Refuse(ErrorCode.INVALID_STATE, "this conversation has already ended")
    if session.role == "supervisor":
        await audit.record(
            services.db,
            actor_id=session.user_id,
            actor_role=session.role,
            actor_name=session.name,
            action="end",
            conversation_id=frame.conversation_id,
            reason="ended by a supervisor",
        )


async def end_conversation(
    services: Services,
    conversation_id: str,
    *,
    by: EndedBy,
    reason: str,
    asked: Session | None = None,
    ref: str | None = None,
) -> conversations.Conversation | None:
    """End it and tell every device of both participants. `asked`, the socket whose `end`
    this answers, gets its copy with the `ref` (a supervisor's, too)."""
    ended = await conversations.end(services.db, conversation_id, by=by, reason=reason)
    if ended is None:
        return None
    frame = f.ConversationEnded(conversation_id=conversation_id, by=by, reason=reason)
    if asked is not None:
        asked.push(Outbound(encode(replace(frame, ref=ref)), conversation_id, None, ends_conversation=True))
    for person in ended.participants:
        services.hub.to_user(
            person, frame, conversation_id=conversation_id, ends_conversation=True, skip=asked
        )
    await services.poke_matchmaker()
    return ended


# --------------------------------------------------------------------------- supervisor


@handles(f.WatchQueues, "supervisor")
async def on_watch_queues(services: Services, session: Session, frame: f.WatchQueues) -> None:
    if not services.hub.stats_watchers:
        await services.bus.subscribe("pc:stats")
    services.hub.stats_watchers.add(session)
    stats = await current_stats(services)
    session.push_frame(
        f.QueueStats(
            waiting=stats.waiting,
            longest_wait_s=stats.longest_wait_s,
            by_tag=stats.by_tag,
            specialists=stats.specialists,
            active_conversations=stats.active_conversations,
            alerts=stats.alerts,
            ref=frame.ref,
        )
    )


async def current_stats(services: Services) -> f.QueueStats:
    requests = await queue.open_requests(services.db)
    specialists = await profiles.list_all(services.db)
    online = await services.presence.online_specialists(time.time())
    active = await conversations.active_count(services.db)
    return queue_stats(requests, specialists, online, active, _now())


# --------------------------------------------------------------------------- presence


async def peer_connected(services: Services, session: Session) -> None:
    await _tell_peers(services, session, "connected")


async def peer_disconnected(services: Services, session: Session) -> None:
    await _tell_peers(services, session, "reconnecting")


async def _tell_peers(
    services: Services, session: Session, status: Literal["connected", "reconnecting"]
) -> None:
    if session.role == "supervisor":
        return
    try:
        mine = await conversations.of_person(services.db, session.person)
        for conv in mine:
            if conv.state == "active":
                peer = conv.peer_of(session.person)
                services.hub.to_user(
                    peer,
                    f.PeerStatus(conversation_id=conv.id, status=status),
                )
    except (OSError, asyncpg.PostgresError, RedisError) as exc:
        log.info("could not tell peers: %s", type(exc).__name__)
