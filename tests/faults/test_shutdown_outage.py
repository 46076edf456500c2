"""SIGTERM while PostgreSQL and Redis hang: the process still exits, in bounded time.

An orchestrator stops a process when something is wrong, and a backend that stopped
answering is exactly when that happens. A hung server (SIGSTOP here; a partition or a
stuck disk in life) keeps its connections open and answers nothing, so every graceful
close that waits for an answer would wait for good: the drain bounds each of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import msgspec
import psutil
import pytest

from tests.faults.harness import Cluster, http_get, seat_participants

pytestmark = pytest.mark.slow

# The last commits (≤ 5 s) and their connection (≤ 2 s), the matchmaker (≤ 2 + 2 s), then
# Redis and the pool together (≤ 3 s): 14 s measured. Before the bounds it had not exited
# after a minute; an orchestrator's default grace is 30 s.
EXIT_WITHIN_S = 20.0


def _freeze(pid: int) -> list[int]:
    pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    return pids


def _sends_read(http: str) -> float:
    """`send` frames the process has read (its /metrics, which reads no backend)."""
    _, metrics = http_get(http + "/metrics")
    for line in metrics.splitlines():
        if line.startswith('peerchat_frames_in_total{type="send"}'):
            return float(line.split()[-1])
    return 0.0


async def test_sigterm_with_postgresql_and_redis_hung_exits_in_time(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=1)
    assert cluster.pg is not None and cluster.pg.proc is not None
    assert cluster.redis is not None and cluster.redis.proc is not None
    participants = await seat_participants(cluster, 4, 5)
    await asyncio.gather(*(p.run(5, deadline_s=30) for p in participants))

    sends_before = _sends_read(cluster.web[0].http)
    frozen = _freeze(cluster.pg.proc.pid) + _freeze(cluster.redis.proc.pid)
    try:
        # Sends caught in flight against the hung database when the signal arrives.
        for p in participants:
            assert p.ws is not None
            for n in range(3):
                frame = {
                    "type": "send",
                    "conversation_id": p.conversation_id,
                    "client_msg_id": f"late-{n}",
                    "body": "x",
                }
                await p.ws.send(msgspec.json.encode(frame).decode())
        # Read by the server (so in flight to the hung database), not merely sent: a fixed
        # second was not always enough on a loaded machine, and then nothing was in flight.
        svc = cluster.web[0]
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(_sends_read, svc.http) < sends_before + 3 * len(participants):
            assert time.monotonic() < deadline, "the late sends never reached the server"
            await asyncio.sleep(0.05)
        assert svc.proc is not None
        began = time.monotonic()
        svc.signal(signal.SIGTERM)
        code = await asyncio.to_thread(svc.proc.wait, EXIT_WITHIN_S + 30)
        took = time.monotonic() - began
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert took < EXIT_WITHIN_S, f"exited {took:.1f} s after SIGTERM"
    assert code in (0, -signal.SIGTERM), code
    log = svc.output()
    assert "giving up on them" in log  # the sends in flight were failed, not waited for
    for p in participants:
        # Nothing of the late sends was acked: the clients know to send them again.
        assert not any(cmid.startswith("late-") for cmid in p.acked), p.acked
    print(f"\nSIGTERM with PostgreSQL and Redis hung: exited in {took:.1f} s")
    for p in participants:
        await p.close()
