"""Supervisor queue statistics (``queue_stats``) as a pure function of a snapshot.

Definitions:

- ``waiting``: requests not yet assigned (with or without a pending offer).
- ``longest_wait_s``: whole seconds the oldest of those has waited.
- ``by_tag``: the same two numbers per requested tag; a request counts once under
  each of its tags, and untagged requests only in the totals.
- ``specialists``: ``offline`` specialists are not counted; ``away`` counts status away
  whatever their chats; ``busy`` is status available with no free slot (active chats
  plus pending offers at or over capacity); ``available`` is status available with room.
- ``alerts``: one risk alert per waiting urgent request, oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from matching.model import Priority, Request, Specialist, Status


@dataclass(frozen=True, slots=True)
class TagLoad:
    waiting: int
    longest_wait_s: int


@dataclass(frozen=True, slots=True)
class SpecialistCounts:
    available: int
    busy: int
    away: int


@dataclass(frozen=True, slots=True)
class RiskAlert:
    request_id: str
    waited_s: int
    kind: str = "risk"


@dataclass(frozen=True, slots=True)
class QueueStats:
    waiting: int
    longest_wait_s: int
    by_tag: Mapping[str, TagLoad]
    specialists: SpecialistCounts
    active_conversations: int
    alerts: tuple[RiskAlert, ...]


def queue_stats(
    requests: Iterable[Request],
    specialists: Iterable[Specialist],
    active_conversations: int,
    now: float,
    pending_offers: Mapping[str, int] | None = None,
) -> QueueStats:
    """Compute ``queue_stats`` from waiting requests and all specialists at ``now``.

    ``pending_offers`` (specialist id -> pending offers held) makes ``busy`` count
    offers as taken slots; without it only active chats count.
    """
    held = pending_offers or {}
    waiting = 0
    longest = 0
    tags: dict[str, list[int]] = {}
    alerts: list[tuple[float, RiskAlert]] = []
    for r in requests:
        waited = max(0, int(now - r.created_at))
        waiting += 1
        longest = max(longest, waited)
        for tag in r.tags:
            load = tags.setdefault(tag, [0, 0])
            load[0] += 1
            load[1] = max(load[1], waited)
        if r.priority is Priority.URGENT:
            alerts.append((r.created_at, RiskAlert(r.id, waited)))
    available = busy = away = 0
    for s in specialists:
        if s.status is Status.AWAY:
            away += 1
        elif s.status is Status.AVAILABLE:
            if s.active_chats + held.get(s.id, 0) >= s.max_chats:
                busy += 1
            else:
                available += 1
    alerts.sort(key=lambda pair: (pair[0], pair[1].request_id))
    return QueueStats(
        waiting=waiting,
        longest_wait_s=longest,
        by_tag={tag: TagLoad(n, w) for tag, (n, w) in sorted(tags.items())},
        specialists=SpecialistCounts(available, busy, away),
        active_conversations=active_conversations,
        alerts=tuple(alert for _, alert in alerts),
    )
