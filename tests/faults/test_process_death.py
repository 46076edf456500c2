"""A web process dies (SIGKILL) or is told to stop (SIGTERM) in the middle of the load."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.faults.harness import (
    Cluster,
    Participant,
    alive,
    check_in_postgres,
    http_get,
    seat_participants,
)
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow

EACH_WAY = 60


async def _load(cluster: Cluster, conversations: int) -> list[Participant]:
    def live_urls() -> list[str]:
        return [svc.ws for svc in cluster.web if alive(svc)]

    return await seat_participants(cluster, conversations, EACH_WAY, urls=live_urls)


def _acked(participants: list[Participant]) -> int:
    return sum(len(p.acked) for p in participants)


async def test_sigkill_loses_no_acked_message_and_its_clients_resume_elsewhere(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000", "PEERCHAT_PRESENCE_TTL_S": "3"}
    await cluster.start(processes=3)
    participants = await _load(cluster, 20)
    victim = cluster.web[0]
    on_victim = [p for p in participants if p.url == victim.ws]
    total = 2 * EACH_WAY
    run = asyncio.gather(*(p.run(total, deadline_s=90) for p in participants))
    await wait_until(lambda: _acked(participants) >= len(participants) * EACH_WAY * 0.4, 30, 0.02)
    acked_before = _acked(participants)
    victim.kill()
    killed_at = time.monotonic()
    await run
    elapsed = time.monotonic() - killed_at

    for p in participants:
        assert not p.violations, p.violations[:5]
    for p in on_victim:
        assert p.reconnects >= 1 and p.url != victim.ws, "moved to a live process"
    counts = await check_in_postgres(cluster.database_url, participants, total)
    print(
        f"\nSIGKILL after {acked_before} acks; {len(on_victim)} devices moved; "
        f"{counts['messages']} messages, all {counts['acked']} acks in PostgreSQL; "
        f"finished {elapsed:.1f} s later"
    )
    for p in participants:
        await p.close()


async def test_sigterm_closes_with_1012_and_loses_nothing_accepted(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=2)
    participants = await _load(cluster, 10)
    leaving = cluster.web[0]
    on_leaving = [p for p in participants if p.url == leaving.ws]
    total = 2 * EACH_WAY
    run = asyncio.gather(*(p.run(total, deadline_s=60) for p in participants))
    await wait_until(lambda: _acked(participants) >= len(participants) * EACH_WAY * 0.3, 30, 0.02)
    leaving.signal(signal.SIGTERM)
    # Its few sockets close within ~0.1 s; /readyz must still say so for a while after.
    await asyncio.sleep(0.5)
    status, body = http_get(leaving.http + "/readyz")
    assert status == 503 and "draining" in body, (status, body)
    assert leaving.proc is not None
    code = await asyncio.to_thread(leaving.proc.wait, 20)
    assert code in (0, -signal.SIGTERM), code
    await run

    for p in on_leaving:
        assert p.close_codes[0] == 1012, p.close_codes
    for p in participants:
        assert not p.violations, p.violations[:5]
    counts = await check_in_postgres(cluster.database_url, participants, total)
    log = leaving.output()
    assert "draining" in log and "Traceback" not in log
    print(f"\nSIGTERM: {len(on_leaving)} sockets closed 1012; {counts['messages']} messages, none lost")
    for p in participants:
        await p.close()
