"""One contract for every presence backend (chat/presence.py): the memory one and the
Redis one (against the real test Redis, a Sentinel set's master, and a 3-master cluster,
where writes are pipelines split per master) must answer every question the same way.

Sockets count under their process's lease (chat/process_lease.py), so a `World` makes
several processes over one store: a process that stops beating is one that died or
stalled, and `wipe` is Redis restarting empty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as redis

from chat import redisconn
from chat.config import Settings
from chat.presence import Presence
from chat.presence_memory import Board, MemoryPresence
from chat.presence_redis import RedisPresence
from chat.redis_keys import identity_key
from tests.support.redis_topology import RedisClusterSet, SentinelSet

TTL = 30.0
SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="p" * 32)


def name(role: str, sub: str) -> str:
    return identity_key(SETTINGS, role, sub)


@dataclass
class World:
    kind: str
    process: Callable[[], Presence]  # another process over the same store
    wipe: Callable[[], Awaitable[object]]  # the store restarts empty


@pytest.fixture(params=["memory", "redis", "sentinel", "cluster"])
async def world(request: pytest.FixtureRequest, redis_client: redis.Redis) -> AsyncIterator[World]:
    # Every backend takes a flushed Redis, so each case starts from nothing.
    if request.param == "memory":
        board = Board()

        async def wipe_board() -> None:
            board.wipe()

        yield World("memory", lambda: MemoryPresence(TTL, board), wipe_board)
    elif request.param == "redis":
        yield World("redis", lambda: RedisPresence(redis_client, TTL, name), redis_client.flushall)
    else:
        topology: SentinelSet | RedisClusterSet = request.getfixturevalue(
            "shared_sentinels" if request.param == "sentinel" else "shared_cluster"
        )
        client = redisconn.client(redisconn.parse(topology.url))
        await client.flushall()
        yield World(request.param, lambda: RedisPresence(client, TTL, name), client.flushall)
        await client.aclose()


@pytest.fixture
def presence(world: World) -> Presence:
    return world.process()


@pytest.fixture
def t0() -> float:
    # Redis keys also carry a real expiry (twice the TTL), so the logical clock starts now.
    return time.time()


async def test_a_connected_user_is_online_until_the_ttl_passes(presence: Presence, t0: float) -> None:
    assert not await presence.is_online("u1", "member", t0)
    await presence.connect("u1", "member", "c1", t0)
    assert await presence.is_online("u1", "member", t0)
    assert await presence.is_online("u1", "member", t0 + TTL - 1)
    assert not await presence.is_online("u1", "member", t0 + TTL + 1)
    assert not await presence.is_online("someone-else", "member", t0)


async def test_heartbeats_keep_leases_alive(presence: Presence, t0: float) -> None:
    await presence.connect("s1", "specialist", "c1", t0)
    await presence.heartbeat([("s1", "specialist", "c1")], t0 + 20)
    assert await presence.is_online("s1", "specialist", t0 + 40)
    assert await presence.online_specialists(t0 + 40) == {"s1"}
    assert await presence.online_specialists(t0 + 20 + TTL + 1) == set()


async def test_a_heartbeat_recreates_leases_it_has_never_seen(presence: Presence, t0: float) -> None:
    """After a Redis wipe the process still holds its sockets: the next heartbeat restores them."""
    await presence.heartbeat([("s1", "specialist", "c1"), ("m1", "member", "c2")], t0)
    assert await presence.is_online("s1", "specialist", t0) and await presence.is_online("m1", "member", t0)
    assert await presence.online_specialists(t0) == {"s1"}
    await presence.heartbeat([], t0)  # nothing to renew is fine


async def test_only_specialists_are_listed(world: World, t0: float) -> None:
    presence, later = world.process(), world.process()
    await presence.connect("m1", "member", "a", t0)
    await presence.connect("sup", "supervisor", "b", t0)
    await presence.connect("s1", "specialist", "c", t0)
    await later.connect("s2", "specialist", "d", t0 + 10)
    assert await presence.online_specialists(t0) == {"s1", "s2"}
    assert await presence.online_specialists(t0 + TTL + 5) == {"s2"}, "the first process stopped beating"


async def test_disconnect_reports_whether_the_user_is_gone(presence: Presence, t0: float) -> None:
    await presence.connect("s1", "specialist", "phone", t0)
    await presence.connect("s1", "specialist", "laptop", t0 + 1)
    assert await presence.disconnect("s1", "specialist", "phone", t0 + 2) is False
    assert await presence.is_online("s1", "specialist", t0 + 2)
    assert await presence.online_specialists(t0 + 2) == {"s1"}
    assert await presence.disconnect("s1", "specialist", "laptop", t0 + 3) is True
    assert not await presence.is_online("s1", "specialist", t0 + 3)
    assert await presence.online_specialists(t0 + 3) == set()


async def test_an_expired_lease_does_not_keep_a_user_online(world: World, t0: float) -> None:
    """A dead process's socket ages out: closing the last live one makes the user gone."""
    dead, live = world.process(), world.process()
    await dead.connect("s1", "specialist", "dead-process", t0)
    await live.connect("s1", "specialist", "live", t0 + TTL)
    assert await live.disconnect("s1", "specialist", "live", t0 + TTL + 1) is True
    assert await live.online_specialists(t0 + TTL + 1) == set()
    assert not await dead.is_online("s1", "specialist", t0 + TTL + 1)


