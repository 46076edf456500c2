"""Issue 18, the supervisor's dashboard routes against real `peerchat serve` processes: the
roster's states (busy produced, shared with queue_stats), "set away" reaching the
specialist's devices on every process, feedback by specialist and week without member
identities, and the audit log filtered and exported as CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from tests.support.client import Client, bearer, token
from tests.support.flows import assert_clean_log, matched, put_profile
from tests.support.servers import LiveService

SUPERVISOR = bearer(token("supervisor", "sup-1", "Lee"))


def _counts(stats: dict[str, Any]) -> tuple[int, int, int]:
    """queue_stats.specialists as (available, busy, away); zeros are left out on the wire."""
    sp = stats["specialists"]
    return (sp.get("available", 0), sp.get("busy", 0), sp.get("away", 0))


async def _roster(http: httpx.AsyncClient) -> dict[str, str]:
    got = await http.get("/api/specialists", headers=SUPERVISOR)
    assert got.status_code == 200, got.text
    return {sp["id"]: sp["status"] for sp in got.json()}


async def test_set_away_reaches_every_device_on_every_process(
    service_factory: Any, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    await put_profile(a, "spec-1", name="Rosa", tags=["grief"])
    phone, _ = await Client.connect(a.ws, token("specialist", "spec-1", "Rosa"))
    laptop, _ = await Client.connect(b.ws, token("specialist", "spec-1", "Rosa"))
    await phone.call({"type": "availability", "status": "available"}, "availability")
    await laptop.expect("availability", where=lambda f: f["status"] == "available")
    supervisor, _ = await Client.connect(a.ws, token("supervisor", "sup-1", "Lee"))
    await supervisor.send({"type": "watch_queues"})
    await supervisor.expect("queue_stats", where=lambda f: f["specialists"]["available"] == 1, timeout=20)
    async with httpx.AsyncClient(base_url=b.http) as http:
        assert (await _roster(http))["spec-1"] == "available"
        put = await http.put("/api/specialists/spec-1/status", json={"status": "away"}, headers=SUPERVISOR)
        assert put.status_code == 200, put.text
        assert put.json()["status"] == "away"
        for device in (phone, laptop):
            echo = await device.expect("availability", where=lambda f: f["status"] == "away", timeout=15)
            assert echo.get("reason") == "supervisor" and "ref" not in echo
        assert (await _roster(http))["spec-1"] == "away"
        await supervisor.expect("queue_stats", where=lambda f: _counts(f) == (0, 0, 1), timeout=20)
        # Audited: who, what, whom, and the status before.
        entries = (await http.get("/api/audit", params={"action": "set_away"}, headers=SUPERVISOR)).json()[
            "entries"
        ]
        assert [(e["actor_id"], e["actor_name"], e["target"], e["detail"]) for e in entries] == [
            ("sup-1", "Lee", "spec-1", {"before": "available", "after": "away"})
        ]
        # Refused, and nothing changes: not a supervisor, no such specialist, not "away", bad bodies.
        spec = bearer(token("specialist", "spec-1", "Rosa"))
        assert (
            await http.put("/api/specialists/spec-1/status", json={"status": "away"}, headers=spec)
        ).status_code == 403
        assert (
            await http.put("/api/specialists/nobody/status", json={"status": "away"}, headers=SUPERVISOR)
        ).status_code == 404
        bodies: list[Any] = [
            {"status": "available"},
            {"status": "busy"},
            {},
            {"status": "away", "x": 1},
            [],
            "away",
        ]
        for body in bodies:
            got = await http.put("/api/specialists/spec-1/status", json=body, headers=SUPERVISOR)
            assert got.status_code == 400, (body, got.text)
        got = await http.put("/api/specialists/spec-1/status", content=b"{", headers=SUPERVISOR)
        assert got.status_code == 400
        entries = (await http.get("/api/audit", params={"action": "set_away"}, headers=SUPERVISOR)).json()[
            "entries"
        ]
        assert len(entries) == 1
    # The specialist being away, a new member is not offered to them.
    member, _ = await Client.connect(b.ws, token("member", "acct-9", "Sam"))
    await member.call({"type": "request", "tags": ["grief"]}, "queued")
    await supervisor.expect("queue_stats", where=lambda f: f["waiting"] == 1, timeout=20)
    assert not phone.drain("offer") and not laptop.drain("offer")
    for c in (phone, laptop, supervisor, member):
        await c.close()
    assert_clean_log(a)
    assert_clean_log(b)


async def test_queue_stats_reach_a_watcher_after_a_change_back_to_the_leaders_last(
    service_factory: Any, database_url: str
) -> None:
    """The `queue_stats` a supervisor is sent on `watch_queues` are read by their own process,
    not by the matching leader. A change back to what the leader last sent (here: away, then
    available unseen by the leader, then away again) must still reach them, at once: the
    idle leader's slow re-read once was the only thing that sent it."""
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    await put_profile(a, "spec-1", name="Rosa", tags=["grief"])
    first, _ = await Client.connect(a.ws, token("supervisor", "sup-1", "Lee"))
    await first.call({"type": "watch_queues"}, "queue_stats")
    phone, _ = await Client.connect(a.ws, token("specialist", "spec-1", "Rosa"))
    # The leader's own stats (a broadcast carries no ref): a new profile is away.
    await first.expect("queue_stats", where=lambda f: "ref" not in f and _counts(f) == (0, 0, 1), timeout=20)
    # A change the leader does not see, as within one coalescing window of its stats:
    # written straight to PostgreSQL, so nothing pokes it.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE specialists SET status = 'available' WHERE id = 'spec-1'")
    finally:
        await conn.close()
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-2", "Kim"))
    now = await supervisor.call({"type": "watch_queues"}, "queue_stats")
    assert _counts(now) == (1, 0, 0)
    async with httpx.AsyncClient(base_url=b.http) as http:
        put = await http.put("/api/specialists/spec-1/status", json={"status": "away"}, headers=SUPERVISOR)
        assert put.status_code == 200, put.text
    # Well inside the idle leader's full re-read (60 s).
    got = await supervisor.expect("queue_stats", where=lambda f: _counts(f) == (0, 0, 1), timeout=20)
    assert "ref" not in got
    for c in (first, phone, supervisor):
        await c.close()
    assert_clean_log(a)
    assert_clean_log(b)


