"""Anti-entropy for delivery: what a doorbell rung while Redis was down never told a socket
on another process, found in PostgreSQL and told.

A round costs (nearly) nothing when nothing was lost: PostgreSQL is asked only for the
conversations some socket here is behind on (or was not told had ended), and only for the
conversations started since the last round that succeeded (or since the process started),
so a quiet process reads no rows at all; the arrays of that question go as text, and of
the starts only their pairs are decoded, and the walk over every socket that builds the
question is skipped while no socket here changed what it knows (chat/gateway/ordering.py
`Changes`; docs/performance.md, round 11, repair). (It used
to read every watched conversation and every conversation of the last five minutes each
round: at 4,000 idle sockets that decoding was most of the heartbeat's CPU.)"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chat import views
from chat.delivery.ended import ended_frame, ended_outbound
from chat.delivery.hub import Hub
from chat.gateway.ordering import CHANGES
from chat.gateway.session import CatchUp, Outbound, Session
from chat.metrics import METRICS
from chat.people import member, specialist
from chat.services import Services
from chat.store import conversations, repair_reads
from protocol import frames as f
from protocol.codec import encode

# `conversation_started` is checked once a start is STARTS_SETTLE_S old (the doorbell had
# its chance), and at most STARTS_WITHIN_S back (older ones were repaired by an earlier
# round or are in the socket's `welcome`). Each round looks back to the last round that
# read the starts, or to when this process started (or last had no socket), with
# STARTS_OVERLAP_S to spare for a row whose commit became visible late: `started_at` is
# its transaction's start, not its commit.
STARTS_SETTLE_S = 5.0
STARTS_WITHIN_S = 300.0
STARTS_OVERLAP_S = 20.0
# A round asks PostgreSQL every time; it walks every socket to build the question only when
# something here changed (`CHANGES`), and at least every REASK_EVERY rounds (a minute at
# the default TTL) whatever, a backstop that costs a walk a minute.
REASK_EVERY = 6


class Rounds:
    """What one process's repair remembers between rounds: since when (monotonic seconds)
    no start can be missing from the sockets here except one the next read finds.

    It begins at the process's start, not five minutes back: every socket here connected
    after that, and a socket's `welcome` is read after it attached to the hub (subscribed to
    its doorbells), so it holds every conversation of its user that was committed before it
    connected. A start committed before the process started (its `started_at` earlier still,
    or at most STARTS_OVERLAP_S later for a transaction that was slow to commit) is in the
    `welcome` of every socket here, and only a start committed after some socket here
    connected can have lost its doorbell. The same holds after a round that found no socket
    here: every socket that comes later connected after it. (The first round used to read
    all five minutes: at the bench's start, 2,000 rows decoded, per process.)"""

    def __init__(self, started_at: float | None = None) -> None:
        self.starts_read_at: float = time.monotonic() if started_at is None else started_at
        # The starts the last round read and checked (see `_repair_starts`).
        self.starts_checked: set[str] = set()
        # The last walk's question, `CHANGES` when it was made, rounds that reused it since.
        self.asked: Question | None = None
        self.asked_mark = -1
        self.reused = 0


@dataclass(frozen=True, slots=True)
class Question:
    """What the round asks PostgreSQL (`repair_reads.behind`), from every socket here."""

    lowest: dict[str, int]  # conversation → the lowest seq any socket here was sent
    # Conversations every socket here that knows them was told ended.
    told: set[str]
    # conversation → the specialists here whose sockets were never told it ended (so
    # believe they hold it): one of them may have missed its hand-over (PRODUCT.md §9).
    holders: dict[str, set[str]]
    # The same, as PostgreSQL is sent it (made once, asked every round this is reused).
    sent: repair_reads.BehindQuestion | None


def ask(hub: Hub) -> Question:
    """The round's question, from a walk over every socket here."""
    lowest: dict[str, int] = {}
    # Conversations some socket here was told ended, and those some socket here that knows
    # them was not: told is the first less the second.
    told_some: set[str] = set()
    untold: set[str] = set()
    holders: dict[str, set[str]] = {}
    # Straight over the hub's groups: a watching supervisor's socket is in two of them, and
    # is looked at twice, which changes nothing (a minimum, a union). An idle socket (told
    # no end, handed nothing on: nearly all of them) takes the short path.
    for group in hub.sessions.values():
        for session in group:
            seen = session.seen
            if not seen:
                continue
            ended, handed_on = session.ended, session.handed_on
            if not ended and not handed_on:
                for conversation_id, sent in seen.items():
                    known = lowest.get(conversation_id)
                    if known is None or sent < known:
                        lowest[conversation_id] = sent
                untold.update(seen)
                if session.role == "specialist":
                    for conversation_id in seen:
                        holders.setdefault(conversation_id, set()).add(session.user_id)
                continue
            is_specialist = session.role == "specialist"
            for conversation_id, sent in seen.items():
                if conversation_id in handed_on:
                    continue  # someone else's now: nothing of it is missing here
                known = lowest.get(conversation_id)
                if known is None or sent < known:
                    lowest[conversation_id] = sent
                if conversation_id in ended:
                    told_some.add(conversation_id)
                else:
                    untold.add(conversation_id)
                    if is_specialist:
                        holders.setdefault(conversation_id, set()).add(session.user_id)
    told = told_some - untold
    ready = repair_reads.behind_question(lowest, told_ended=told, believed=holders) if lowest else None
    return Question(lowest, told, holders, ready)


def _question(hub: Hub, rounds: Rounds) -> Question:
    """The round before's question while no socket here changed what it knows and none
    came or went since (`CHANGES` has not moved: every writer moves it), else a new walk;
    a new walk at least every REASK_EVERY rounds whatever, as a backstop."""
    mark = CHANGES.count
    asked = rounds.asked
    if asked is not None and rounds.asked_mark == mark and rounds.reused < REASK_EVERY - 1:
        rounds.reused += 1
        return asked
    rounds.asked, rounds.asked_mark, rounds.reused = ask(hub), mark, 0
    return rounds.asked


async def repair_once(services: Services, rounds: Rounds | None = None) -> None:
    """Anti-entropy: compare what each socket was sent with PostgreSQL's last seq, and with
    whether the conversation has ended. Every round asks PostgreSQL (a lost ring, a
    SUBSCRIBE that raced a PUBLISH, a sender's process that died between commit and
    publish: no signal here announces them), with the round before's question when no
    socket here changed what it knows since (`_question`). `rounds`: the process's memory
    of earlier rounds (none: this round reads the starts of the last five minutes)."""
    rounds = rounds or Rounds(time.monotonic() - STARTS_WITHIN_S)
    question = _question(services.hub, rounds)
    holders = question.holders
    repaired = 0
    found: list[conversations.Conversation] = []
    if question.sent is not None:
        found = await repair_reads.ask_behind(services.db, question.sent)
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
    read the starts, or the process's start, within five minutes: see `Rounds`), then catch
    it up. Only the pair of each start is read; the whole conversation (for the frame) only
    for one that some socket here does not know, which is rare.

    A start the round before read and checked is not checked again (the overlap reads it
    again): every socket here then was told it or knew it, and a socket that connected
    since had it, committed before, in its `welcome`. The round's memory moves on only
    once it has told what it found, so a round that fails halfway is read again whole."""
    now = time.monotonic()
    if not services.hub.sessions:
        # A socket that comes later gets every start committed before it in its `welcome`.
        rounds.starts_read_at, rounds.starts_checked = now, set()
        return 0
    within = min(STARTS_WITHIN_S, now - rounds.starts_read_at + STARTS_SETTLE_S + STARTS_OVERLAP_S)
    started = await repair_reads.recently_started(services.db, between_s=(STARTS_SETTLE_S, within))
    sessions, checked = services.hub.sessions, rounds.starts_checked
    missing: dict[str, list[Session]] = {}
    for conversation_id, member_id, specialist_id in started:
        if conversation_id in checked:
            continue
        for person in (member(member_id), specialist(specialist_id)):
            for session in sessions.get(person, ()):
                if conversation_id not in session.seen:
                    missing.setdefault(conversation_id, []).append(session)
    told = 0
    if missing:
        for conv in await conversations.get_many(services.db, list(missing)):
            # Told even if it ended since it was read (as its doorbell would have been): the
            # socket then knows it, and the next round's `behind` finds the end it was not told.
            frame = encode(f.ConversationStarted(conversation=views.conversation_info(conv)))
            for session in missing[conv.id]:
                if conv.id not in session.seen:  # told meanwhile (while the row was read)
                    session.deliver(Outbound(frame, conv.id, None, True))
                    session.deliver(CatchUp(conv.id))
                    told += 1
    rounds.starts_read_at, rounds.starts_checked = now, {i for i, _, _ in started}
    return told
