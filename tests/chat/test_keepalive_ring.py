"""chat/gateway/keepalive.py's ring, alone: one socket whose keepalive raises is reported
and the ring goes on turning for every other socket."""

from __future__ import annotations

import asyncio
from typing import Any

from chat.gateway import keepalive


class _Sock:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.turns = 0

    def keepalive_due(self) -> bool:
        self.turns += 1
        if self.fails:
            raise RuntimeError("broken socket")
        return True


async def test_a_socket_whose_keepalive_raises_is_reported_and_the_ring_goes_on() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        ring = keepalive.Ring(loop, interval_s=1.0)  # one bucket: every turn looks at all
        broken, healthy = _Sock(fails=True), _Sock()
        slots = [ring.add(broken), ring.add(healthy)]
        await asyncio.sleep(keepalive.TICK_S * 2.5)
        assert healthy.turns >= 2, "the ring stopped after the failure"
        assert broken.turns >= 2
        assert reported and isinstance(reported[0]["exception"], RuntimeError)
        for sock, slot in zip((broken, healthy), slots, strict=True):
            ring.discard(sock, slot)
        await asyncio.sleep(keepalive.TICK_S * 1.2)
    finally:
        loop.set_exception_handler(None)
