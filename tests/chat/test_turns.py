"""chat/upkeep/turns.py: the sweeps' turns, against the real test Redis (and one that is not
there), and the member grace's full rounds keeping one clock for every process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import redis.asyncio as redis

from chat.devservers import free_port
from chat.presence_memory import MemoryPresence
from chat.services import Services
from chat.store import members
from chat.upkeep.member_grace import MemberGrace
from chat.upkeep.turns import take_turn
from tests.chat.conftest import Pool
from tests.chat.test_grace import FakeServices, _request, _services


async def test_one_process_per_interval_takes_the_turn(redis_client: redis.Redis) -> None:
    assert await take_turn(redis_client, "sweep", 60.0)
    assert not await take_turn(redis_client, "sweep", 60.0), "the turn is taken for the interval"
    assert await take_turn(redis_client, "other-sweep", 60.0), "each sweep has its own turn"
    ttl_ms = await redis_client.pttl("pc:turn:sweep")
    assert 0 < ttl_ms <= 54_000, "a little less than the interval, so the next round finds it free"


async def test_without_redis_every_process_takes_the_turn() -> None:
    # Fail open: a round's PostgreSQL-only work (a warm transfer's expiry) must not wait for
    # Redis; the round's steps are compare-and-sets under its advisory lock.
    nobody = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, socket_timeout=1)
    try:
        assert await take_turn(nobody, "reconnect-grace", 1.0)
        assert await take_turn(nobody, "reconnect-grace", 1.0)
    finally:
        await nobody.aclose()


@dataclass
class ServicesWithRedis(FakeServices):
    redis: redis.Redis | None = None


def _process(db: Pool, database_url: str, client: redis.Redis) -> tuple[MemberGrace, ServicesWithRedis]:
    base = _services(db, database_url)
    s = ServicesWithRedis(base.settings, db, redis=client)
    return MemberGrace(cast(Services, s)), s


async def test_the_full_round_falls_to_whichever_process_has_the_turn_once_it_is_due(
    db: Pool, database_url: str, redis_client: redis.Redis
) -> None:
    # Two processes, one Redis. Each used to keep its own clock of full rounds: one that had
    # just found another's full round under way set its clock then, and when the full round
    # was due again and it had the interval's turn, its round was a light one (and the
    # process that was due waited for a turn of its own): a member whose process died was
    # noticed intervals late.
    every, full_every = 30.0, 60.0  # the turns outlast any stall; the test lapses them itself
    here, here_s = _process(db, database_url, redis_client)
    there, there_s = _process(db, database_url, redis_client)
    for s in (here_s, there_s):
        await s.presence.settled(0.0)  # presence has been up for longer than its TTL

    assert await here.take_round(every, full_every) is True, "the first round is full"
    assert await there.take_round(every, full_every) is None, "the interval's turn is taken"

    # The next interval (its turn lapses): `there` sweeps, while the full round is not due.
    await redis_client.delete("pc:turn:member-grace")
    assert await there.take_round(every, full_every) is False

    # Meanwhile a member's process died without a word: only a full round finds them.
    await _request(db, "m-gone")
    await redis_client.delete("pc:turn:member-grace")
    assert await there.take_round(every, full_every) is False
    assert await members.away_since(db) == {}

    # The full round's turn lapses: the next round is full, whoever runs it.
    await redis_client.delete("pc:turn:member-grace", "pc:turn:member-grace-full")
    assert await there.take_round(every, full_every) is True
    assert list(await members.away_since(db)) == ["m-gone"]


async def test_while_presence_is_steady_the_full_round_waits_for_a_quarter_of_the_grace(
    db: Pool, database_url: str, redis_client: redis.Redis
) -> None:
    """Full rounds find members whose process died without a word. With a lease per process
    (chat/process_lease.py) such a death shows in presence: while none did, the full round
    comes every `steady_every` only; once a lease ran out, every `full_every` again."""
    every, full_every, steady_every = 30.0, 60.0, 600.0  # the test lapses the turns itself
    grace, s = _process(db, database_url, redis_client)
    presence = s.presence
    assert isinstance(presence, MemoryPresence)
    await presence.settled(0.0)  # presence has been up for longer than its TTL

    assert await grace.take_round(every, full_every, steady_every) is True, "the first round is full"
    # A member whose close was never seen (its mark could not be written, say).
    await _request(db, "m-gone")
    await redis_client.delete("pc:turn:member-grace", "pc:turn:member-grace-full")
    assert await grace.take_round(every, full_every, steady_every) is False, "steady: not yet"
    assert await members.away_since(db) == {}

    # A process holding m-gone's socket stopped renewing its lease a moment ago.
    dead = MemoryPresence(presence.ttl_s, presence.board)
    await dead.connect("m-gone", "member", "c1", time.time() - presence.ttl_s - 5)
    await redis_client.delete("pc:turn:member-grace", "pc:turn:member-grace-full")
    assert await grace.take_round(every, full_every, steady_every) is True, "a process died: full"
    assert list(await members.away_since(db)) == ["m-gone"]


async def test_a_full_round_before_presence_is_steady_starts_the_steady_interval(
    db: Pool, database_url: str, redis_client: redis.Redis
) -> None:
    """After a start presence is not steady for a TTL, and the full rounds then come every
    `full_every`; the first full round once it is steady used to come at once all the same
    (the steady interval counted steady full rounds only). Any full round starts it."""
    every, full_every, steady_every = 30.0, 60.0, 600.0  # the test lapses the turns itself
    grace, s = _process(db, database_url, redis_client)
    presence = s.presence
    assert isinstance(presence, MemoryPresence)
    t0 = time.time()
    await presence.settled(t0)  # presence just came up
    assert not await presence.steady(t0, 3 * full_every)
    assert await grace.take_round(every, full_every, steady_every) is True, "the first round is full"

    presence.board.epoch = t0 - presence.ttl_s - 1  # a TTL later: steady now
    assert await presence.steady(time.time(), 3 * full_every)
    await redis_client.delete("pc:turn:member-grace", "pc:turn:member-grace-full")
    assert await grace.take_round(every, full_every, steady_every) is False, "a full round ran lately"

    # While not steady, a full round is due every `full_every`, the steady interval or not.
    presence.board.epoch = time.time()
    await redis_client.delete("pc:turn:member-grace", "pc:turn:member-grace-full")
    assert await grace.take_round(every, full_every, steady_every) is True


async def test_a_full_round_before_presence_settled_that_found_someone_offline_starts_no_steady_interval(
    db: Pool, database_url: str, redis_client: redis.Redis
) -> None:
    """A full round while presence has not settled (it just came up empty: the processes are
    still writing their sockets again) marks nobody away: a member it finds offline may only
    not be written back yet. A member whose process died meanwhile is then found by the next
    full round, once presence has settled: that one must still come at `full_every`, not a
    `steady_every` after the round that could not mark them."""
    every, full_every, steady_every = 30.0, 60.0, 600.0  # the test lapses the turns itself
    grace, s = _process(db, database_url, redis_client)
    presence = s.presence
    assert isinstance(presence, MemoryPresence)
    await presence.settled(time.time())  # presence just came up
    await _request(db, "m-gone")  # at stake; their process died with Redis: no socket anywhere
    assert await grace.take_round(every, full_every, steady_every) is True, "full"
    assert await members.away_since(db) == {}, "not settled: nobody marked yet"

    presence.board.epoch = time.time() - presence.ttl_s - 1  # a TTL later: settled and steady
    assert await presence.steady(time.time(), 3 * full_every)
    await redis_client.delete("pc:turn:member-grace", "pc:turn:member-grace-full")
    assert await grace.take_round(every, full_every, steady_every) is True, "the round that can mark"
    assert list(await members.away_since(db)) == ["m-gone"]
