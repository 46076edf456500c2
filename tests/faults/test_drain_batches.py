"""The drain closes sockets with 1012 in batches with a pause between them, so a
restarting process's clients do not all reconnect to the others in the same instant."""

from __future__ import annotations

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

    def close_soon(self, code: int, reason: str = "") -> None:
        self.closed_at, self.code = time.monotonic(), code
        self.hub.live.remove(self)


class FakeHub:
    def __init__(self, n: int) -> None:
        self.live = [FakeSession(self) for _ in range(n)]
        self.everyone = list(self.live)

    def all_sessions(self) -> list[FakeSession]:
        return list(self.live)


class FakeServices:
    def __init__(self, n: int) -> None:
        self.hub = FakeHub(n)


async def test_close_all_closes_everyone_1012_in_jittered_batches() -> None:
    services = FakeServices(50)
    await close_all(cast(Services, services), batch=10)
    sessions = services.hub.everyone
    assert all(s.code == 1012 for s in sessions)
    times = sorted(s.closed_at for s in sessions if s.closed_at is not None)
    batches = [times[i : i + 10] for i in range(0, 50, 10)]
    for batch in batches:
        assert batch[-1] - batch[0] < 0.015, "one batch goes out together"
    gaps = [b[0] - a[-1] for a, b in itertools.pairwise(batches)]
    assert all(0.015 <= g <= 0.2 for g in gaps), gaps
    assert max(gaps) - min(gaps) > 0.001, "the pause is jittered"