async def test_the_horizon_follows_the_remaining_lease(world: World, t0: float) -> None:
    presence, other = world.process(), world.process()
    await presence.connect("s1", "specialist", "early", t0)
    await other.connect("s1", "specialist", "late", t0 + 20)
    assert await other.disconnect("s1", "specialist", "late", t0 + 21) is False
    # Only the early socket remains, on a process last renewed at t0: online until
    # t0 + TTL, not t0 + 20 + TTL.
    assert await presence.online_specialists(t0 + TTL - 1) == {"s1"}
    assert await presence.online_specialists(t0 + TTL + 1) == set()
    assert not await presence.is_online("s1", "specialist", t0 + TTL + 1)


async def test_disconnecting_an_unknown_lease_is_harmless(presence: Presence, t0: float) -> None:
    assert await presence.disconnect("ghost", "member", "c", t0) is True
    await presence.connect("m1", "member", "c1", t0)
    assert await presence.disconnect("m1", "member", "other", t0) is False
    assert await presence.is_online("m1", "member", t0)


async def test_reconnecting_renews_the_same_lease(presence: Presence, t0: float) -> None:
    await presence.connect("m1", "member", "c1", t0)
    await presence.connect("m1", "member", "c1", t0 + 25)
    assert await presence.is_online("m1", "member", t0 + 50)
    assert await presence.disconnect("m1", "member", "c1", t0 + 50) is True


async def test_a_specialists_absence_counts_from_their_last_disconnect(presence: Presence, t0: float) -> None:
    await presence.connect("s1", "specialist", "c1", t0)
    assert await presence.absent_since(["s1"], t0 + 1, mark=False) == {}, "online: not absent"
    await presence.disconnect("s1", "specialist", "c1", t0 + 2)
    assert await presence.absent_since(["s1"], t0 + 10, mark=False) == {"s1": (t0 + 2, False)}
    assert await presence.absent_since(["s1"], t0 + 20, mark=True) == {"s1": (t0 + 2, False)}, (
        "already marked: the first time stands"
    )
    # Coming back clears it, whether by a new socket or a heartbeat after a Redis wipe.
    await presence.connect("s1", "specialist", "c2", t0 + 30)
    assert await presence.absent_since(["s1"], t0 + 31, mark=False) == {}
    await presence.disconnect("s1", "specialist", "c2", t0 + 32)
    await presence.heartbeat([("s1", "specialist", "c3")], t0 + 33)
    assert await presence.absent_since(["s1"], t0 + 34, mark=False) == {}


async def test_a_members_disconnect_marks_nothing(presence: Presence, t0: float) -> None:
    await presence.connect("m1", "member", "c1", t0)
    assert await presence.disconnect("m1", "member", "c1", t0 + 1) is True
    assert await presence.absent_since(["m1"], t0 + 2, mark=False) == {}


