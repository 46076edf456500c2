"""The risk check on every member message (PRODUCT.md §8).

The send pipeline calls `after_member_message` once the message is committed and its ack
and fan-out are already queued for the sockets; the check itself runs in a later turn of
the event loop, so it never delays or changes that message's `ack` or delivery. The first
match in a conversation marks it `risk: "high"` (sticky) and raises a `risk_message`
alert in one transaction, and the specialist's devices get `risk`. The member is never
told and never answered automatically.
"""

from __future__ import annotations

import asyncio
import logging
import time

from chat.metrics import METRICS
from chat.people import Person
from chat.safety import alerting
from chat.services import Services
from chat.store import alerts
from chat.store.alerts import AlertKind
from chat.store.db import STORAGE_DOWN
from matching.risk import default_phrases
from protocol import frames as f

log = logging.getLogger("peerchat.safety")
RISK = default_phrases()

# Conversations this process knows are already `risk: "high"`: no need to check again
# (the mark is sticky and only the first match counts). Bounded; forgetting costs a check.
_KNOWN_HIGH: set[str] = set()
_KNOWN_HIGH_MAX = 50_000
_TASKS: set[asyncio.Task[None]] = set()
RETRIES = 5


def after_member_message(
    services: Services, conversation_id: str, seq: int, body: str, specialist: Person
) -> None:
    """Schedule the check of a committed member message; returns at once."""
    if conversation_id in _KNOWN_HIGH:
        return
    asyncio.get_running_loop().call_soon(_check, services, conversation_id, seq, body, specialist)


def known_high(conversation_id: str) -> None:
    if len(_KNOWN_HIGH) >= _KNOWN_HIGH_MAX:
        _KNOWN_HIGH.clear()
    _KNOWN_HIGH.add(conversation_id)


def _check(services: Services, conversation_id: str, seq: int, body: str, specialist: Person) -> None:
    started = time.perf_counter()
    hit = RISK.matches(body)
    METRICS.risk_checks_seconds.observe(time.perf_counter() - started)
    if not hit or conversation_id in _KNOWN_HIGH:
        return
    task = asyncio.get_running_loop().create_task(_mark(services, conversation_id, seq, specialist))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def _mark(services: Services, conversation_id: str, seq: int, specialist: Person) -> None:
    for attempt in range(RETRIES):
        try:
            first = await mark_high(services, conversation_id, level="high")
            break
        except STORAGE_DOWN as exc:
            # A missed risk alert is worse than a late one: try again for a while.
            log.warning("risk mark of a conversation failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1 + attempt)
    else:
        log.error("risk mark of a conversation failed %d times; the alert was not raised", RETRIES)
        return
    if first:
        log.warning("conversation %s marked risk high by a member message", conversation_id[:8])
        risk = f.Risk(conversation_id=conversation_id, level="high", seq=seq)
        services.hub.to_user(specialist, risk)
        for watcher in services.monitors.watchers(conversation_id):
            services.hub.to_user(watcher, risk, conversation_id=conversation_id)
        await services.poke_matchmaker()


async def mark_high(services: Services, conversation_id: str, *, level: str) -> bool:
    """Mark the conversation `risk: "high"` and raise its `risk_message` alert, together;
    True for the one call (on any process) that marked it."""
    async with services.db.acquire() as conn, conn.transaction():
        first = await alerts.mark_risk_high(conn, conversation_id)
        if first:
            await alerting.raise_once(
                conn, AlertKind.RISK_MESSAGE, conversation_id, conversation_id=conversation_id, level=level
            )
    known_high(conversation_id)
    return first


async def settle() -> None:
    """At shutdown: let marks in flight finish (bounded)."""
    if _TASKS:
        await asyncio.wait(set(_TASKS), timeout=5)
