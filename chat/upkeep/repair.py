"""Anti-entropy for delivery: what a doorbell rung while Redis was down never told a socket
on another process, found in PostgreSQL and told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chat import views
from chat.delivery.ended import ended_outbound
from chat.gateway.session import CatchUp, Outbound
from chat.metrics import METRICS
from chat.services import Services
from chat.store import conversations
from protocol import frames as f
from protocol.codec import encode


async def repair_once(services: Services) -> None:
    """Anti-entropy: compare what each socket was sent with PostgreSQL's last seq, and with
    whether the conversation has ended."""
    watched = services.hub.watched_conversations()
    repaired = 0
    if watched:
        found = await conversations.get_many(services.db, list(watched))
        repaired += services.hub.repair({c.id: c.last_seq for c in found})
        settled = datetime.now(UTC) - timedelta(seconds=5)  # the doorbell had its chance
        repaired += _repair_ends(
            services, [c for c in found if c.ended_at is not None and c.ended_at < settled]
        )
    repaired += await _repair_starts(services)
    if repaired:
        METRICS.repairs.inc(repaired)


def _repair_ends(services: Services, ended: list[conversations.Conversation]) -> int:
    """A `conversation_ended` rung while Redis was down never reached sockets on other
    processes: the member would go on typing into a closed conversation."""
    told = 0
    for conv in ended:
        for person in conv.participants:
            for session in list(services.hub.sessions_of(person)):
                if conv.id in session.seen and conv.id not in session.ended:
                    session.deliver(CatchUp(conv.id))
                    session.deliver(ended_outbound(conv))
                    told += 1
    return told


async def _repair_starts(services: Services) -> int:
    """A `conversation_started` rung while Redis was down never reached the other
    participant's sockets on other processes: the member would wait on, not knowing they
    had been matched. Tell any socket of a participant that does not know the conversation
    (started over 5 s ago, so the doorbell had its chance; and within five minutes, as
    older ones were either repaired by an earlier round or in the socket's `welcome`), then
    catch it up."""
    if not services.hub.sessions:
        return 0
    started = await conversations.recently_started(services.db, between_s=(5, 300))
    told = 0
    for conv in started:
        frame = encode(f.ConversationStarted(conversation=views.conversation_info(conv)))
        for person in conv.participants:
            for session in list(services.hub.sessions_of(person)):
                if conv.id not in session.seen:
                    session.deliver(Outbound(frame, conv.id, None, True))
                    session.deliver(CatchUp(conv.id))
                    told += 1
    return told
