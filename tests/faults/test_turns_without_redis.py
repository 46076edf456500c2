"""The sweeps take turns in Redis (chat/upkeep/turns.py). Without Redis every process takes
the turn (fail open), so the PostgreSQL-only part of a round goes on: a warm transfer whose
expiry timer died with its process expires while Redis is down, not once it is back."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Cluster
from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.flows import matched, put_profile
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow


async def test_a_warm_transfer_whose_process_died_expires_while_redis_is_down(cluster: Cluster) -> None:
    # A presence TTL of 3 s: the reconnect grace sweeps every second (sweep_interval).
    cluster.env = {"PEERCHAT_OFFER_TIMEOUT_S": "2", "PEERCHAT_PRESENCE_TTL_S": "3"}
    await cluster.start(processes=2)
    assert cluster.redis is not None
    a, b = cluster.web
    await put_profile(b, "turn-target", name="Ben", tags=["grief"])
    ben, _ = await Client.connect(b.ws, token("specialist", "turn-target", "Ben"))
    await ben.settled()
    pair = await matched(a, member_id="acct-turn", specialist_id="turn-sender")
    conv = pair.conversation_id
    asked = await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "turn-target", "note": "n"}, "transfer"
    )
    assert asked["state"] == "waiting", asked
    await ben.expect("offer", timeout=20)

    a.kill()  # the offer's expiry timer dies with the process that set it
    cluster.redis.kill()
    killed = time.monotonic()

    async def state() -> list[str]:
        rows = await fetch(
            cluster.database_url, "SELECT state FROM transfers WHERE conversation_id = $1", conv
        )
        return [r["state"] for r in rows]

    async def expired() -> bool:
        return await state() == ["expired"]

    # Before the fix, no process took the reconnect grace's turn without Redis: the
    # transfer stayed `offered` for as long as Redis was down.
    await wait_until(expired, timeout=40, every=0.2)
    took = time.monotonic() - killed
    assert cluster.redis is not None and not cluster.redis.alive, "expired while Redis was still down"
    cluster.redis.start()
    await ben.close()
    print(f"\nwarm transfer expired {took:.1f} s after its process and Redis were killed, Redis still down")
