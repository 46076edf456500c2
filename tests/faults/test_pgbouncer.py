"""PgBouncer in transaction-pooling mode in front of PostgreSQL (PRODUCT.md §11): a match
and a chat through it, then PgBouncer restarted while conversations run across three web
processes. The pool has fewer server connections than the processes hold between them, so
a client connection's consecutive transactions do run on different server sessions: a
named prepared statement or a session advisory lock taken through it would break here."""

from __future__ import annotations

import asyncio
import time

import psutil
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
from tests.support.database import fetch
from tests.support.flows import matched
from tests.support.servers import LiveService, service_env, wait_until

pytestmark = pytest.mark.slow

DOWN_S = 2.0


def _acks(participants: list[Participant]) -> int:
    return sum(len(p.acked) for p in participants)


async def _advisory_lock_ports(database_url: str) -> list[int]:
    """The client port of every session holding an advisory lock (the matching leader's)."""
    rows = await fetch(
        database_url,
        f"SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE {LEADER_LOCK}",
    )
    return [int(r["client_port"]) for r in rows]


def _web_local_ports(cluster: Cluster) -> set[int]:
    """Local ports of the web processes' own TCP connections: a session PostgreSQL sees
    coming from one of these is direct; one through PgBouncer comes from PgBouncer's."""
    ports = set()
    for svc in cluster.web:
        assert svc.proc is not None
        for c in psutil.Process(svc.proc.pid).net_connections(kind="tcp"):
            ports.add(c.laddr.port)
    return ports


async def _assert_one_direct_leader(cluster: Cluster) -> None:
    ports = await _advisory_lock_ports(cluster.database_url)
    assert len(ports) == 1, ports
    assert ports[0] in _web_local_ports(cluster), "the leader's lock is held on a PgBouncer server session"


async def test_match_chat_and_a_pgbouncer_restart_under_load(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000"}
    await cluster.start(processes=3, pgbouncer=True)
    assert cluster.bouncer is not None
    # A match through the pooler (the request, the offer and the accept are pooled
    # transactions; the leader's lock sits on its own direct connection).
    pair = await matched(cluster.web[0], member_id="pool-member", specialist_id="pool-spec", tag="grief")
    for n in range(5):
        frame = {
            "type": "send",
            "conversation_id": pair.conversation_id,
            "client_msg_id": f"m{n}",
            "body": f"hi {n}",
        }
        ack = await pair.member.call(frame, "ack")
        assert ack["type"] == "ack", ack
        got = await pair.specialist.expect("message", where=lambda f, n=n: f["body"] == f"hi {n}")
        assert got["seq"] == n + 1
    await pair.close()
    # Exactly one leader, holding its session lock on a direct connection to PostgreSQL.
    await _assert_one_direct_leader(cluster)

    sends = 40
    participants = await seat_participants(cluster, 6, sends)
    specialists = {p.user_id for p in participants if p.role == "specialist"}
    run = asyncio.gather(
        *(p.run(2 * sends, deadline_s=120, pace_s=0.2, resend_after=1.0) for p in participants)
    )
    deadline = time.monotonic() + 30
    while _acks(participants) < len(participants) * 3:
        assert time.monotonic() < deadline, "no traffic through PgBouncer"
        await asyncio.sleep(0.05)

    await asyncio.to_thread(cluster.bouncer.stop)
    stopped = time.monotonic()
    await asyncio.sleep(0.5)
    acks_down = _acks(participants)
    await asyncio.sleep(DOWN_S - 0.5)
    assert _acks(participants) == acks_down, "an ack while PgBouncer was down"
    cluster.bouncer.start()
    restarted = time.monotonic()
    while _acks(participants) == acks_down:
        assert time.monotonic() - restarted < 20, "no ack after PgBouncer came back"
        await asyncio.sleep(0.02)
    first_ack_after = time.monotonic() - restarted
    # Presence as a supervisor sees it, from every process (its roster reads PostgreSQL).
    await presence_back(cluster, specialists, 20)
    presence_after = time.monotonic() - restarted
    assert presence_after <= 10, f"presence whole only {presence_after:.1f} s after"
    await run
    for p in participants:
        assert not p.violations, p.violations[:5]
    counts = await check_in_postgres(cluster.database_url, participants, 2 * sends)
    assert counts["acked"] == len(participants) * sends
    refused = sum(p.errors.count("unavailable") for p in participants)

    # Matching still works after the restart, and its lock never leaked onto a pooled session.
    again = await matched(cluster.web[1], member_id="pool-member-2", specialist_id="pool-spec-2", tag="loss")
    await again.close()
    await _assert_one_direct_leader(cluster)
    logs = cluster.logs()
    assert "prepared statement" not in logs, "a prepared statement broke under transaction pooling"
    assert all(http_get(svc.http + "/readyz")[0] == 200 for svc in cluster.web)
    print(
        f"\nPgBouncer restart: down {restarted - stopped:.1f} s, {refused} sends answered `unavailable`, "
        f"first ack {first_ack_after:.2f} s after it came back, presence whole on all 3 processes "
        f"{presence_after:.2f} s after; {counts['messages']} messages stored once, "
        "in order"
    )
    for p in participants:
        await p.close()


async def test_behind_pgbouncer_without_a_direct_url_matching_says_what_to_set(cluster: Cluster) -> None:
    """The leader's session lock cannot live behind a transaction pooler. Without
    PEERCHAT_DATABASE_DIRECT_URL no process may lead through it (two could, on one shared
    server session), and the log says which variable is missing."""
    await cluster.start(processes=0, pgbouncer=True)
    assert cluster.bouncer is not None and cluster.redis is not None
    svc = LiveService(
        env=service_env(cluster.bouncer.url, cluster.redis.url), log_path=cluster.base / "web-nodirect.log"
    )
    cluster.web.append(svc)
    svc.start()
    await wait_until(lambda: "PEERCHAT_DATABASE_DIRECT_URL" in svc.output(), 20, 0.1)
    await asyncio.sleep(5)  # two more elections' worth: it must not lead, nor repeat itself
    assert "now leads matching" not in svc.output()
    assert await _advisory_lock_ports(cluster.database_url) == []
    assert svc.output().count("matching cannot take the lead") == 1  # said once, not every 2 s
    status, _ = http_get(svc.http + "/readyz")
    assert status == 200  # everything else works through PgBouncer