async def test_marking_absence_has_exactly_one_winner(presence: Presence, t0: float) -> None:
    """Specialists whose process died never disconnected: whoever notices first marks them."""
    assert await presence.absent_since([], t0, mark=True) == {}
    assert await presence.absent_since(["s1", "s2"], t0, mark=False) == {}, "unmarked are left out"
    results = await asyncio.gather(
        *(presence.absent_since(["s1", "s2"], t0 + i, mark=True) for i in range(10))
    )
    for user in ("s1", "s2"):
        winners = [r[user] for r in results if r[user][1]]
        assert len(winners) == 1, user
        since = winners[0][0]
        assert all(r[user] == (since, r[user][1]) for r in results)
    # A mixed call: one already marked, one new.
    mixed = await presence.absent_since(["s1", "s3"], t0 + 50, mark=True)
    assert mixed["s1"][1] is False and mixed["s3"] == (t0 + 50, True)


async def test_settled_only_one_ttl_after_the_store_first_answered(presence: Presence, t0: float) -> None:
    assert await presence.settled(t0) is False
    assert await presence.settled(t0 + TTL - 1) is False
    assert await presence.settled(t0 + TTL) is True
    assert await presence.settled(t0 + 10 * TTL) is True


async def test_a_heartbeat_of_thousands_renews_every_lease(presence: Presence, t0: float) -> None:
    """A process takes on all its sockets at once: more than one chunk of the Redis script."""
    leases = [(f"m{i}", "member", f"cm{i}") for i in range(1_100)]
    leases += [(f"s{i}", "specialist", f"cs{i}") for i in range(400)]
    await presence.heartbeat(leases, t0)
    await presence.heartbeat(leases, t0 + 20)
    assert await presence.online_specialists(t0 + 40) == {f"s{i}" for i in range(400)}
    for user in ("m0", "m499", "m500", "m1099", "s0", "s399"):
        assert await presence.is_online(user, "specialist" if user.startswith("s") else "member", t0 + 40), (
            user
        )
        assert not await presence.is_online(
            user, "specialist" if user.startswith("s") else "member", t0 + 20 + TTL + 1
        ), user


async def test_a_late_heartbeat_never_shortens_a_processs_lease(presence: Presence, t0: float) -> None:
    await presence.heartbeat([("s1", "specialist", "c1"), ("s1", "specialist", "c2")], t0 + 20)
    await presence.heartbeat([("s1", "specialist", "c1")], t0)  # an older renewal arriving late
    assert await presence.online_specialists(t0 + 40) == {"s1"}


async def test_a_member_and_a_specialist_with_one_sub_are_two_people(presence: Presence, t0: float) -> None:
    """PRODUCT.md §4: presence is keyed by (role, sub)."""
    await presence.connect("same", "specialist", "c1", t0)
    assert await presence.is_online("same", "specialist", t0)
    assert not await presence.is_online("same", "member", t0)
    await presence.connect("same", "member", "c2", t0)
    assert await presence.disconnect("same", "member", "c2", t0 + 1) is True, "the member is gone"
    assert await presence.is_online("same", "specialist", t0 + 1), "the specialist is not"
    assert await presence.online_specialists(t0 + 1) == {"same"}
    await presence.forget("same", "member")
    assert await presence.is_online("same", "specialist", t0 + 1), (
        "forgetting the member spares the specialist"
    )


async def test_redis_keys_name_no_account_id(redis_client: redis.Redis, t0: float) -> None:
    presence = RedisPresence(redis_client, TTL, name)
    await presence.connect("acct-4711", "member", "c1", t0)
    await presence.connect("spec-9", "specialist", "c2", t0)
    await presence.heartbeat([], t0 + 1)
    await presence.disconnect("spec-9", "specialist", "c2", t0 + 1)
    keys = [k.decode() if isinstance(k, bytes) else k for k in await redis_client.keys("*")]
    assert any(name("member", "acct-4711") in k for k in keys), keys
    assert not [k for k in keys if "4711" in k or "spec-9" in k], keys
    for key in keys:
        if (await redis_client.type(key)) == b"zset":
            assert b"acct-4711" not in await redis_client.zrange(key, 0, -1)


async def test_forget_drops_every_trace_of_a_user(presence: Presence, t0: float) -> None:
    """An erasure (PRODUCT.md §10): no lease, no absence mark, no listing; others untouched."""
    await presence.connect("s1", "specialist", "c1", t0)
    await presence.connect("s2", "specialist", "c2", t0)
    await presence.disconnect("s1", "specialist", "c1", t0 + 1)
    assert await presence.absent_since(["s1"], t0 + 2, mark=False)
    await presence.connect("m1", "member", "c3", t0)
    await presence.forget("s1", "specialist")
    await presence.forget("m1", "member")
    assert not await presence.is_online("m1", "member", t0)
    assert await presence.absent_since(["s1"], t0 + 2, mark=False) == {}
    assert await presence.online_specialists(t0) == {"s2"}
    await presence.forget("never-seen", "member")  # nothing to forget is fine


