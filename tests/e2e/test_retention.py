"""The retention sweep (PRODUCT.md §10) against real processes: in the `release` step
(`peerchat migrate`), in the background, after a SIGKILL half-way, one at a time, alongside
live conversations, and refused outright when the retention is zero or less."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis

from chat.upkeep.retention import LOCK_KEY
from tests.support.database import fetch
from tests.support.flows import age_conversation, exchange, matched
from tests.support.servers import LiveService, service_env, wait_until


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def _run(database_url: str, command: str, *args: str, **env: str) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat.cli",
        command,
        *args,
        env=service_env(database_url, "redis://unused", **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def _migrate(database_url: str, **env: str) -> Ran:
    return await _run(database_url, "migrate", **env)


async def test_the_release_step_sweeps_aged_conversations_and_keeps_their_statistics(
    live: LiveService, database_url: str
) -> None:
    pair = await matched(live, member_id="acct-aged", specialist_id="spec-aged")
    old = pair.conversation_id
    bodies = await exchange(pair.member, pair.specialist, old, 6)
    await pair.member.send({"type": "end", "conversation_id": old})
    await pair.member.expect("conversation_ended")
    await pair.member.call(
        {"type": "feedback", "conversation_id": old, "rating": 5, "comment": "aged comment"}, "feedback_saved"
    )
    flagged = await pair.specialist.call(
        {"type": "flag", "conversation_id": old, "level": "concern", "note": "aged flag note"}, "flagged"
    )
    assert flagged["type"] == "flagged", flagged
    wrapped = await pair.specialist.call(
        {
            "type": "wrap_up",
            "conversation_id": old,
            "outcome": "talked",
            "risk_level": "low",
            "note": "aged wrap note",
        },
        "wrap_up_saved",
    )
    assert wrapped["type"] == "wrap_up_saved", wrapped
    queued = await pair.member.call({"type": "request", "tags": ["grief"], "note": "recent note"}, "queued")
    offer = await pair.specialist.expect("offer", where=lambda f: f["request_id"] == queued["request_id"])
    started = await pair.specialist.call(
        {"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started"
    )
    recent = started["conversation"]["id"]
    await exchange(pair.member, pair.specialist, recent, 2, tag="recent-")
    await pair.member.send({"type": "end", "conversation_id": recent})
    await pair.member.expect("conversation_ended")
    await age_conversation(database_url, old, "91 days")
    await age_conversation(database_url, recent, "89 days")

    done = await _migrate(database_url)
    assert done.returncode == 0, done.stderr
    assert "1 conversations, 6 messages" in done.stdout, done.stdout
    for secret in (*bodies, "acct-aged", "aged comment"):
        assert secret not in done.stdout + done.stderr

    rows = {
        r["id"]: r
        for r in await fetch(
            database_url,
            """SELECT id, member_id, member_alias, tags, last_seq, started_at, ended_at, swept_at
                 FROM conversations""",
        )
    }
    assert rows[old]["member_id"] == "" and rows[old]["member_alias"] == "" and rows[old]["swept_at"]
    assert rows[old]["last_seq"] == 6 and rows[old]["tags"] == ["grief"] and rows[old]["ended_at"]
    assert rows[recent]["member_id"] == "acct-aged" and rows[recent]["swept_at"] is None
    counts = await fetch(database_url, "SELECT conversation_id, count(*) AS n FROM messages GROUP BY 1")
    assert {r["conversation_id"]: r["n"] for r in counts} == {recent: 2}
    feedback = await fetch(database_url, "SELECT rating, comment, member_id FROM feedback")
    assert [tuple(r) for r in feedback] == [(5, None, "")]
    flags = await fetch(database_url, "SELECT kind, level, note FROM alerts WHERE kind = 'flagged'")
    assert [tuple(r) for r in flags] == [("flagged", "concern", None)], "the alert stays, its note goes"
    wraps = await fetch(database_url, "SELECT conversation_id, outcome, risk_level, note FROM wrap_ups")
    assert [tuple(r) for r in wraps] == [(old, "talked", "low", None)], "the wrap-up stays, its note goes"
    notes = await fetch(database_url, "SELECT note, member_id FROM requests ORDER BY created_at")
    assert [tuple(r) for r in notes] == [(None, ""), ("recent note", "acct-aged")]

    # Idempotent: a second run finds nothing.
    again = await _migrate(database_url)
    assert again.returncode == 0 and "0 conversations, 0 messages, 0 requests" in again.stdout, again.stdout
    await pair.close()


async def test_the_background_sweep_honours_a_decimal_retention_and_reports_metrics(
    service_factory: Any, redis_client: redis.Redis, database_url: str
) -> None:
    # 0.0001 days is 8.64 s.
    live: LiveService = service_factory(PEERCHAT_RETENTION_DAYS="0.0001", PEERCHAT_RETENTION_SWEEP_S="0.5")
    pair = await matched(live, member_id="acct-bg", specialist_id="spec-bg")
    conv = pair.conversation_id
    await exchange(pair.member, pair.specialist, conv, 3)
    await pair.member.send({"type": "end", "conversation_id": conv})
    await pair.member.expect("conversation_ended")

    async def swept() -> bool:
        rows = await fetch(database_url, "SELECT swept_at FROM conversations WHERE id = $1", conv)
        return rows[0]["swept_at"] is not None

    await asyncio.sleep(3)  # several background rounds (every 0.5 s), all before the retention passed
    early = await fetch(
        database_url,
        "SELECT swept_at, extract(epoch FROM now() - ended_at) AS age FROM conversations WHERE id = $1",
        conv,
    )
    if early[0]["age"] < 8.0:  # on a stalled machine the moment may have passed: then say nothing
        assert early[0]["swept_at"] is None, "swept before the retention had passed"
    await wait_until(swept, timeout=40, every=0.25)
    assert await fetch(database_url, "SELECT 1 FROM messages") == []
    async with httpx.AsyncClient(base_url=live.http) as http:
        text = (await http.get("/metrics")).text
    sample = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("peerchat_retention")
    }
    assert sample['peerchat_retention_swept_rows_total{kind="messages"}'] >= 3
    assert sample["peerchat_retention_last_run_timestamp_seconds"] > time.time() - 60
    assert sample["peerchat_retention_backlog"] == 0
    await pair.close()


async def _slowest_sweep(database_url: str, **popen: Any) -> asyncio.subprocess.Process:
    """`peerchat migrate` sweeping one conversation per transaction (the slowest sweep there
    is, so a test can act while it runs); `popen` as for asyncio's subprocess."""
    env = service_env(database_url, "redis://unused", PEERCHAT_RETENTION_BATCH_MESSAGES="1")
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "chat.cli", "migrate", env=env, **popen)


