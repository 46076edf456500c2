"""Redis killed and restarted empty; PostgreSQL stopped and started again. No web process
is restarted in either case."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
import redis.asyncio as redis

from chat.presence_redis import RedisPresence
from tests.faults.harness import Cluster, check_in_postgres, http_get, seat_participants
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow

TTL_S = 3.0


async def test_redis_killed_for_five_seconds_and_restarted_empty(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_PRESENCE_TTL_S": str(TTL_S), "PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=3)
    assert cluster.redis is not None
    sends = 60
    participants = await seat_participants(cluster, 12, sends)
    specialists = {p.user_id for p in participants if p.role == "specialist"}
    run = asyncio.gather(*(p.run(2 * sends, deadline_s=60, pace_s=0.2) for p in participants))
    await asyncio.sleep(1.5)

    cluster.redis.kill()
    acks_at_kill = sum(len(p.acked) for p in participants)
    await asyncio.sleep(5)
    acks_while_down = sum(len(p.acked) for p in participants) - acks_at_kill
    cluster.redis.start()  # same port, nothing on disk: empty
    restarted = time.monotonic()

    client = redis.Redis.from_url(cluster.redis.url)
    # Read as the service reads it (online_specialists names nobody by key).
    presence = RedisPresence(client, TTL_S, lambda role, sub: "")
    try:
        online: set[str] = set()
        while time.monotonic() - restarted < 10:
            online = await presence.online_specialists(time.time())
            if online >= specialists:
                break
            await asyncio.sleep(0.05)
        rebuilt_after = time.monotonic() - restarted
    finally:
        await client.aclose()
    assert online >= specialists
    assert rebuilt_after <= 2 * TTL_S / 3 + 1.0, f"presence rebuilt only after {rebuilt_after:.1f} s"

    await run
    caught_up = time.monotonic() - restarted
    for p in participants:
        assert not p.violations, p.violations[:5]
    counts = await check_in_postgres(cluster.database_url, participants, 2 * sends)
    assert acks_while_down >= len(participants) * 5, "sends kept committing and acking without Redis"
    assert cluster.logs().count("redis bus reconnected") >= 3, "every process's bus came back"
    _, metrics = http_get(cluster.web[0].http + "/metrics")
    assert "peerchat_bus_reconnects_total 1.0" in metrics
    print(
        f"\nRedis down 5 s: {acks_while_down} acks meanwhile; presence rebuilt {rebuilt_after:.2f} s after "
        f"restart; all {counts['messages']} messages delivered in order {caught_up:.1f} s after restart"
    )
    for p in participants:
        await p.close()


async def test_postgresql_stopped_for_ten_seconds(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=2)
    assert cluster.pg is not None
    participants = await seat_participants(cluster, 4, 10)
    await asyncio.gather(*(p.run(20, deadline_s=30) for p in participants))
    member = participants[0]
    assert member.ws is not None

    cluster.pg.stop()
    stopped = time.monotonic()
    refused: list[str] = []
    answers: list[dict[str, object]] = []
    i = 0
    while time.monotonic() - stopped < 10:
        cmid = f"down-{i}"
        i += 1
        frame = {
            "type": "send",
            "conversation_id": member.conversation_id,
            "client_msg_id": cmid,
            "body": "x",
        }
        before = len(member.errors), len(member.acked)
        await member.ws.send(msgspec.json.encode(frame).decode())
        await wait_until(lambda before=before: (len(member.errors), len(member.acked)) != before, 8, 0.01)
        answers.append({"cmid": cmid, "acked": cmid in member.acked, "errors": list(member.errors)})
        assert cmid not in member.acked, "an ack while PostgreSQL was down"
        assert member.errors and member.errors[-1] == "unavailable", answers[-1]
        refused.append(cmid)
        for svc in cluster.web:
            status, body = http_get(svc.http + "/readyz")
            assert status == 503 and "postgresql" in body and "redis" not in body, (status, body)
        await asyncio.sleep(0.5)
    cluster.pg.start()
    restarted = time.monotonic()

    # No restart of the web processes: the pools reconnect by themselves.
    while any(http_get(svc.http + "/readyz")[0] != 200 for svc in cluster.web):
        assert time.monotonic() - restarted < 15, "not ready again"
        await asyncio.sleep(0.1)
    ready_after = time.monotonic() - restarted
    # Every process commits again (each participant sits on its own process pair).
    for p in participants:
        p.sends += 5
    await asyncio.gather(*(p.run(30, deadline_s=20) for p in participants))
    for p in participants:
        assert not p.violations, p.violations[:5]
    counts = await check_in_postgres(cluster.database_url, participants, 30)
    print(
        f"\nPostgreSQL down 10 s: {len(refused)} sends answered `unavailable`, none acked or stored; "
        f"ready {ready_after:.2f} s after restart; {counts['messages']} messages in order"
    )
    for p in participants:
        await p.close()
