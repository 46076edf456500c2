"""The solo bookkeeping of chat/delivery/hub.py: who is held only here, and the message
rings skipped for them (see the hub's docstring, "Solo users", and docs/decisions.md).

No I/O: the hub posts to the bus and asks this what it learned. A person is solo once a
PUBLISH of one of their message rings reached exactly one subscriber (us), with our
SUBSCRIBE confirmed before it went out and nothing changed since; `changed()` is bumped by
anything that could make such a count stale.
"""

from __future__ import annotations

import time
from collections import deque

from chat.gateway.ordering import Outbound
from chat.metrics import METRICS
from chat.people import Person

# Skipped rings kept for a newcomer: far longer than a join takes to arrive, and at most
# REPLAY_MAX per user so a flood cannot grow memory (a newcomer that misses one then
# fills the gap from PostgreSQL, as after any lost ring).
REPLAY_S = 2.0
REPLAY_MAX = 32


class Solo:
    def __init__(self) -> None:
        # People whose channel only this process subscribes.
        self._solo: set[Person] = set()
        # Skipped rings as (when, frame): given a header and sealed only if ever sent.
        self._skipped: dict[Person, deque[tuple[float, Outbound]]] = {}
        # Bumped by anything that could make a PUBLISH's receiver count stale: a join ring,
        # a user's first attach or last detach here, a bus reconnect. A reply counted
        # before such a change teaches nothing.
        self.changes = 0
        self.rings_skipped = 0  # for tests and the bench

    def changed(self) -> None:
        self.changes += 1

    def __contains__(self, person: Person) -> bool:
        return person in self._solo

    def learn(self, person: Person, sent_at: int, receivers: int, *, still_ours: bool) -> None:
        """A PUBLISH counted before `sent_at` reached `receivers` subscribers; `still_ours`:
        the person still has a socket here and our SUBSCRIBE is confirmed."""
        if receivers == 1 and sent_at == self.changes and still_ours:
            self._solo.add(person)

    def skip(self, person: Person, out: Outbound) -> None:
        now = time.monotonic()
        kept = self._skipped.get(person)
        if kept is None:
            kept = self._skipped[person] = deque(maxlen=REPLAY_MAX)
        while kept and kept[0][0] < now - REPLAY_S:
            kept.popleft()
        kept.append((now, out))
        self.rings_skipped += 1
        METRICS.rings_skipped.inc()

    def end(self, person: Person) -> list[Outbound]:
        """Someone else holds the channel now (or may): no longer solo. Returns the frames
        skipped in the last REPLAY_S, for the hub to ring after all."""
        self._solo.discard(person)
        kept = self._skipped.pop(person, None)
        if not kept:
            return []
        horizon = time.monotonic() - REPLAY_S
        return [out for at, out in kept if at >= horizon]

    def forget(self, person: Person) -> None:
        """Their last socket here went: nothing to skip or re-send for them."""
        self._solo.discard(person)
        self._skipped.pop(person, None)

    def everyone(self) -> list[Person]:
        """Everyone solo or with skipped rings kept."""
        return list(self._solo | set(self._skipped))
