"""Supervisors watching a live conversation (PRODUCT.md §8 `monitor`).

A watching socket gets its own delivery name, the person ("supervisor", "monitor\\x1f<socket
id>"), attached to the hub beside its own; every process mirrors the open watches from
PostgreSQL (a doorbell on CHANNEL, and a poll every POLL_S for a lost ring), and sends a
watched conversation's live frames to those names too. So the watcher sees the history,
then every live `message` by `seq`, with the gap and repeat rules of a device's resume
(chat/gateway/session.py): a message that raced the start of the watch is read from
PostgreSQL, one already in the history is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from chat.gateway.session import Session
from chat.people import Person
from chat.store import monitors
from chat.store.db import STORAGE_DOWN, Db

log = logging.getLogger("peerchat.safety")

CHANNEL = "pc:monitors"
POLL_S = 5.0


def watcher_of(session: Session) -> Person:
    return Person("supervisor", f"monitor\x1f{session.id}")  # a control character: no token carries it


class MonitorMirror:
    """conversation id → the delivery names watching it, as of the last read."""

    def __init__(self) -> None:
        self._by_conversation: dict[str, frozenset[Person]] = {}

    def watchers(self, conversation_id: str) -> frozenset[Person]:
        return self._by_conversation.get(conversation_id, frozenset())

    async def reload(self, db: Db) -> None:
        found: dict[str, set[Person]] = {}
        for m in await monitors.open_monitors(db):
            found.setdefault(m.conversation_id, set()).add(Person("supervisor", m.watcher))
        self._by_conversation = {c: frozenset(p) for c, p in found.items()}

    async def run(self, db: Db, wake: asyncio.Event) -> None:
        """Re-read on every doorbell and every POLL_S."""
        while True:
            try:
                await self.reload(db)
            except STORAGE_DOWN as exc:
                log.info("monitor mirror not refreshed: %s", type(exc).__name__)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S)
