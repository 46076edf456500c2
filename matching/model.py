"""The matching domain as plain values: requests, specialists, offers, configuration."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Priority(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class Status(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


# Requests are queued by (rank, created_at, id): urgent first, then longest waiting.
PRIORITY_RANK: dict[Priority, int] = {Priority.URGENT: 0, Priority.NORMAL: 1}

# Urgent requests prefer specialists with this tag (one shared tag's worth of bonus).
CRISIS_TAG = "crisis"


@dataclass(frozen=True, slots=True)
class Request:
    """A member waiting for a peer.

    ``avoid`` holds specialists who must never be offered this request: those who
    declined it or let its offer expire, any blocked by or for the member, and, for a
    transfer, the specialist who handed it on.
    """

    id: str
    member_id: str
    tags: frozenset[str]
    language: str | None
    priority: Priority
    created_at: float
    prefer_specialist: str | None = None
    avoid: frozenset[str] = frozenset()
    # A cold transfer (PRODUCT.md §9): the conversation this request hands on. It is queued
    # ahead of every request of its priority that is not one, and its ``avoid`` holds the
    # specialist who handed it on.
    transfer_of: str | None = None


@dataclass(frozen=True, slots=True)
class Specialist:
    """A specialist as the matcher sees them.

    ``active_chats`` counts active conversations only; pending offers are counted by the
    engine, which knows them. ``idle_since`` is when they were last assigned a
    conversation (or came on shift): the longest idle is preferred among equals.
    ``missed_offers`` is the stored streak of offers let expire in a row (PostgreSQL's,
    which outlives a leader and a reload); the engine takes it up whenever it changes.
    ``urgent_chats`` counts their active conversations that are urgent or at high risk
    (PRODUCT.md §8, the urgent-load cap); ``wrap_up_until`` is when their wrap-up after a
    conversation ends (no offers until then; 0 for none).
    """

    id: str
    tags: frozenset[str]
    languages: frozenset[str]
    max_chats: int
    active_chats: int
    status: Status
    idle_since: float
    missed_offers: int = 0
    urgent_chats: int = 0
    wrap_up_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    request_id: str
    specialist_id: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class MatchConfig:
    offer_timeout_s: float = 30.0
    relax_after_s: float = 60.0
    prefer_window_s: float = 20.0
    missed_offers_before_away: int = 3
    # Honest waits (see docs/matching.md): how far back service rates look, the handle
    # time assumed before there is any history, and how many waiting requests each tick
    # re-estimates (a rolling sweep, so a tick stays well under a millisecond).
    rate_window_s: float = 900.0
    default_handle_s: float = 600.0
    queue_refresh_batch: int = 100
    # A specialist holding this many urgent or high-risk conversations is offered no more
    # urgent requests (PEERCHAT_MAX_URGENT_PER_SPECIALIST); they may still claim one by hand.
    max_urgent_per_specialist: int = 1


def queue_key(r: Request) -> tuple[int, float, str]:
    """Sort key of the queue: urgent before normal; within a priority, transfers before the
    rest (PRODUCT.md §9); then oldest first, then id."""
    return (2 * PRIORITY_RANK[r.priority] + (0 if r.transfer_of is not None else 1), r.created_at, r.id)