async def test_online_among_answers_for_thousands_in_one_call(presence: Presence, t0: float) -> None:
    # The member-grace sweep asks about every waiting or chatting member at once; the answer
    # must match is_online for each, per role, and expire with the lease.
    members = [f"m{i}" for i in range(1200)]
    for m in members[::3]:
        await presence.connect(m, "member", f"c-{m}", t0)
    await presence.connect("m1", "specialist", "c-spec", t0)  # same sub, another person
    online = await presence.online_among(members, "member", t0 + 1)
    assert online == set(members[::3])
    assert "m1" not in online
    assert await presence.online_among(["m1", "m2"], "specialist", t0 + 1) == {"m1"}
    assert await presence.online_among(members, "member", t0 + TTL + 1) == set()
    assert await presence.online_among([], "member", t0) == set()


async def test_a_process_that_dies_takes_only_its_own_sockets_offline(world: World, t0: float) -> None:
    """PRODUCT.md §5: a specialist with no device connected counts offline once the TTL
    passes, also when their process died without a word; people on live processes stay."""
    dies, lives = world.process(), world.process()
    await dies.connect("s1", "specialist", "c1", t0)
    await dies.connect("m1", "member", "c2", t0)
    await lives.connect("s2", "specialist", "c3", t0)
    await lives.connect("m2", "member", "c4", t0)
    await lives.connect("s3", "specialist", "c5", t0)
    await dies.connect("s3", "specialist", "c6", t0)  # on both
    for beat in (10.0, 20.0, 30.0, 40.0):  # `dies` never beats again
        await lives.heartbeat(
            [("s2", "specialist", "c3"), ("m2", "member", "c4"), ("s3", "specialist", "c5")], t0 + beat
        )
    assert await lives.online_specialists(t0 + TTL - 1) == {"s1", "s2", "s3"}
    after = t0 + TTL + 1
    assert await lives.online_specialists(after) == {"s2", "s3"}
    assert await lives.online_among(["m1", "m2"], "member", after) == {"m2"}
    assert not await lives.is_online("s1", "specialist", after)
    assert await lives.absent_since(["s1"], after, mark=True) == {"s1": (after, True)}
    # The surviving socket of s3 closes: gone, though the dead process never said so.
    assert await lives.disconnect("s3", "specialist", "c5", after + 1) is True
    assert await lives.online_specialists(after + 1) == {"s2"}


async def test_a_specialist_on_two_processes_stays_online_until_both_close(world: World, t0: float) -> None:
    a, b = world.process(), world.process()
    await a.connect("s1", "specialist", "phone", t0)
    await a.connect("s1", "specialist", "tablet", t0)
    await b.connect("s1", "specialist", "laptop", t0)
    assert await a.disconnect("s1", "specialist", "phone", t0 + 1) is False
    assert await a.disconnect("s1", "specialist", "tablet", t0 + 1) is False
    assert await b.online_specialists(t0 + 2) == {"s1"}, "still on b"
    assert await b.disconnect("s1", "specialist", "laptop", t0 + 3) is True
    assert await a.online_specialists(t0 + 3) == set()
    assert await a.absent_since(["s1"], t0 + 4, mark=False) == {"s1": (t0 + 3, False)}


