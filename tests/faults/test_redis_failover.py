"""Redis failovers while conversations run across three web processes (PRODUCT.md §11):
the master under Sentinel killed, a cluster master killed (its replica promoted), and slots
moved between cluster masters under traffic, all on Debian's Redis 7
(tests/support/redis_topology.py). No web process is restarted. Each asserts what §11
promises: no acked message lost, none stored or delivered twice, every device gap-free by
seq, presence back on every process within seconds, delivery prompt again within 15 s of
the promotion; and prints the times (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from chat.devredis import RedisNode
from tests.faults.harness import (
    Cluster,
    Participant,
    check_in_postgres,
    delivery_after,
    http_get,
    presence_back,
    seat_participants,
)

pytestmark = pytest.mark.slow

SENDS = 30
CONVERSATIONS = 6
RESUME_S = 15.0  # PRODUCT.md §11: delivery resumes within 15 s of the promotion
PRESENCE_S = 10.0
ENV = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000", "PEERCHAT_PRESENCE_TTL_S": "3"}


def _report(title: str, *facts: str) -> None:
    print(f"\n{title}: " + "; ".join(facts))


def _one_way(participants: list[Participant]) -> list[Participant]:
    return [p for p in participants if p.sends in (0, 2 * SENDS)]


def _acks(participants: list[Participant]) -> int:
    return sum(len(p.acked) for p in participants)


async def _traffic(cluster: Cluster) -> tuple[list[Participant], asyncio.Future[list[None]]]:
    """Conversations across the processes; in half of them only the member writes (all
    2 x SENDS messages), so what the specialist gets rides on the bus alone (a device that
    writes too would be caught up by its own sends, which hides a stalled bus)."""
    participants = await seat_participants(cluster, CONVERSATIONS, SENDS)
    for i in range(0, len(participants), 4):
        member, specialist = participants[i], participants[i + 1]
        assert (member.role, specialist.role) == ("member", "specialist")
        member.sends, specialist.sends = 2 * SENDS, 0
    run = asyncio.gather(
        *(p.run(2 * SENDS, deadline_s=120, pace_s=0.25, resend_after=1.0) for p in participants)
    )
    deadline = time.monotonic() + 30
    while _acks(participants) < len(participants) * 3:
        assert time.monotonic() < deadline, "no traffic before the fault"
        await asyncio.sleep(0.05)
    return participants, run


async def _verify(cluster: Cluster, participants: list[Participant], run: asyncio.Future[list[None]]) -> int:
    """Everything sent was acked, stored once in order and delivered gap-free to both sides."""
    await run
    for p in participants:
        assert not p.violations, p.violations[:5]
    counts = await check_in_postgres(cluster.database_url, participants, 2 * SENDS)
    assert counts["acked"] == len(participants) * SENDS
    assert all(http_get(svc.http + "/readyz")[0] == 200 for svc in cluster.web)
    for p in participants:
        await p.close()
    return counts["messages"]


async def _master_killed(
    cluster: Cluster,
    traffic: tuple[list[Participant], asyncio.Future[list[None]]],
    kill: Callable[[], RedisNode],
    promotion: Callable[[RedisNode], RedisNode],
    title: str,
    promoted_as: str,
) -> None:
    """`kill` the master under `traffic`, wait for the `promotion` of another node, then hold
    what PRODUCT.md §11 promises and print the times."""
    participants, run = traffic
    specialists = {p.user_id for p in participants if p.role == "specialist"}

    killed = time.monotonic()
    old = await asyncio.to_thread(kill)
    new = await asyncio.to_thread(promotion, old)
    promoted = time.monotonic()
    assert new is not old
    presence_s = await presence_back(cluster, specialists, PRESENCE_S + 20)
    messages = await _verify(cluster, participants, run)
    assert all(n >= 1 for n in _bus_reconnects(cluster)), "a process's bus never noticed the failover"
    d = delivery_after(_one_way(participants), killed)
    assert d.messages > 0
    assert d.recovered_after_s - (promoted - killed) <= RESUME_S, d
    assert presence_s <= PRESENCE_S, f"presence back only {presence_s:.1f} s after the promotion"
    _report(
        title,
        f"{promoted_as} {promoted - killed:.1f} s later",
        f"one-way deliveries prompt again {d.recovered_after_s:.1f} s after the kill",
        f"worst ack→delivery {d.max_latency_s:.2f} s",
        f"presence whole on all 3 processes {presence_s:.1f} s after the promotion",
        f"{messages} messages, none lost or twice",
    )


async def test_sentinel_master_killed(cluster: Cluster) -> None:
    cluster.env = dict(ENV)
    await cluster.start(processes=3, redis="sentinel")
    s = cluster.sentinel
    assert s is not None
    traffic = await _traffic(cluster)
    await _master_killed(
        cluster, traffic, s.kill_master, s.wait_for_promotion, "Sentinel master killed", "promoted"
    )


async def test_cluster_master_killed(cluster: Cluster) -> None:
    cluster.env = dict(ENV)
    await cluster.start(processes=3, redis="cluster")
    c = cluster.redis_cluster
    assert c is not None
    traffic = await _traffic(cluster)
    slot = await asyncio.to_thread(_slot_to_kill, cluster)
    await _master_killed(
        cluster,
        traffic,
        lambda: c.kill_master(slot),
        lambda old: c.wait_for_promotion(old, slot),
        "Cluster master killed",
        "replica promoted",
    )


def _partition_slots(cluster: Cluster, each: int, by_all: bool = False) -> list[int]:
    """The slots of up to `each` of the bus's live sharded channels (partitions), those
    with the most subscribers first; `by_all`: the first is subscribed by every process
    (a broadcast channel's partition: they are held on demand, chat/bus_cluster.py)."""
    c = cluster.redis_cluster
    assert c is not None
    subscribed: list[tuple[int, int]] = []
    for master in c.master_nodes():
        channels = master.command("PUBSUB", "SHARDCHANNELS")
        if channels:
            numsub = master.command("PUBSUB", "SHARDNUMSUB", *channels)
            subscribed += [(int(n), c.slot_of(ch)) for ch, n in zip(numsub[::2], numsub[1::2], strict=True)]
    subscribed.sort(reverse=True)
    if by_all:
        assert subscribed and subscribed[0][0] == len(cluster.web), subscribed
    return list(dict.fromkeys(slot for _, slot in subscribed))[:each]


def _slot_to_kill(cluster: Cluster) -> int:
    """A slot of the master to kill: one with a partition every process subscribes (a
    broadcast channel's), so each process's bus has something on it to recover (partitions
    are held on demand), and of those the one with the most partitions in use (people's)."""
    c = cluster.redis_cluster
    assert c is not None
    best: tuple[int, int] | None = None
    for master in c.master_nodes():
        channels = master.command("PUBSUB", "SHARDCHANNELS")
        if not channels:
            continue
        numsub = [int(n) for n in master.command("PUBSUB", "SHARDNUMSUB", *channels)[1::2]]
        if max(numsub) == len(cluster.web) and (best is None or len(channels) > best[0]):
            best = (len(channels), c.slot_of(channels[numsub.index(max(numsub))]))
    assert best is not None, "no partition is subscribed by every process"
    return best[1]


def _busy_slots(cluster: Cluster, each: int = 3) -> tuple[list[int], list[int]]:
    """Slots worth moving: `each` of the bus's live sharded channels' (their subscribers
    are told SUNSUBSCRIBE when it moves; the first is every process's) and `each` of the
    keys' in use (presence, caps)."""
    c = cluster.redis_cluster
    assert c is not None
    channels = _partition_slots(cluster, each, by_all=True)
    keys: list[int] = []
    for master in c.master_nodes():
        for key in master.command("SCAN", 0, "COUNT", 1000)[1]:
            keys.append(c.slot_of(key))
    keys = [slot for slot in dict.fromkeys(keys) if slot not in channels][:each]
    return channels, keys


def _bus_reconnects(cluster: Cluster) -> list[float]:
    """peerchat_bus_reconnects_total of each process: the fault reached its bus."""
    counts = []
    for svc in cluster.web:
        _, metrics = http_get(svc.http + "/metrics")
        line = next(x for x in metrics.splitlines() if x.startswith("peerchat_bus_reconnects_total "))
        counts.append(float(line.split()[1]))
    return counts


async def test_cluster_slots_move_while_traffic_flows(cluster: Cluster) -> None:
    cluster.env = dict(ENV)
    await cluster.start(processes=3, redis="cluster")
    c = cluster.redis_cluster
    assert c is not None
    participants, run = await _traffic(cluster)
    specialists = {p.user_id for p in participants if p.role == "specialist"}

    channel_slots, key_slots = await asyncio.to_thread(_busy_slots, cluster)
    assert channel_slots, "no sharded channel in use"
    assert key_slots, "no key in use"
    started = time.monotonic()
    moved_keys = 0
    moves = [*channel_slots, *key_slots]
    for slot in moves:  # each to the next master along
        masters = await asyncio.to_thread(c.master_nodes)
        source = await asyncio.to_thread(c.master_of_slot, slot)
        target = masters[(masters.index(source) + 1) % len(masters)]
        moved_keys += await asyncio.to_thread(c.migrate_slot, slot, target)
        assert await asyncio.to_thread(c.master_of_slot, slot) is target
    moving_s = time.monotonic() - started
    presence_s = await presence_back(cluster, specialists, PRESENCE_S + 20)
    messages = await _verify(cluster, participants, run)
    d = delivery_after(_one_way(participants), started)
    assert d.messages > 0
    assert d.recovered_after_s <= moving_s + RESUME_S, d
    assert moved_keys > 0
    assert all(n >= 1 for n in _bus_reconnects(cluster)), "a process's bus never noticed a partition move"
    _report(
        "Cluster slots moved under traffic",
        f"{len(moves)} slots ({len(channel_slots)} bus partitions', {moved_keys} keys) in {moving_s:.1f} s",
        f"one-way deliveries prompt again {d.recovered_after_s:.1f} s after the first move",
        f"worst ack→delivery {d.max_latency_s:.2f} s",
        f"presence whole {presence_s:.1f} s after the last",
        f"{messages} messages, none lost or twice",
    )
