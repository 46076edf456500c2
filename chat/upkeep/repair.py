"""Anti-entropy for delivery: what a doorbell rung while Redis was down never told a socket
on another process, found in PostgreSQL and told.

A round costs (nearly) nothing when nothing was lost: PostgreSQL is asked only for the
conversations some socket here is behind on (or was not told had ended), and only for the
conversations started since the last round that succeeded, so a quiet process reads no
rows at all. (It used to read every watched conversation and every conversation of the
last five minutes each round: at 4,000 idle sockets that decoding was most of the
heartbeat's CPU.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from chat import views
from chat.delivery.ended import ended_frame, ended_outbound
from chat.gateway.session import CatchUp, Outbound
from chat.metrics import METRICS
from chat.people import specialist
from chat.services import Services
from chat.store import conversations
from protocol import frames as f
from protocol.codec import encode

# `conversation_started` is checked once a start is STARTS_SETTLE_S old (the doorbell had
# its chance), and at most STARTS_WITHIN_S back (older ones were repaired by an earlier
# round or are in the socket's `welcome`). Each round looks back to the last round that
# succeeded, with STARTS_OVERLAP_S to spare for a row whose commit became visible late.
STARTS_SETTLE_S = 5.0
STARTS_WITHIN_S = 300.0
STARTS_OVERLAP_S = 20.0


class Rounds:
    """What one process's repair remembers between rounds: when it last read the starts
    successfully (monotonic seconds; None: never, so the next round reads all five minutes)."""

    def __init__(self) -> None:
        self.starts_read_at: float | None = None


async def repair_once(services: Services, rounds: Rounds | None = None) -> None:
    """Anti-entropy: compare what each socket was sent with PostgreSQL's last seq, and with
    whether the conversation has ended. `rounds`: the process's memory of earlier rounds
    (none: this round reads as if it were the first)."""
    rounds = rounds or Rounds()
    lowest: dict[str, int] = {}  # conversation → the lowest seq any socket here was sent
    told: dict[str, bool] = {}  # conversation → every socket here that knows it was told it ended
    # conversation → the specialists here whose sockets were never told it ended (so
    # believe they hold it): one of them may have missed its hand-over (PRODUCT.md §9).
    holders: dict[str, set[str]] = {}
    for session in services.hub.all_sessions():
        ended, handed_on = session.ended, session.handed_on
        is_specialist = session.role == "specialist"
        for conversation_id, seen in session.seen.items():
            if handed_on and conversation_id in handed_on:
                continue  # someone else's now: nothing of it is missing here
            known = lowest.get(conversation_id)
            if known is None or seen < known:
                lowest[conversation_id] = seen
            told[conversation_id] = told.get(conversation_id, True) and conversation_id in ended
            if is_specialist and conversation_id not in ended:
                holders.setdefault(conversation_id, set()).add(session.user_id)
    repaired = 0
    found: list[conversations.Conversation] = []
    if lowest:
        rows = [(i, b) for i in lowest for b in holders.get(i) or (None,)]
        found = await conversations.behind(
            services.db,
            [i for i, _ in rows],
            [lowest[i] for i, _ in rows],
            [told[i] for i, _ in rows],
            [b for _, b in rows],
        )
    # Before any catch-up: a specialist's socket that missed the hand-over is told it now
    # (its catch-up then reads nothing of the conversation, which is someone else's).
    repaired += _repair_handovers(services, [c for c in found if c.ended_at is None], holders)
    # Every round, even with nothing found: the hub compares with the seqs of the round
    # before (a conversation left out is one no socket here was behind on).
    repaired += services.hub.repair({c.id: c.last_seq for c in found})
    settled = datetime.now(UTC) - timedelta(seconds=5)  # the doorbell had its chance
    repaired += _repair_ends(services, [c for c in found if c.ended_at is not None and c.ended_at < settled])
    repaired += await _repair_starts(services, rounds)
    if repaired:
        METRICS.repairs.inc(repaired)


def _repair_handovers(
    services: Services, active: list[conversations.Conversation], holders: dict[str, set[str]]
) -> int:
    """A conversation handed on (PRODUCT.md §9) while its `conversation_ended` (reason
    `transferred`) could not reach the old specialist's sockets on this process: told now,
    so their console lets it go and nothing more of it reaches them (chat/gateway/ordering.py).
    `holders`: conversation → the specialists here who were not told it ended."""
    told = 0
    for conv in active:
        for specialist_id in holders.get(conv.id, ()):
            if specialist_id == conv.specialist_id:
                continue
            for session in list(services.hub.sessions_of(specialist(specialist_id))):
                if conv.id in session.seen and conv.id not in session.ended:
                    frame = encode(ended_frame(conv.id, "specialist", "transferred"))
                    session.deliver(Outbound(frame, conv.id, None, ends_conversation=True))
                    told += 1
    return told


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


async def _repair_starts(services: Services, rounds: Rounds) -> int:
    """A `conversation_started` rung while Redis was down never reached the other
    participant's sockets on other processes: the member would wait on, not knowing they
    had been matched. Tell any socket of a participant that does not know the conversation
    (started over 5 s ago, so the doorbell had its chance; and since the last round that
    read the starts, within five minutes, as older ones were either repaired by an earlier
    round or in the socket's `welcome`), then catch it up."""
    now = time.monotonic()
    last = rounds.starts_read_at
    if not services.hub.sessions:
        rounds.starts_read_at = None  # a socket that comes later gets them in its `welcome`
        return 0
    within = STARTS_WITHIN_S
    if last is not None:
        within = min(within, now - last + STARTS_SETTLE_S + STARTS_OVERLAP_S)
    started = await conversations.recently_started(services.db, between_s=(STARTS_SETTLE_S, within))
    rounds.starts_read_at = now
    told = 0
    for conv in started:
        frame: bytes | None = None
        for person in conv.participants:
            for session in list(services.hub.sessions_of(person)):
                if conv.id not in session.seen:
                    frame = frame or encode(f.ConversationStarted(conversation=views.conversation_info(conv)))
                    session.deliver(Outbound(frame, conv.id, None, True))
                    session.deliver(CatchUp(conv.id))
                    told += 1
    return told