async def test_after_a_wipe_the_next_beat_writes_every_socket_again(world: World, t0: float) -> None:
    """Redis restarted empty: each process finds its lease gone at its next beat and writes
    all its sockets, specialists and their absence marks again."""
    a, b = world.process(), world.process()
    await a.connect("s1", "specialist", "c1", t0)
    await a.connect("m1", "member", "c2", t0)
    await b.connect("m2", "member", "c3", t0)
    await world.wipe()
    assert await a.online_specialists(t0 + 1) == set()
    assert await a.online_among(["m1", "m2"], "member", t0 + 1) == set()
    assert not await a.settled(t0 + 1), "came up empty: absence not trusted yet"
    await a.absent_since(["s1"], t0 + 1, mark=True)  # a sweep that did not wait
    await a.heartbeat([("s1", "specialist", "c1"), ("m1", "member", "c2")], t0 + 10)
    await b.heartbeat([("m2", "member", "c3")], t0 + 10)
    assert await b.online_specialists(t0 + 11) == {"s1"}
    assert await b.online_among(["m1", "m2"], "member", t0 + 11) == {"m1", "m2"}
    assert await b.absent_since(["s1"], t0 + 11, mark=False) == {}, "its mark went with the rewrite"
    assert await a.disconnect("m1", "member", "c2", t0 + 12) is True


async def test_a_process_that_stalled_past_its_lease_comes_back_whole(world: World, t0: float) -> None:
    """A process whose loop stalled past the TTL counted as dead meanwhile (and others may
    have dropped its sockets as a dead process's); its next beat writes them all again."""
    stalled, other = world.process(), world.process()
    await stalled.connect("s1", "specialist", "c1", t0)
    await stalled.connect("m1", "member", "c2", t0)
    await other.connect("m1", "member", "c3", t0 + TTL)
    late = t0 + TTL + 5
    assert await other.online_specialists(late) == set()
    assert await other.absent_since(["s1"], late, mark=True) == {"s1": (late, True)}
    # Closing m1's other socket meets the stalled process's member and drops it as dead.
    assert await other.disconnect("m1", "member", "c3", late) is True
    await stalled.heartbeat([("s1", "specialist", "c1"), ("m1", "member", "c2")], late + 1)
    assert await other.online_specialists(late + 2) == {"s1"}
    assert await other.is_online("m1", "member", late + 2)
    assert await other.absent_since(["s1"], late + 2, mark=False) == {}


async def test_a_stalled_process_names_the_specialists_whose_absence_its_return_took_back(
    world: World, t0: float
) -> None:
    """While a process stalled, a sweep elsewhere marked its specialists absent (and told
    their members `reconnecting`). Its rewrite removes the marks, and `returned` names
    those specialists once, so their members are told `connected` again: the socket never
    closed, so no connect would. A specialist with no mark, or no socket here any more, is
    not named; nor is one whose mark a fresh connect removed (the connect tells them)."""
    stalled, other = world.process(), world.process()
    await stalled.connect("s1", "specialist", "c1", t0)
    await stalled.connect("s2", "specialist", "c2", t0)
    await stalled.connect("s3", "specialist", "c3", t0)
    assert stalled.returned() == []
    late = t0 + TTL + 5
    assert await other.absent_since(["s1", "s3"], late, mark=True) == {"s1": (late, True), "s3": (late, True)}
    await stalled.disconnect("s3", "specialist", "c3", late + 0.5)  # closed while marked: gone
    await stalled.heartbeat([], late + 1)
    assert stalled.returned() == ["s1"]
    assert stalled.returned() == [], "named once"
    assert await other.absent_since(["s1", "s2"], late + 2, mark=False) == {}
    # A connect removes a mark too, but the connect itself tells the members.
    await other.absent_since(["s4"], late + 2, mark=True)
    await stalled.connect("s4", "specialist", "c4", late + 2)
    await stalled.heartbeat([], late + 3)
    assert stalled.returned() == []


async def test_an_idle_beat_writes_nothing_per_socket(redis_client: redis.Redis, t0: float) -> None:
    """The point of a lease per process: a beat with nothing new is a few commands in
    Redis whatever the number of sockets (it was four per socket)."""
    presence = RedisPresence(redis_client, TTL, name)
    sockets = [(f"m{i}", "member", f"c{i}") for i in range(1_000)]
    sockets += [(f"s{i}", "specialist", f"cs{i}") for i in range(200)]
    for user_id, role, conn_id in sockets:
        await presence.connect(user_id, role, conn_id, t0)
    await presence.heartbeat(sockets, t0 + 10)
    before = await _commands(redis_client)
    for beat in (20.0, 30.0, 40.0):
        await presence.heartbeat(sockets, t0 + beat)
    assert await _commands(redis_client) - before <= 3 * 6, "a few commands per beat"
    assert await presence.online_among(["m0", "m999"], "member", t0 + 40 + TTL - 1) == {"m0", "m999"}
    assert len(await presence.online_specialists(t0 + 40)) == 200


