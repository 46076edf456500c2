"""Issue 14, the supervisor's HTTP surface, against real `peerchat serve` processes: the
paged audit log, bounded and audited profile edits, the transcript reason in a header, and
per-supervisor rate limits that hold across processes."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis

from tests.support.client import bearer, token
from tests.support.database import fetch
from tests.support.flows import assert_clean_log, matched
from tests.support.servers import LiveService

SUPERVISOR = bearer(token("supervisor", "sup-1", "Lee"))
PROFILE: dict[str, Any] = {"name": "Rosa", "tags": ["grief"], "languages": ["en"], "max_chats": 3}


# --------------------------------------------------------------------------- audit log


async def test_audit_log_pages_back_newest_first(live: LiveService) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        for i in range(7):
            put = await http.put(f"/api/specialists/spec-{i}", json=PROFILE, headers=SUPERVISOR)
            assert put.status_code == 200, put.text
        everything = (await http.get("/api/audit", headers=SUPERVISOR)).json()["entries"]
        assert [e["target"] for e in everything] == [f"spec-{i}" for i in reversed(range(7))]
        first = everything[0]
        assert set(first) == {"id", "at", "actor_id", "actor_name", "action", "target", "detail"}
        assert (first["actor_id"], first["actor_name"], first["action"]) == ("sup-1", "Lee", "edit_profile")
        seen: list[str] = []
        before: str | None = None
        while True:
            params = {"limit": "3", **({"before": before} if before else {})}
            page = (await http.get("/api/audit", params=params, headers=SUPERVISOR)).json()["entries"]
            if not page:
                break
            assert len(page) <= 3
            seen += [e["id"] for e in page]
            before = page[-1]["id"]
        assert seen == [e["id"] for e in everything], "pages join up, newest first, no repeats"

        # Out-of-bounds input: 400 and nothing changes.
        for params in (
            {"limit": "0"},
            {"limit": "501"},
            {"limit": "-1"},
            {"limit": "1.5"},
            {"limit": "ten"},
            {"limit": ""},
            {"limit": "9" * 40},
            {"before": "0"},
            {"before": "-5"},
            {"before": "abc"},
            {"before": str(2**63)},
            {"before": "\uff11"},
        ):
            got = await http.get("/api/audit", params=params, headers=SUPERVISOR)
            assert got.status_code == 400, (params, got.text)
        assert (await http.get("/api/audit", params={"limit": "500"}, headers=SUPERVISOR)).status_code == 200
        again = (await http.get("/api/audit", headers=SUPERVISOR)).json()["entries"]
        assert again == everything
        # Only supervisors read it.
        assert (await http.get("/api/audit", headers=bearer(token("member", "m")))).status_code == 403
        assert (await http.get("/api/audit", headers=bearer(token("specialist", "s")))).status_code == 403
    assert_clean_log(live)


async def test_audit_limit_defaults_to_100(live: LiveService, database_url: str) -> None:
    db = await asyncpg.connect(database_url)
    try:
        await db.execute(
            """INSERT INTO audit_log (actor_id, actor_role, actor_name, action, target)
               SELECT 'sup-1', 'supervisor', 'Lee', 'edit_profile', 'spec-' || g
               FROM generate_series(1, 520) g"""
        )
    finally:
        await db.close()
    async with httpx.AsyncClient(base_url=live.http) as http:
        default = (await http.get("/api/audit", headers=SUPERVISOR)).json()["entries"]
        assert len(default) == 100 and default[0]["target"] == "spec-520"
        most = (await http.get("/api/audit", params={"limit": 500}, headers=SUPERVISOR)).json()["entries"]
        assert len(most) == 500 and most[-1]["target"] == "spec-21"


# --------------------------------------------------------------------------- profile edits


async def test_profile_edits_are_bounded_and_nothing_is_stored(live: LiveService, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        assert (
            await http.put("/api/specialists/spec-1", json=PROFILE, headers=SUPERVISOR)
        ).status_code == 200
        refused: list[dict[str, Any]] = [
            {"tags": ["x" * 41]},
            {"tags": [f"t{i}" for i in range(21)]},
            {"languages": ["x" * 17]},
            {"languages": ["e" * 50_000]},
            {"languages": []},
            {"languages": [f"l{i}" for i in range(21)]},
            {"name": "R" * 65},
            {"name": ""},
            {"name": "   "},
            {"name": "Ro\nsa"},
            {"name": "Ro\u001bsa"},
            {"tags": ["gr\tief"]},
            {"max_chats": 0},
            {"max_chats": 21},
            {"max_chats": -1},
            {"max_chats": "3"},
            {"max_chats": 10**30},
            {"tags": "grief"},
            {"extra": "field"},
        ]
        for change in refused:
            got = await http.put("/api/specialists/spec-1", json={**PROFILE, **change}, headers=SUPERVISOR)
            assert got.status_code in (400, 422), (change, got.text)
            assert "Traceback" not in got.text
        got = await http.put(f"/api/specialists/{'s' * 65}", json=PROFILE, headers=SUPERVISOR)
        assert got.status_code == 400
        got = await http.put("/api/specialists/spec-2", content=b"{" * 100_000, headers=SUPERVISOR)
        assert got.status_code == 400
        # At the bounds exactly: accepted.
        edge: dict[str, Any] = {
            "name": "R" * 64,
            "tags": [f"{i:02d}" + "t" * 38 for i in range(20)],
            "languages": ["x" * 16],
        }
        got = await http.put(
            "/api/specialists/spec-3", json={**PROFILE, **edge, "max_chats": 20}, headers=SUPERVISOR
        )
        assert got.status_code == 200, got.text
    rows = await fetch(
        database_url, "SELECT id, name, tags, languages, max_chats FROM specialists ORDER BY id"
    )
    assert [(r["id"], r["name"], r["tags"], r["languages"], r["max_chats"]) for r in rows] == [
        ("spec-1", "Rosa", ["grief"], ["en"], 3),
        ("spec-3", "R" * 64, sorted(edge["tags"]), ["x" * 16], 20),
    ]
    audited = await fetch(database_url, "SELECT target FROM audit_log ORDER BY id")
    assert [r["target"] for r in audited] == ["spec-1", "spec-3"], "a refused edit writes no audit row"
    assert_clean_log(live)


async def test_profile_edits_are_audited_with_before_and_after(live: LiveService, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        created = await http.put("/api/specialists/spec-1", json=PROFILE, headers=SUPERVISOR)
        assert created.status_code == 200
        other = bearer(token("supervisor", "sup-2", "Kim"))
        edit = {"name": "Rosa M.", "tags": ["Alcohol", "grief"], "languages": ["es", "en"], "max_chats": 1}
        assert (await http.put("/api/specialists/spec-1", json=edit, headers=other)).status_code == 200
        entries = (await http.get("/api/audit", headers=SUPERVISOR)).json()["entries"]
    assert [(e["action"], e["target"], e["actor_id"], e["actor_name"]) for e in entries] == [
        ("edit_profile", "spec-1", "sup-2", "Kim"),
        ("edit_profile", "spec-1", "sup-1", "Lee"),
    ]
    assert entries[1]["detail"] == {"before": None, "after": PROFILE}
    assert entries[0]["detail"] == {
        "before": PROFILE,
        "after": {"name": "Rosa M.", "tags": ["alcohol", "grief"], "languages": ["en", "es"], "max_chats": 1},
    }
    assert "reason" not in entries[0] and "conversation_id" not in entries[0]
    rows = await fetch(database_url, "SELECT actor_role, reason FROM audit_log")
    assert {(r["actor_role"], r["reason"]) for r in rows} == {("supervisor", None)}


# --------------------------------------------------------------------------- transcript reason


async def test_transcript_reason_in_a_header(live: LiveService, database_url: str) -> None:
    pair = await matched(live)
    await pair.member.call(
        {
            "type": "send",
            "conversation_id": pair.conversation_id,
            "client_msg_id": "m1",
            "body": "hello there",
        },
        "ack",
    )
    path = f"/api/conversations/{pair.conversation_id}/messages"
    header_reason = "risk alert follow-up, ticket 42"
    async with httpx.AsyncClient(base_url=live.http) as http:
        got = await http.get(path, headers={**SUPERVISOR, "X-Peerchat-Reason": header_reason})
        assert got.status_code == 200 and [m["body"] for m in got.json()["messages"]] == ["hello there"]
        # Header wins over the query; the query alone still works.
        both = await http.get(
            path,
            params={"reason": "from the query"},
            headers={**SUPERVISOR, "X-Peerchat-Reason": "from the header"},
        )
        assert both.status_code == 200
        assert (await http.get(path, params={"reason": "query only"}, headers=SUPERVISOR)).status_code == 200
        # Non-ASCII, percent-encoded as the page sends it.
        unicode_reason = "Überprüfung nach Meldung"
        encoded = urllib.parse.quote(unicode_reason)
        got = await http.get(path, headers={**SUPERVISOR, "X-Peerchat-Reason": encoded})
        assert got.status_code == 200
        # No reason, a blank one, or a blank header (even with a query reason): 403, no read.
        for headers, params in (
            ({}, {}),
            ({"X-Peerchat-Reason": ""}, {}),
            ({"X-Peerchat-Reason": "%20%20"}, {}),
            ({"X-Peerchat-Reason": ""}, {"reason": "sneaky"}),
            ({"X-Peerchat-Reason": "%20%09"}, {}),
        ):
            got = await http.get(path, params=params, headers={**SUPERVISOR, **headers})
            assert got.status_code == 403, (headers, params, got.text)
            assert "messages" not in got.json()
        for bad in ("%00why", "x" * 501):
            got = await http.get(path, headers={**SUPERVISOR, "X-Peerchat-Reason": bad})
            assert got.status_code == 400, got.text
    rows = await fetch(
        database_url, "SELECT reason FROM audit_log WHERE action = 'read_transcript' ORDER BY id"
    )
    assert [r["reason"] for r in rows] == [header_reason, "from the header", "query only", unicode_reason]
    assert_clean_log(live, "hello there", header_reason)


# --------------------------------------------------------------------------- rate limits


async def _spread(
    lives: list[LiveService], n: int, path: str, headers: dict[str, str], **params: str
) -> list[httpx.Response]:
    """`n` requests, round-robin over the processes, a few at a time."""
    clients = [httpx.AsyncClient(base_url=live.http, timeout=30) for live in lives]
    try:
        out: list[httpx.Response] = []
        for start in range(0, n, 10):
            batch = [
                clients[i % len(clients)].get(path, headers=headers, params=params)
                for i in range(start, min(n, start + 10))
            ]
            out += await asyncio.gather(*batch)
        return out
    finally:
        for client in clients:
            await client.aclose()


def _retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    value = response.headers["retry-after"]
    assert value.isdigit() and 1 <= int(value) <= 60, value
    return int(value)


async def test_transcript_reads_limited_per_supervisor_across_processes(
    service_factory: type, redis_client: redis.Redis, database_url: str
) -> None:
    lives: list[LiveService] = [service_factory(), service_factory()]
    pair = await matched(lives[0])
    path = f"/api/conversations/{pair.conversation_id}/messages"
    reading = {**SUPERVISOR, "X-Peerchat-Reason": "quality review"}
    first = await _spread(lives, 30, path, reading)
    assert [r.status_code for r in first] == [200] * 30
    # The 31st, on either process: refused, with when to come back; the route did not run.
    for live in lives:
        async with httpx.AsyncClient(base_url=live.http) as http:
            over = await http.get(path, headers=reading)
            _retry_after(over)
            assert "messages" not in over.json()
            # Another supervisor has their own allowance...
            other = {**bearer(token("supervisor", f"sup-other-{live.port}")), "X-Peerchat-Reason": "r"}
            assert (await http.get(path, headers=other)).status_code == 200
            # ...and other routes are a separate bucket for the same supervisor.
            assert (await http.get("/api/stats/history", headers=SUPERVISOR)).status_code == 200
    reads = await fetch(
        database_url,
        "SELECT count(*) AS n FROM audit_log WHERE action = 'read_transcript' AND actor_id = 'sup-1'",
    )
    assert reads[0]["n"] == 30, "a refused read is neither served nor audited"
    # Redis knows the supervisor only by a keyed HMAC.
    keys = [k.decode() async for k in redis_client.scan_iter(match="peerchat:ratelimit:*")]
    assert keys and not [k for k in keys if "sup-" in k], keys
    for live in lives:
        assert_clean_log(live)


async def test_other_supervisor_routes_allow_300_a_minute_then_429(
    service_factory: type, redis_client: redis.Redis
) -> None:
    lives: list[LiveService] = [service_factory(), service_factory()]
    sup = bearer(token("supervisor", "sup-busy"))
    allowed = await _spread(lives, 300, "/api/stats/history", sup)
    assert [r.status_code for r in allowed] == [200] * 300
    over = await _spread(lives, 4, "/api/audit", sup)
    for response in over:
        _retry_after(response)
        assert "retry_after_s" in response.json()
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
    # Members and specialists are not supervisors: their routes are not counted here.
    member = bearer(token("member", "m-1"))
    async with httpx.AsyncClient(base_url=lives[0].http) as http:
        assert (await http.get("/api/stats/history", headers=member)).status_code == 403
    # A refused token is refused (401), not counted under anybody.
    async with httpx.AsyncClient(base_url=lives[1].http) as http:
        assert (await http.get("/api/stats", headers=bearer("bad.token.here"))).status_code == 401


@pytest.mark.parametrize("path", ["/api/conversations/x/messages", "/api/conversations/x/messages/"])
def test_transcript_paths_count_as_transcript_reads(path: str) -> None:
    from chat.web.ratelimit import TRANSCRIPTS, bucket_for

    assert bucket_for(path) is TRANSCRIPTS