async def test_busy_is_produced_for_the_roster_and_queue_stats(live: LiveService) -> None:
    await put_profile(live, "spec-1", name="Rosa", tags=["grief"], max_chats=1)
    pair = await matched(live, specialist_id="spec-1")
    # matched() puts max_chats back to 2; at capacity is 1 of 1.
    await put_profile(live, "spec-1", name="Rosa", tags=["grief"], max_chats=1)
    supervisor, _ = await Client.connect(live.ws, token("supervisor", "sup-1", "Lee"))
    await supervisor.send({"type": "watch_queues"})
    await supervisor.expect("queue_stats", where=lambda f: _counts(f) == (0, 1, 0), timeout=20)
    async with httpx.AsyncClient(base_url=live.http) as http:
        row = next(
            sp
            for sp in (await http.get("/api/specialists", headers=SUPERVISOR)).json()
            if sp["id"] == "spec-1"
        )
        assert (row["status"], row["active_chats"], row["max_chats"]) == ("busy", 1, 1)
        # A free slot again: available.
        await pair.specialist.call(
            {"type": "end", "conversation_id": pair.conversation_id}, "conversation_ended"
        )
        await wait_until_status(http, "spec-1", "available")
    await supervisor.expect("queue_stats", where=lambda f: _counts(f) == (1, 0, 0), timeout=20)
    await pair.close()
    await supervisor.close()


async def wait_until_status(http: httpx.AsyncClient, specialist_id: str, status: str) -> None:
    last: list[str] = []

    async def reached() -> bool:
        last[:] = [(await _roster(http)).get(specialist_id, "")]
        return last[0] == status

    for _ in range(200):
        if await reached():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{specialist_id} stayed {last}")


