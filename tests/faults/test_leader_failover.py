"""The matching leader dies (SIGKILL): another process leads within a few seconds
(docs/matching.md, chat/matchmaker.py: "another takes over within 2 s"), matching goes on,
and no request is ever on offer twice at once. With three processes, the second leader is
killed too, and the last process leads (PRODUCT.md §11: within 10 s)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.faults.harness import Cluster, alive
from tests.support.client import Client, token
from tests.support.servers import LiveService, wait_until

pytestmark = pytest.mark.slow

LEADS = "this process now leads matching"
SPECIALISTS = 3
MEMBERS_BEFORE, MEMBERS_AFTER = 4, 4


def leaders(cluster: Cluster) -> list[LiveService]:
    return [svc for svc in cluster.web if alive(svc) and LEADS in svc.output()]


async def accept_every_offer(specialist: Client) -> None:
    # Until cancelled, or until its process is killed under it (the second kill).
    with contextlib.suppress(AssertionError, ConnectionClosed):
        while True:
            offer = await specialist.expect("offer", timeout=120)
            await specialist.send({"type": "accept", "offer_id": offer["offer_id"]})


async def test_the_leader_dies_another_leads_and_no_request_is_offered_twice(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_OFFER_TIMEOUT_S": "4", "PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=3)
    await wait_until(lambda: len(leaders(cluster)) == 1, 30, 0.1)
    (leader,) = leaders(cluster)
    others = [svc for svc in cluster.web if svc is not leader]

    # Everyone connects to processes that survive: only the matchmaker is under test.
    supervisor = token("supervisor", "sup-1", "Lee")
    async with httpx.AsyncClient(base_url=others[0].http) as http:
        for i in range(SPECIALISTS):
            r = await http.put(
                f"/api/specialists/spec-{i}",
                headers={"Authorization": f"Bearer {supervisor}"},
                json={"name": f"Spec {i}", "tags": [], "languages": ["en"], "max_chats": 10},
            )
            assert r.status_code == 200, r.text
    specialists = []
    for i in range(SPECIALISTS):
        client, _ = await Client.connect(others[i % 2].ws, token("specialist", f"spec-{i}", f"Spec {i}"))
        reply = await client.call({"type": "availability", "status": "available"}, "availability")
        assert reply["status"] == "available"
        specialists.append(client)
    accepting = [asyncio.create_task(accept_every_offer(s)) for s in specialists]

    members: list[Client] = []

    async def request(n: int) -> None:
        client, _ = await Client.connect(others[n % 2].ws, token("member", f"m-{n}", f"M{n}"))
        queued = await client.call({"type": "request", "tags": []}, "queued")
        assert queued["type"] == "queued", queued
        members.append(client)

    try:
        # Requests in flight when the leader dies: some offered by it, some not yet.
        for n in range(MEMBERS_BEFORE):
            await request(n)
        leader.kill()
        killed_at = time.monotonic()
        await wait_until(lambda: len(leaders(cluster)) == 1, 30, 0.05)
        took_over_s = time.monotonic() - killed_at
        for n in range(MEMBERS_BEFORE, MEMBERS_BEFORE + MEMBERS_AFTER):
            await request(n)
        for m in members:  # every member is matched, whoever led when they asked
            started = await m.expect("conversation_started", timeout=60)
            assert started["conversation"]["specialist"]["id"].startswith("spec-")
        # Documented: within 2 s (the election interval). Generous here for a loaded box.
        assert took_over_s < 10, took_over_s

        # The second leader dies too: the third process, which has never led, takes over,
        # and a member asking now is matched with a specialist on it.
        (second,) = leaders(cluster)
        (last,) = [svc for svc in others if svc is not second]
        second.kill()
        killed_at = time.monotonic()
        await wait_until(lambda: leaders(cluster) == [last], 30, 0.05)
        third_took_over_s = time.monotonic() - killed_at
        assert third_took_over_s < 10, third_took_over_s
        late, _ = await Client.connect(last.ws, token("member", "m-late", "Late"))
        members.append(late)
        queued = await late.call({"type": "request", "tags": []}, "queued")
        assert queued["type"] == "queued", queued
        # An offer to a specialist who died with `second` expires first (their lease is
        # still fresh); the one on `last` accepts.
        started = await late.expect("conversation_started", timeout=60)
        assert started["conversation"]["specialist"]["id"].startswith("spec-")
        print(
            f"\nleader killed; another led {took_over_s:.2f} s later; "
            f"that one killed; the last led {third_took_over_s:.2f} s later"
        )
    finally:
        for task in accepting:
            task.cancel()
        for client in [*specialists, *members]:
            with contextlib.suppress(Exception):
                await client.close()

    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch(
            "SELECT request_id, state, created_at, decided_at FROM offers ORDER BY request_id, created_at"
        )
        assigned = await conn.fetchval("SELECT count(*) FROM requests WHERE state = 'assigned'")
    finally:
        await conn.close()
    assert assigned == MEMBERS_BEFORE + MEMBERS_AFTER + 1
    by_request: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_request.setdefault(row["request_id"], []).append(row)
    for request_id, offers in by_request.items():
        assert [o["state"] for o in offers].count("accepted") == 1, (request_id, offers)
        for earlier, later in itertools.pairwise(offers):
            # An offer is made only after the one before it was decided (declined, expired,
            # revoked): never two at once, whichever process led.
            assert earlier["decided_at"] is not None and earlier["decided_at"] <= later["created_at"], (
                request_id,
                offers,
            )