SYNTHETIC = """
INSERT INTO specialists (id, name) VALUES ('spec-k', 'K');
INSERT INTO conversations (id, member_id, member_alias, specialist_id, specialist_name, tags, state,
                           last_seq, started_at, ended_at, ended_by, end_reason)
SELECT 'k' || g, 'acct-k-' || g, 'alias-k-' || g, 'spec-k', 'K', '{grief}', 'ended', 3,
       now() - interval '120 days', now() - interval '100 days' + g * interval '1 second', 'member', 'ended'
  FROM generate_series(1, {n}) g;
INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name, client_msg_id, body)
SELECT 'k' || g, s, CASE WHEN s = 2 THEN 'spec-k' ELSE 'acct-k-' || g END,
       CASE WHEN s = 2 THEN 'specialist' ELSE 'member' END,
       CASE WHEN s = 2 THEN 'K' ELSE 'alias-k-' || g END, 'c' || s, 'body-k-' || g || '-' || s
  FROM generate_series(1, {n}) g, generate_series(1, 3) s;
INSERT INTO feedback (conversation_id, member_id, rating, comment)
SELECT 'k' || g, 'acct-k-' || g, 3, 'comment-k-' || g FROM generate_series(1, {n}) g;
"""


# A synthetic conversation (ids 'k…'; live ones are hex) is whole (three messages, its
# member, alias and comment) or swept (none of them, and marked): anything else is a
# half-erased row.
HALF_ERASED = """
SELECT count(*) FROM conversations c
 WHERE c.id LIKE 'k%' AND NOT (
   (c.swept_at IS NULL AND c.member_id <> '' AND c.member_alias <> ''
     AND (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) = 3
     AND (SELECT comment FROM feedback f WHERE f.conversation_id = c.id) IS NOT NULL)
   OR
   (c.swept_at IS NOT NULL AND c.member_id = '' AND c.member_alias = ''
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)
     AND (SELECT comment FROM feedback f WHERE f.conversation_id = c.id) IS NULL
     AND (SELECT member_id FROM feedback f WHERE f.conversation_id = c.id) = ''))
"""