async def test_feedback_by_specialist_and_week_without_member_identities(live: LiveService) -> None:
    comments = {"grief": ("Thank you, this helped", 5), "family": ("=HYPERLINK(1)", 2)}
    for i, (tag, (comment, rating)) in enumerate(comments.items()):
        pair = await matched(live, member_id=f"acct-secret-{i}", specialist_id=f"spec-{i}", tag=tag)
        await pair.specialist.call(
            {"type": "end", "conversation_id": pair.conversation_id}, "conversation_ended"
        )
        await pair.member.expect("conversation_ended")
        saved = await pair.member.call(
            {
                "type": "feedback",
                "conversation_id": pair.conversation_id,
                "rating": rating,
                "comment": comment,
            },
            "feedback_saved",
        )
        assert saved["type"] == "feedback_saved", saved
        await pair.close()
    async with httpx.AsyncClient(base_url=live.http) as http:
        got = await http.get("/api/feedback", headers=SUPERVISOR)
        assert got.status_code == 200, got.text
        weeks = got.json()["weeks"]
        assert sorted((w["specialist_id"], w["count"], w["average"]) for w in weeks) == [
            ("spec-0", 1, 5.0),
            ("spec-1", 1, 2.0),
        ]
        assert all(w["specialist_name"] == "Rosa" for w in weeks)
        by_id = {w["specialist_id"]: w for w in weeks}
        assert [(c["rating"], c["comment"]) for c in by_id["spec-0"]["comments"]] == [
            (5, "Thank you, this helped")
        ]
        assert set(by_id["spec-0"]["comments"][0]) == {"rating", "comment", "at"}
        # No member identity anywhere: no account id, no alias.
        assert "acct-secret" not in got.text and "Sam" not in got.text
        one = (
            await http.get("/api/feedback", params={"specialist": "spec-1", "weeks": "1"}, headers=SUPERVISOR)
        ).json()
        assert [w["specialist_id"] for w in one["weeks"]] == ["spec-1"]
        for params in (
            {"weeks": "0"},
            {"weeks": "53"},
            {"weeks": "x"},
            {"specialist": "s\n1"},
            {"specialist": "s" * 65},
        ):
            assert (await http.get("/api/feedback", params=params, headers=SUPERVISOR)).status_code == 400, (
                params
            )
        member = bearer(token("member", "acct-secret-0", "Sam"))
        assert (await http.get("/api/feedback", headers=member)).status_code == 403
    assert_clean_log(live, "Thank you, this helped")


