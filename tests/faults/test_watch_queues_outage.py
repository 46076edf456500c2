"""A supervisor's `watch_queues` answers at once while Redis hangs (PRODUCT.md §5:
`queue_stats` "now"). Its reply used to wait for the subscribe's confirmation (≤ 2 s) and
then for Redis's list of who is online (the client's socket timeout) before it was sent.
Once Redis is back the supervisor hears changes as before."""

from __future__ import annotations

import time

import pytest

from chat.bus_redis import CONFIRM_TIMEOUT_S
from tests.faults.harness import Cluster, hung
from tests.support.client import Client, token

pytestmark = pytest.mark.slow


async def test_watch_queues_answers_at_once_while_redis_hangs(cluster: Cluster) -> None:
    await cluster.start(processes=1)
    assert cluster.redis is not None and cluster.redis.proc is not None
    (svc,) = cluster.web
    specialist, _ = await Client.connect(svc.ws, token("specialist", "s-hang", "Spe"))
    await specialist.settled()
    member, _ = await Client.connect(svc.ws, token("member", "m-hang", "Sam"))
    await member.call({"type": "request"}, "queued")
    supervisor, _ = await Client.connect(svc.ws, token("supervisor", "sup-hang", "Sue"))
    await supervisor.settled()

    # SIGSTOP: Redis's connections stay open and nothing is answered.
    with hung(cluster.redis.proc.pid):
        began = time.monotonic()
        first = await supervisor.call({"type": "watch_queues"}, "queue_stats", timeout=30)
        took = time.monotonic() - began
    # Before: never under CONFIRM_TIMEOUT_S (the subscribe's wait alone). Now PostgreSQL
    # reads and a bounded wait for Redis, with room for a loaded machine.
    assert took < CONFIRM_TIMEOUT_S * 0.75, f"the first queue_stats took {took:.2f} s"
    assert first["waiting"] == 1, first
    # Who is online without Redis: the specialist has a socket on this process.
    # (Zero counts are left out of the frame.)
    assert sum(first["specialists"].get(k, 0) for k in ("available", "busy", "away")) == 1, first

    # Subscribed after all: a later change reaches the supervisor through the broadcasts.
    other, _ = await Client.connect(svc.ws, token("member", "m-later", "Lee"))
    await other.call({"type": "request"}, "queued", timeout=30)
    await supervisor.expect("queue_stats", where=lambda f: f["waiting"] == 2, timeout=30)
    for client in (specialist, member, other, supervisor):
        await client.close()
