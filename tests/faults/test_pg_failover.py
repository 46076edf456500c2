"""PostgreSQL primary failover (PRODUCT.md §11): DATABASE_URL lists a primary and its
streaming standby with target_session_attrs=read-write. While conversations run across
three web processes the primary is stopped (or killed), and a few seconds later the
standby promoted.
No web process is restarted."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from tests.faults.harness import (
    LEADER_LOCK,
    Cluster,
    Participant,
    check_in_postgres,
    http_get,
    presence_back,
    seat_participants,
)
from tests.support.flows import matched

pytestmark = pytest.mark.slow

GAP_S = 4.0  # how long there is no primary at all


def _acks(participants: list[Participant]) -> int:
    return sum(len(p.acked) for p in participants)


def _unavailable(participants: list[Participant]) -> int:
    return sum(p.errors.count("unavailable") for p in participants)


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_primary_lost_and_standby_promoted_loses_and_repeats_nothing(
    cluster: Cluster, how: str
) -> None:
    """`stop`: a fast shutdown (it sends the standby everything first). `kill`: SIGKILL to
    every PostgreSQL process at once, a crash: only synchronous replication keeps an acked
    commit, and a commit in flight may be on the standby without its ack having gone out
    (the client's resend of the same client_msg_id is then acked, not stored twice)."""
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=3, standby=True)
    assert cluster.pg is not None and cluster.standby is not None
    sends = 40
    participants = await seat_participants(cluster, 8, sends)
    specialists = {p.user_id for p in participants if p.role == "specialist"}
    run = asyncio.gather(
        *(p.run(2 * sends, deadline_s=150, pace_s=0.25, resend_after=1.0) for p in participants)
    )
    # Wait for traffic to flow, rather than for a time.
    deadline = time.monotonic() + 30
    while _acks(participants) < len(participants) * 3:
        assert time.monotonic() < deadline, "no traffic before the failover"
        await asyncio.sleep(0.05)

    # Returns once the server has exited.
    await asyncio.to_thread(cluster.pg.stop if how == "stop" else cluster.pg.kill)
    stopped = time.monotonic()
    # Acks for commits that completed just before the stop may still be on the wire.
    await asyncio.sleep(0.5)
    acks_no_primary = _acks(participants)
    refused_before = _unavailable(participants)
    for svc in cluster.web:
        status, body = http_get(svc.http + "/readyz")
        assert status == 503 and "postgresql" in body, (status, body)
    await asyncio.sleep(GAP_S - 0.5)
    # With no writable host, nothing was acked (never a false ack) and sends were refused.
    assert _acks(participants) == acks_no_primary, "an ack while there was no primary"
    refused = _unavailable(participants) - refused_before
    assert refused >= len(participants) // 2, f"only {refused} sends answered `unavailable`"

    await asyncio.to_thread(cluster.standby.promote)
    promoted = time.monotonic()
    while _acks(participants) == acks_no_primary:
        assert time.monotonic() - promoted < 20, "no ack after the promotion"
        await asyncio.sleep(0.02)
    first_ack_after = time.monotonic() - promoted
    while any(http_get(svc.http + "/readyz")[0] != 200 for svc in cluster.web):
        assert time.monotonic() - promoted < 20, "not every process ready after the promotion"
        await asyncio.sleep(0.1)
    all_ready_after = time.monotonic() - promoted
    # Presence as a supervisor sees it, from every process (its roster reads PostgreSQL).
    await presence_back(cluster, specialists, 20)
    presence_after = time.monotonic() - promoted
    assert presence_after <= 10, f"presence whole only {presence_after:.1f} s after"

    await run
    done_after = time.monotonic() - promoted
    # Matching follows too: the leader's lock connection died with the old primary, and
    # exactly one process leads again on the new one (a request is matched).
    pair = await matched(cluster.web[2], member_id="after-member", specialist_id="after-spec")
    await pair.close()
    new_primary = await asyncpg.connect(cluster.database_url)
    try:
        locks = await new_primary.fetchval(f"SELECT count(*) FROM pg_locks WHERE {LEADER_LOCK}")
    finally:
        await new_primary.close()
    assert locks == 1, f"{locks} matching leaders on the new primary"
    for p in participants:
        assert not p.violations, p.violations[:5]
    # Read from the new primary (the old one is down; the URL finds the writable host).
    counts = await check_in_postgres(cluster.database_url, participants, 2 * sends)
    assert counts["acked"] == len(participants) * sends
    # Every process wrote again after the promotion (each pair of devices spans two).
    print(
        f"\nPostgreSQL failover ({how}): no primary for {promoted - stopped:.1f} s, {refused} sends answered "
        f"`unavailable` meanwhile, none acked; first ack {first_ack_after:.2f} s after the promotion, "
        f"all 3 processes ready {all_ready_after:.2f} s after it, presence whole on all of them "
        f"{presence_after:.2f} s after it; all {counts['messages']} messages "
        f"stored once and delivered in order {done_after:.1f} s after it"
    )
    for p in participants:
        await p.close()
