"""chat/privacy/forgetting.py: after an erasure on one process, no process keeps the
member's account id in memory (PRODUCT.md §10): not in the socket cap's or the hub's
keyed-name caches, not in a remembered revocation (which still refuses their old tokens),
not in a conversation's cached pair. Two processes on one memory exchange, PostgreSQL and
Redis real; a specialist with the same `sub` is another person and stays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as redis

from chat import handoff
from chat.admission import Admission
from chat.bus_memory import MemoryBus, MemoryExchange
from chat.config import Settings
from chat.delivery.hub import Hub
from chat.people import Participants, Person, member, specialist
from chat.privacy import forgetting
from chat.redis_keys import identity_key
from chat.revocations import ERASED, Revocations
from chat.seal import Sealer, seal_key
from chat.services import Services
from chat.socket_cap import SocketCap
from chat.store import revocations as revocations_store
from chat.tokens import Identity
from tests.chat.conftest import Pool

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="f" * 32)


@dataclass
class Process:
    """What the forgetting reads of a process's `Services`."""

    settings: Settings
    bus: MemoryBus
    hub: Hub
    admission: Admission
    cap: SocketCap
    participants: dict[str, Participants] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        return cast(Services, self)

    def remembered(self) -> set[tuple[str, str]]:
        """Every (role, sub) this process holds in the caches an erasure must reach."""
        held: set[tuple[str, str]] = {(p.role, p.id) for p in self.hub._channels._names}
        held |= set(self.cap._keys)
        held |= set(self.admission.revocations._latest)
        held |= {(p.role, p.id) for pair in self.participants.values() for p in pair}
        return held


async def _process(exchange: MemoryExchange, db: Pool, client: redis.Redis) -> Process:
    bus = MemoryBus(exchange)
    hub = Hub(
        bus, lambda role, sub: identity_key(SETTINGS, role, sub), Sealer(seal_key(SETTINGS.identity_hmac_key))
    )
    cap = SocketCap(client, SETTINGS)
    proc = Process(SETTINGS, bus, hub, Admission(SETTINGS, Revocations(db, bus, SETTINGS), cap), cap)

    def on_bus(channel: str, data: bytes) -> None:  # as chat/lifespan.py routes them
        if channel == forgetting.CHANNEL:
            forgetting.on_bus(proc.services, data)
        elif channel == handoff.PARTICIPANTS_CHANNEL:
            handoff.on_bus(proc.services, data)
        else:
            hub.on_bus(channel, data)

    async def reconnected(only: frozenset[str] | None = None) -> None:
        return None

    await bus.start(on_bus, reconnected)
    await bus.subscribe(forgetting.CHANNEL)
    await bus.subscribe(handoff.PARTICIPANTS_CHANNEL)
    return proc


async def test_an_erasure_on_one_process_leaves_no_account_id_cached_on_any(
    db: Pool, redis_client: redis.Redis
) -> None:
    exchange = MemoryExchange()
    here, there = await _process(exchange, db, redis_client), await _process(exchange, db, redis_client)
    gone, kept, namesake = member("acct-gone"), member("acct-kept"), specialist("acct-gone")
    people: list[Person] = [gone, kept, namesake]
    for n, proc in enumerate((here, there)):
        for person in people:
            proc.hub.channel(person)
            assert await proc.cap.take(person.role, person.id, f"s{n}-{person.role}")
        proc.participants["c-gone"] = (gone, specialist("spec-1"))
        proc.participants["c-kept"] = (kept, specialist("spec-1"))
    revoked = await revocations_store.add(
        db,
        role="member",
        sub="acct-gone",
        actor_id="sup",
        actor_role="supervisor",
        actor_name="Lee",
        reason="",
    )
    await there.admission.revocations.catch_up()
    old_token = Identity("acct-gone", "member", "Sam", issued_at=revoked.revoked_at.timestamp() - 60)
    assert there.admission.refuses(old_token)
    assert ("member", "acct-gone") in there.remembered()

    await forgetting.forget_everywhere(here.services, "acct-gone", ["c-gone"])

    keyed = identity_key(SETTINGS, "member", "acct-gone")
    for proc in (here, there):
        remembered = proc.remembered()
        assert ("member", "acct-gone") not in remembered
        # Everyone else stays cached: the other member, the specialist of the same sub.
        assert {("member", "acct-kept"), ("specialist", "acct-gone"), ("specialist", "spec-1")} <= remembered
        assert set(proc.participants) == {"c-kept"}
    # The revocation is kept by the keyed name alone, and still refuses their old tokens.
    assert ("member", ERASED + keyed) in there.remembered()
    assert there.admission.refuses(old_token)
    assert not there.admission.refuses(
        Identity("acct-gone", "member", "Sam", issued_at=revoked.revoked_at.timestamp() + 60)
    )
    # Nothing on the bus named them: the ring carried the HMAC.
    assert not any("acct-gone" in channel for channel in exchange.subscribers)