async def test_audit_log_filtered_and_exported_as_csv(live: LiveService, database_url: str) -> None:
    pair = await matched(live, specialist_id="spec-1")
    other = bearer(token("supervisor", "sup-2", "+Kim"))
    async with httpx.AsyncClient(base_url=live.http) as http:
        for reason in ("=1+1", "safety check"):
            read = await http.get(
                f"/api/conversations/{pair.conversation_id}/messages",
                headers={**other, "X-Peerchat-Reason": reason},
            )
            assert read.status_code == 200, read.text
        assert (
            await http.put("/api/specialists/spec-1/status", json={"status": "away"}, headers=SUPERVISOR)
        ).status_code == 200

        async def entries(**params: str) -> list[dict[str, Any]]:
            got = await http.get("/api/audit", params=params, headers=SUPERVISOR)
            assert got.status_code == 200, (params, got.text)
            rows: list[dict[str, Any]] = got.json()["entries"]
            return rows

        everything = await entries()
        assert {e["action"] for e in everything} >= {"read_transcript", "set_away", "edit_profile"}
        assert [e["reason"] for e in await entries(action="read_transcript")] == ["safety check", "=1+1"]
        assert {e["actor_id"] for e in await entries(actor="sup-2")} == {"sup-2"}
        assert len(await entries(actor="sup-2")) == 2
        assert [e["action"] for e in await entries(conversation=pair.conversation_id)] == [
            "read_transcript"
        ] * 2
        assert await entries(conversation=pair.conversation_id, actor="sup-1") == []
        assert len(await entries(action="read_transcript", limit="1")) == 1
        newest = (await entries(action="read_transcript"))[0]["id"]
        assert [e["reason"] for e in await entries(action="read_transcript", before=newest)] == ["=1+1"]
        assert await entries(action="") == everything, "an empty filter is no filter"
        for params in (
            {"action": "Read"},
            {"action": "read transcript"},
            {"action": "a" * 65},
            {"action": "1read"},
            {"actor": "x" * 129},
            {"actor": "sup\n1"},
            {"conversation": "c\x00"},
            {"conversation": "c" * 129},
        ):
            for path in ("/api/audit", "/api/audit.csv"):
                got = await http.get(path, params=params, headers=SUPERVISOR)
                assert got.status_code == 400, (path, params, got.text)

        # CSV: the same filters, every row, formulas defused.
        got = await http.get("/api/audit.csv", params={"actor": "sup-2"}, headers=SUPERVISOR)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("text/csv")
        assert "attachment" in got.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(got.text)))
        assert rows[0] == [
            "id",
            "at",
            "actor_id",
            "actor_name",
            "action",
            "conversation_id",
            "target",
            "reason",
            "detail",
        ]
        assert [(r[2], r[3], r[4], r[5], r[7]) for r in rows[1:]] == [
            ("sup-2", "'+Kim", "read_transcript", pair.conversation_id, "safety check"),
            ("sup-2", "'+Kim", "read_transcript", pair.conversation_id, "'=1+1"),
        ]
        all_rows = list(csv.reader(io.StringIO((await http.get("/api/audit.csv", headers=SUPERVISOR)).text)))
        assert [r[0] for r in all_rows[1:]] == [e["id"] for e in everything]
        assert (
            await http.get("/api/audit.csv", headers=bearer(token("specialist", "spec-1", "Rosa")))
        ).status_code == 403
    await pair.close()


async def test_audit_csv_streams_more_than_a_page(live: LiveService, database_url: str) -> None:
    db = await asyncpg.connect(database_url)
    try:
        await db.execute(
            """INSERT INTO audit_log (actor_id, actor_role, actor_name, action, target, reason)
               SELECT 'sup-1', 'supervisor', 'Lee', 'edit_profile', 'spec-' || g, '-' || g
               FROM generate_series(1, 1203) g"""
        )
    finally:
        await db.close()
    async with httpx.AsyncClient(base_url=live.http) as http:
        got = await http.get("/api/audit.csv", params={"action": "edit_profile"}, headers=SUPERVISOR)
    rows = list(csv.reader(io.StringIO(got.text)))[1:]
    assert len(rows) == 1203
    assert rows[0][6] == "spec-1203" and rows[-1][6] == "spec-1"
    assert rows[0][7] == "'-1203"
    assert len({r[0] for r in rows}) == 1203


async def test_the_roster_shows_wrap_up_after_a_conversation(service_factory: Any) -> None:
    live: LiveService = service_factory(PEERCHAT_WRAP_UP_S="300", PEERCHAT_WRAP_UP_URGENT_S="600")
    pair = await matched(live, specialist_id="spec-1")
    async with httpx.AsyncClient(base_url=live.http) as http:
        rows = {sp["id"]: sp for sp in (await http.get("/api/specialists", headers=SUPERVISOR)).json()}
        assert "wrap_up_until" not in rows["spec-1"], "no wrap-up while chatting"
        await pair.specialist.call(
            {"type": "end", "conversation_id": pair.conversation_id}, "conversation_ended"
        )
        rows = {sp["id"]: sp for sp in (await http.get("/api/specialists", headers=SUPERVISOR)).json()}
    row = rows["spec-1"]
    until = datetime.fromisoformat(row["wrap_up_until"].replace("Z", "+00:00"))
    assert 200 < (until - datetime.now(UTC)).total_seconds() <= 300
    assert row["status"] == "available", "the state stays the queue_stats one"
    await pair.close()