async def _commands(client: redis.Redis) -> int:
    """Commands Redis ran so far, those inside scripts included, but for INFO itself."""
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def test_a_removal_lost_by_a_failover_is_repeated_by_the_next_rewrite(
    redis_client: redis.Redis, t0: float
) -> None:
    """A Sentinel failover may lose the old master's last writes: the bus reconnecting
    marks the lease suspect (chat/lifespan.py), and the next beat writes every socket here
    again and repeats the removals of the last minutes."""
    presence = RedisPresence(redis_client, TTL, name)
    await presence.connect("s1", "specialist", "c1", t0)
    await presence.connect("m1", "member", "c2", t0)
    await presence.disconnect("s1", "specialist", "c1", t0 + 1)
    # As if the new master never saw the disconnect: its member and the roster entry back.
    proc = presence.lease.id
    await redis_client.zadd(f"pc:presence:user:{name('specialist', 's1')}", {f"{proc}|c1": t0 + TTL})
    await redis_client.sadd(f"{{pc:presence}}:proc:{proc}:specialists", "s1")
    assert await presence.online_specialists(t0 + 2) == {"s1"}
    presence.lease.suspect()
    await presence.heartbeat([("m1", "member", "c2")], t0 + 3)
    assert await presence.online_specialists(t0 + 4) == set()
    assert not await presence.is_online("s1", "specialist", t0 + 4)
    assert await presence.is_online("m1", "member", t0 + 4)


async def test_sockets_connected_during_a_rewrite_are_kept(redis_client: redis.Redis, t0: float) -> None:
    """Connects and closes interleaved with a rewrite of thousands (several chunks, the loop
    free between them) end as they should: a socket connected after the rewrite listed its
    sockets is written all the same, one closed meanwhile stays closed."""
    presence = RedisPresence(redis_client, TTL, name)
    sockets = [(f"m{i}", "member", f"c{i}") for i in range(1_500)]
    await presence.heartbeat(sockets, t0)
    presence.lease.suspect()
    await asyncio.gather(*(redis_client.ping() for _ in range(4)))  # connections to spare
    beat = asyncio.ensure_future(presence.heartbeat(sockets, t0 + 10))
    # Until the rewrite's first chunk is in flight (a flag, not an event: it is the
    # backend's own state, polled each loop turn).
    while not presence._rewriting:  # noqa: ASYNC110
        await asyncio.sleep(0)
    # m1499 is in the last chunk, not written yet: its removal reaches Redis first.
    await presence.disconnect("m1499", "member", "c1499", t0 + 10)
    await presence.connect("late", "member", "cl", t0 + 10)
    await beat
    assert await presence.online_among(["late", "m0", "m1499"], "member", t0 + 11) == {"late", "m0"}


async def test_the_specialists_mark_moves_with_every_unpoked_change(world: World, t0: float) -> None:
    """`specialists_mark` is what an idle matchmaker reads instead of every online
    specialist (chat/matchmaker.py `_unpoked_change`): it must move whenever the online
    specialists change without a poke (a process's lease starting or lapsing, a Redis
    that came back empty and the rewrite after it), and stay while nothing changed (a
    beat renewing a lease is no change)."""
    a, b = world.process(), world.process()
    await a.connect("s1", "specialist", "c1", t0)
    await b.connect("s2", "specialist", "c2", t0 + 10)
    online, mark = await a.specialists_marked(t0 + 11)
    assert online == {"s1", "s2"}
    assert await b.specialists_mark(t0 + 11) == mark, "read together or alone, the same"
    await a.heartbeat([], t0 + 12)
    await b.heartbeat([], t0 + 12)
    assert await a.specialists_mark(t0 + 13) == mark, "renewals change nothing"
    # b's process dies: nobody pokes; its lease lapses at t0 + 12 + TTL.
    await a.heartbeat([], t0 + 25)
    lapsed = t0 + 12 + TTL + 1
    online, after = await a.specialists_marked(lapsed)
    assert online == {"s1"} and after != mark, "a lapsed lease moves the mark"
    # Redis comes back empty, then each live process's beat writes its sockets again.
    await world.wipe()
    assert await a.specialists_mark(lapsed) != after
    await a.heartbeat([], lapsed + 1)
    online, rebuilt = await a.specialists_marked(lapsed + 2)
    assert online == {"s1"}
    assert await a.specialists_mark(lapsed + 2) == rebuilt
    # A new process's first specialist moves it too (and pokes, besides).
    c = world.process()
    await c.connect("s3", "specialist", "c3", lapsed + 3)
    assert await c.specialists_mark(lapsed + 3) != rebuilt


