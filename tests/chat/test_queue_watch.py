"""`queue_watch` (chat/handlers/queue.py) and the process's one subscription to the queue
broadcasts: a second watch that comes, and whose socket closes, while the first watch's
subscribe waits for its confirmation must not leave the process unsubscribed with the
first watcher attached. The window is held open by a bus that confirms when told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from chat.bus_memory import MemoryBus, MemoryExchange
from chat.config import Settings
from chat.delivery.hub import QUEUE_CHANNEL, Hub
from chat.gateway.session import Session
from chat.handlers.queue import on_queue_watch
from chat.redis_keys import identity_key
from chat.seal import Sealer, seal_key
from chat.services import Services
from protocol import frames as f
from tests.chat.conftest import Pool
from tests.chat.test_session import Wire, settle

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="q" * 32)


class HeldConfirmations(MemoryBus):
    """Like chat/bus_redis.py: a subscribe records its channel at once (a second subscribe of
    it returns at once) and returns when Redis confirms it, here when `confirm` is set; an
    unsubscribe sent before the confirmation wins, as Redis applies them in order."""

    def __init__(self, exchange: MemoryExchange) -> None:
        super().__init__(exchange)
        self.channels: set[str] = set()
        self.confirm = asyncio.Event()

    async def subscribe(self, channel: str) -> None:
        if channel in self.channels:
            return
        self.channels.add(channel)
        await self.confirm.wait()
        if channel in self.channels:
            await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await super().unsubscribe(channel)


@dataclass
class WatchServices:
    """What `on_queue_watch` uses of `Services`: PostgreSQL, the hub and its bus, and the
    word to the leader (counted)."""

    db: Pool
    hub: Hub
    bus: HeldConfirmations
    told_leader: list[int] = field(default_factory=list)

    async def queue_watched(self) -> None:
        self.told_leader.append(1)


async def _hub(bus: MemoryBus) -> Hub:
    """A `web` process's hub: every process of a cluster shares the names and the key."""
    hub = Hub(
        bus, lambda role, sub: identity_key(SETTINGS, role, sub), Sealer(seal_key(SETTINGS.identity_hmac_key))
    )

    async def reconnected(only: frozenset[str] | None = None) -> None:
        hub.catch_up_everyone()

    await bus.start(hub.on_bus, reconnected)
    return hub


def _watcher(user_id: str) -> tuple[Session, Wire]:
    wire = Wire()
    session = Session(
        user_id=user_id,
        role="specialist",
        name=user_id,
        send_text=wire.send_text,
        close_socket=wire.close_socket,
        backfill=wire.backfill,
        max_queue=50,
    )
    session.start()
    return session, wire


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_second_watch_closing_within_the_first_subscribe_leaves_the_first_watcher_heard(
    db: Pool,
) -> None:
    exchange = MemoryExchange()
    bus = HeldConfirmations(exchange)
    hub = await _hub(bus)
    leader_bus = MemoryBus(exchange)
    leader = await _hub(leader_bus)
    services = WatchServices(db, hub, bus)
    first, first_wire = _watcher("spec-first")
    second, second_wire = _watcher("spec-second")

    async def watch(session: Session, ref: str) -> None:
        await on_queue_watch(cast(Services, services), session, f.QueueWatch(ref=ref))

    # The first watch's subscribe waits for its confirmation...
    watching = asyncio.create_task(watch(first, "a"))
    await _until(lambda: QUEUE_CHANNEL in bus.channels)
    # ...the second watch is answered meanwhile, and its socket closes.
    await watch(second, "b")
    await _until(lambda: any(m["type"] == "queue" for m in second_wire.sent))
    await hub.detach(second)
    bus.confirm.set()
    await asyncio.wait_for(watching, 10)

    assert hub.queue_watchers == {first}
    assert bus.confirmed(QUEUE_CHANNEL), "the process stopped listening with a watcher attached"
    assert services.told_leader == [1]
    # The first watcher had its answer and hears the leader's next queue.
    await _until(lambda: [m.get("ref") for m in first_wire.sent if m["type"] == "queue"] == ["a"])
    entry = f.QueueEntry(request_id="r-1", tags=["grief"], language=None, waited_s=3, priority="normal")
    await leader.broadcast(QUEUE_CHANNEL, f.Queue(requests=[entry]))
    await settle()
    await _until(lambda: len([m for m in first_wire.sent if m["type"] == "queue"]) == 2)
    heard = [m for m in first_wire.sent if m["type"] == "queue"][-1]
    assert [e["request_id"] for e in cast(list[dict[str, Any]], heard["requests"])] == ["r-1"]
    await leader_bus.close()
    await bus.close()
