"""The drain closes sockets with 1012 in batches with a pause between them, so a
restarting process's clients do not all reconnect to the others in the same instant."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import cast

from chat.services import Services
from chat.upkeep.drain import close_all


class FakeSession:
    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.closed_at: float | None = None
        self.code: int | None = None
        self.tick = -1  # the event loop's turn it was closed in (FakeHub.tick)

    def close_soon(self, code: int, reason: str = "") -> None:
        self.closed_at, self.code = time.monotonic(), code
        self.tick = self.hub.tick
        self.hub.live.remove(self)


class FakeHub:
    def __init__(self, n: int) -> None:
        self.live = [FakeSession(self) for _ in range(n)]
        self.everyone = list(self.live)
        self.tick = 0  # counted up once per turn of the event loop (`count_turns`)

    def all_sessions(self) -> list[FakeSession]:
        return list(self.live)


class FakeServices:
    def __init__(self, n: int) -> None:
        self.hub = FakeHub(n)


async def test_close_all_closes_everyone_1012_in_jittered_batches() -> None:
    services = FakeServices(50)
    hub = services.hub

    async def count_turns() -> None:
        while True:
            hub.tick += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    try:
        await close_all(cast(Services, services), batch=10)
    finally:
        counter.cancel()
    sessions = sorted(hub.everyone, key=lambda s: s.closed_at or 0.0)
    assert all(s.code == 1012 for s in sessions)
    batches = [sessions[i : i + 10] for i in range(0, 50, 10)]
    # One batch goes out together: in one turn of the loop, whatever the machine's load
    # (this compared clock readings within 15 ms, which a preempted process can miss).
    for batch in batches:
        assert len({s.tick for s in batch}) == 1, [s.tick for s in batch]
    assert len({batch[0].tick for batch in batches}) == 5, "each batch in a turn of its own"
    gaps = [b[0].closed_at - a[-1].closed_at for a, b in itertools.pairwise(batches)]  # type: ignore[operator]
    # A pause of 20-100 ms: never shorter; longer only if the machine is busy.
    assert all(0.015 <= g <= 2.0 for g in gaps), gaps
    assert max(gaps) - min(gaps) > 0.001, "the pause is jittered"