async def test_a_rewrite_that_changes_the_specialists_set_moves_the_mark(
    redis_client: redis.Redis, t0: float
) -> None:
    """A connect whose write failed and a close whose removal failed (Redis down a moment)
    are written by the next rewrite, and nothing pokes the matchmaker: one in and one out
    leaves the set's size as it was, so the set's generation must move."""
    presence = RedisPresence(redis_client, TTL, name)
    await presence.connect("s1", "specialist", "c1", t0)
    await presence.connect("s2", "specialist", "c2", t0)
    proc = presence.lease.id
    here = f"{{pc:presence}}:proc:{proc}:specialists"
    # As Redis holds it when s2's write never landed and s9's close never did.
    await redis_client.srem(here, "s2")
    await redis_client.sadd(here, "s9")
    online, mark = await presence.specialists_marked(t0 + 1)
    assert online == {"s1", "s9"}
    presence._mine.failed()  # what the failed writes recorded: the next beat rewrites
    await presence.heartbeat([], t0 + 2)
    online, after = await presence.specialists_marked(t0 + 3)
    assert online == {"s1", "s2"}
    assert after != mark, "same size, other members: the generation moved"
    # A rewrite that finds the set as it should be moves nothing.
    presence._mine.failed()
    await presence.heartbeat([], t0 + 4)
    assert await presence.specialists_mark(t0 + 5) == after


async def test_steady_while_no_lease_ran_out_lately(world: World, t0: float) -> None:
    """`steady`: nobody can have gone without a close being seen. Not before presence has
    settled, nor while a process's lease ran out within the window."""
    a, b = world.process(), world.process()
    assert not await a.steady(t0, 90), "the store just came up: leases may be missing"
    await a.settled(t0)
    assert not await a.steady(t0 + TTL - 1, 90), "not settled yet"
    assert await a.steady(t0 + TTL, 90)
    assert await a.steady(t0 + 100, 90)
    await a.connect("m1", "member", "c1", t0 + 100)
    await b.connect("m2", "member", "c2", t0 + 100)
    await b.heartbeat([("m2", "member", "c2")], t0 + 100 + TTL)  # `a` stops beating
    assert not await b.steady(t0 + 100 + TTL + 5, 90), "a's lease ran out 5 s ago"
    for beat in (20, 40, 60, 80):
        await b.heartbeat([("m2", "member", "c2")], t0 + 100 + TTL + beat)
    assert await b.steady(t0 + 100 + TTL + 95, 90), "... 95 s ago: outside the window"
    # `lapses`: what `steady` is made of, the moment presence came up as a value.
    assert await b.lapses(t0 + 100 + TTL + 5, 90) == (1, t0)
    assert await b.lapses(t0 + 100 + TTL + 95, 90) == (0, t0)
    await world.wipe()
    assert not await b.steady(t0 + 300, 90)
    assert await b.lapses(t0 + 300, 90) == (0, None), "came up empty: not noted yet"
    await a.settled(t0 + 301)
    assert await b.lapses(t0 + 302, 90) == (0, t0 + 301)


async def test_departures_move_when_a_specialist_goes_offline_by_a_close(world: World, t0: float) -> None:
    """The reconnect grace skips a turn only while this count stands still (and presence is
    steady): it must move whenever a specialist's last socket anywhere closes."""
    a, b = world.process(), world.process()
    before = await a.departures()
    await a.connect("s1", "specialist", "c1", t0)
    await b.connect("s1", "specialist", "c2", t0)
    await a.connect("m1", "member", "c3", t0)
    assert await a.disconnect("s1", "specialist", "c1", t0 + 1) is False
    assert await a.disconnect("m1", "member", "c3", t0 + 1) is True
    assert await b.departures() == before, "still online on b; members do not count"
    assert await b.disconnect("s1", "specialist", "c2", t0 + 2) is True
    assert await a.departures() != before