async def test_a_sweep_killed_half_way_leaves_no_half_erased_row_and_the_next_run_finishes(
    database_url: str,
) -> None:
    n = 3000
    db = await asyncpg.connect(database_url)
    try:
        await db.execute(SYNTHETIC.replace("{n}", str(n)))
        sweeper = await _slowest_sweep(
            database_url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:

            async def some_swept() -> bool:
                swept = await db.fetchval("SELECT count(*) FROM conversations WHERE swept_at IS NOT NULL")
                return int(swept) >= 20

            await wait_until(some_swept, timeout=60, every=0.01)
            os.killpg(sweeper.pid, signal.SIGKILL)
        finally:
            await asyncio.wait_for(sweeper.wait(), 10)
        assert sweeper.returncode == -signal.SIGKILL
        swept = int(await db.fetchval("SELECT count(*) FROM conversations WHERE swept_at IS NOT NULL"))
        assert 20 <= swept < n, f"killed after {swept} of {n}: not half-way"
        assert await db.fetchval(HALF_ERASED) == 0

        # The killed process's session (and its advisory lock) goes with its socket.
        async def lock_released() -> bool:
            return not await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")

        await wait_until(lock_released, timeout=20)
        done = await _migrate(database_url)
        assert done.returncode == 0, done.stderr
        assert f"{n - swept} conversations, {3 * (n - swept)} messages" in done.stdout, done.stdout
        assert await db.fetchval("SELECT count(*) FROM conversations WHERE swept_at IS NULL") == 0
        assert await db.fetchval("SELECT count(*) FROM messages") == 0
        assert await db.fetchval(HALF_ERASED) == 0
        assert await db.fetchval("SELECT sum(last_seq) FROM conversations") == 3 * n, "counts stay"
    finally:
        await db.close()


async def test_a_retention_of_zero_or_less_stops_the_service_and_the_release_step(database_url: str) -> None:
    for name, raw in (
        ("PEERCHAT_RETENTION_DAYS", "0"),
        ("PEERCHAT_RETENTION_DAYS", "-3"),
        ("PEERCHAT_SPECIALIST_ACCESS_H", "0"),
    ):
        served = await _run(database_url, "serve", "--port", "1", **{name: raw})
        assert served.returncode == 2, served.stderr
        assert name in served.stderr and "positive number" in served.stderr
        assert "Traceback" not in served.stderr
    refused = await _migrate(database_url, PEERCHAT_RETENTION_DAYS="0")
    assert refused.returncode == 2 and "PEERCHAT_RETENTION_DAYS" in refused.stderr
    assert "applied" not in refused.stdout


async def test_one_sweep_at_a_time_the_release_step_skips_while_another_holds_the_lock(
    database_url: str,
) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        skipped = await _migrate(database_url)
        assert skipped.returncode == 0, skipped.stderr
        assert "another process is sweeping; skipped" in skipped.stdout
        await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        ran = await _migrate(database_url)
        assert "0 conversations, 0 messages, 0 requests swept" in ran.stdout, ran.stdout
    finally:
        await holder.close()


async def test_live_conversations_keep_flowing_while_a_sweep_runs(
    live: LiveService, database_url: str
) -> None:
    n = 3000
    db = await asyncpg.connect(database_url)
    try:
        await db.execute(SYNTHETIC.replace("{n}", str(n)))
        pair = await matched(live, member_id="acct-live", specialist_id="spec-live")
        # One conversation per transaction: the slowest sweep there is, so it is surely
        # still running while the chat goes on.
        sweeper = await _slowest_sweep(
            database_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )

        async def swept() -> int:
            return int(await db.fetchval("SELECT count(*) FROM conversations WHERE swept_at IS NOT NULL"))

        await wait_until(lambda: swept(), timeout=60, every=0.01)
        before = await swept()
        slowest = 0.0
        for i in range(20):
            began = time.monotonic()
            ack = await pair.member.call(
                {
                    "type": "send",
                    "conversation_id": pair.conversation_id,
                    "client_msg_id": f"l{i}",
                    "body": "hi",
                },
                "ack",
            )
            assert ack["type"] == "ack", ack
            slowest = max(slowest, time.monotonic() - began)
        after = await swept()
        assert before < after < n, f"the sweep ran meanwhile ({before} → {after} of {n})"
        assert slowest < 2.0, f"a send waited {slowest:.2f} s behind the sweep"
        # Waiting for the rest of the sweep (one conversation per transaction), not timing
        # it: on a loaded machine it took over 120 s.
        out, err = await asyncio.wait_for(sweeper.communicate(), 240)
        assert sweeper.returncode == 0, (out + err).decode()[-3000:]
        assert await swept() == n
        assert await db.fetchval(HALF_ERASED) == 0
        assert (
            await db.fetchval(
                "SELECT count(*) FROM messages WHERE conversation_id = $1", pair.conversation_id
            )
            == 20
        )
        await pair.close()
    finally:
        await db.close()
