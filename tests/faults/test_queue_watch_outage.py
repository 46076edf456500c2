"""The matching leader stops building the queue while its last publish reached no process
(chat/delivery/watchers.py) and starts again when a process says it has a first watcher.
A watcher that came while Redis was down could not say so, and a publish made before the
watchers' processes were back reached nobody: after the outage the leader must hear the
queue is watched again, not leave the watcher on the 10 s resend. And a watcher's first
`queue` never waits on Redis."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from chat.bus_redis import CONFIRM_TIMEOUT_S
from tests.faults.harness import Cluster, alive, http_get, hung
from tests.support.client import Client, token
from tests.support.servers import LiveService, wait_until

pytestmark = pytest.mark.slow

LEADS = "this process now leads matching"


def _metric(svc: LiveService, name: str) -> float:
    status, text = http_get(svc.http + "/metrics")
    assert status == 200, text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"no {name} in /metrics"
    return float(found.group(1))


async def test_a_watcher_who_came_during_a_redis_outage_hears_the_next_request_at_once(
    cluster: Cluster,
) -> None:
    cluster.env = {"PEERCHAT_PRESENCE_TTL_S": "3"}
    await cluster.start(processes=2)
    assert cluster.redis is not None
    await wait_until(lambda: sum(LEADS in s.output() for s in cluster.web if alive(s)) == 1, 30, 0.1)
    (leader,) = [s for s in cluster.web if LEADS in s.output()]
    (other,) = [s for s in cluster.web if s is not leader]
    # Nobody watches the queue: the leader's first publish of it reached no process, so it
    # has stopped building it.
    poker, _ = await Client.connect(leader.ws, token("specialist", "poker", "Po"))
    watcher, _ = await Client.connect(other.ws, token("specialist", "watcher", "Wat"))

    cluster.redis.kill()
    await wait_until(lambda: all(_metric(s, "peerchat_bus_down") == 1 for s in cluster.web), 20, 0.1)
    reconnects = {s.port: _metric(s, "peerchat_bus_reconnects_total") for s in cluster.web}
    # The first watcher on its process: its word to the leader is lost with Redis.
    first = await watcher.call({"type": "queue_watch"}, "queue", timeout=30)
    assert first["requests"] == [], first

    # Two cycles of the leader 10.5 s apart (a status change wakes it without Redis): the
    # second falls due for the 10 s resend, lost with Redis too, so its next resend is 10 s
    # from then, well after the request below.
    for status in ("available", "away"):
        await poker.call({"type": "availability", "status": status}, "availability", timeout=30)
        if status == "available":
            await asyncio.sleep(10.5)
    resent_at = time.monotonic()
    # Held while the publisher retries (PUBLISHER_RETRY_S), that resend then fails for good:
    # sent once Redis is back, it could have reached the watcher's process by luck.
    await asyncio.sleep(1.0)

    cluster.redis.start()
    await wait_until(
        lambda: all(_metric(s, "peerchat_bus_reconnects_total") > reconnects[s.port] for s in cluster.web),
        20,
        0.1,
    )
    member, _ = await Client.connect(leader.ws, token("member", "m-after", "Sam"))
    queued = await member.call({"type": "request"}, "queued")
    rid = queued["request_id"]
    asked_at = time.monotonic()
    # The leader's next resend comes no sooner than 10 s after the last: a frame before
    # then is the fix's doing, not the resend's.
    window = min(4.0, resent_at + 9.5 - asked_at)
    assert window >= 2, f"Redis came back too slowly ({asked_at - resent_at:.1f} s) to tell the two apart"
    # Before the fix the watcher heard of it only at the leader's next 10 s resend.
    seen = await watcher.expect(
        "queue", where=lambda f: rid in {e["request_id"] for e in f["requests"]}, timeout=window
    )
    assert "ref" not in seen
    for client in (poker, watcher, member):
        await client.close()


async def test_queue_watch_answers_at_once_while_redis_hangs(cluster: Cluster) -> None:
    """PRODUCT.md §5: `queue` "now". The watcher's first reply is read from PostgreSQL; it
    used to wait for the subscribe's confirmation (≤ 2 s) and the word to the leader (≤ 2 s
    more) while a hung Redis (SIGSTOP: connections open, nothing answered) held both. Once
    Redis is back the watcher hears changes as before."""
    await cluster.start(processes=1)
    assert cluster.redis is not None and cluster.redis.proc is not None
    (svc,) = cluster.web
    member, _ = await Client.connect(svc.ws, token("member", "m-hang", "Sam"))
    rid = (await member.call({"type": "request"}, "queued"))["request_id"]
    watcher, _ = await Client.connect(svc.ws, token("specialist", "s-hang", "Wat"))
    await watcher.settled()

    with hung(cluster.redis.proc.pid):
        began = time.monotonic()
        first = await watcher.call({"type": "queue_watch"}, "queue", timeout=30)
        took = time.monotonic() - began
    assert [e["request_id"] for e in first["requests"]] == [rid], first
    # Before: never under CONFIRM_TIMEOUT_S (the subscribe's wait alone; 5.95 s measured).
    # Now a PostgreSQL read and a frame: milliseconds, with room for a loaded machine.
    assert took < CONFIRM_TIMEOUT_S * 0.75, f"the first queue took {took:.2f} s"

    # Subscribed after all: a later request reaches the watcher through the broadcasts.
    other, _ = await Client.connect(svc.ws, token("member", "m-later", "Lee"))
    later = (await other.call({"type": "request"}, "queued", timeout=30))["request_id"]
    await watcher.expect(
        "queue", where=lambda f: later in {e["request_id"] for e in f["requests"]}, timeout=30
    )
    for client in (member, other, watcher):
        await client.close()
