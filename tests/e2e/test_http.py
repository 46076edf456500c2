"""The HTTP surface (PRODUCT.md §6) against a real `peerchat serve`: health, readiness,
metrics, profiles, transcripts with their audit trail, bearer auth and security headers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import jwt

from tests.support.client import bearer, token
from tests.support.flows import assert_clean_log, matched
from tests.support.servers import JWT_SECRET, LiveService

SUPERVISOR = bearer(token("supervisor", "sup-1", "Lee"))
MEMBER = bearer(token("member", "member-1"))
SPECIALIST = bearer(token("specialist", "spec-9"))
PROFILE = {"name": "Rosa", "tags": ["Grief", "alcohol", " "], "languages": ["en", "es"], "max_chats": 3}


def _assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, response.headers
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("cache-control") == "no-store"


async def test_health_readiness_metrics_and_headers(live: LiveService) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        names = {line.split()[2] for line in metrics.text.splitlines() if line.startswith("# TYPE peerchat_")}
        assert names, metrics.text[:500]
        assert all(name.startswith("peerchat_") for name in names)
        samples = [line for line in metrics.text.splitlines() if line.startswith("peerchat_")]
        assert samples and all(len(line.split()) >= 2 for line in samples)
        for response in (health, ready, metrics):
            _assert_security_headers(response)
        # Refusals and unknown paths carry the headers too.
        for response in (
            await http.get("/api/specialists"),
            await http.get("/api/specialists", headers=MEMBER),
            await http.get("/no/such/page"),
            await http.get("/member"),
        ):
            _assert_security_headers(response)


async def test_specialist_profiles_are_for_supervisors(live: LiveService) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        put = await http.put("/api/specialists/spec-rosa", json=PROFILE, headers=SUPERVISOR)
        assert put.status_code == 200, put.text
        body = put.json()
        assert body["id"] == "spec-rosa" and body["name"] == "Rosa"
        assert body["tags"] == ["alcohol", "grief"], "tags are trimmed, lower-cased, de-duplicated"
        assert body["languages"] == ["en", "es"] and body["max_chats"] == 3
        assert body["status"] == "offline", "no socket connected"

        listed = await http.get("/api/specialists", headers=SUPERVISOR)
        assert listed.status_code == 200
        assert [p["id"] for p in listed.json()] == ["spec-rosa"]

        # An edit replaces the profile.
        edit = {**PROFILE, "name": "Rosa M.", "max_chats": 1}
        assert (await http.put("/api/specialists/spec-rosa", json=edit, headers=SUPERVISOR)).json()[
            "max_chats"
        ] == 1

        # Wrong role → 403; no or bad token → 401.
        for headers in (MEMBER, SPECIALIST):
            assert (await http.get("/api/specialists", headers=headers)).status_code == 403
            assert (
                await http.put("/api/specialists/spec-rosa", json=PROFILE, headers=headers)
            ).status_code == 403
        now = int(time.time())
        bad_headers: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer  x"},
            {"Authorization": "Basic c3VwOnB3"},
            bearer("not.a.jwt"),
            bearer(jwt.encode({"sub": "s", "role": "supervisor"}, JWT_SECRET, algorithm="HS256")),
            bearer(token("supervisor", "sup-1", ttl_s=-60)),
            bearer(
                jwt.encode(
                    {
                        "sub": "s",
                        "role": "supervisor",
                        "iss": "peerchat",
                        "aud": "peerchat",
                        "iat": now,
                        "exp": now + 60,
                    },
                    "wrong-secret-" + "z" * 40,
                    algorithm="HS256",
                )
            ),
            bearer(
                jwt.encode(
                    {
                        "sub": "s",
                        "role": ["supervisor"],
                        "iss": "peerchat",
                        "aud": "peerchat",
                        "iat": now,
                        "exp": now + 60,
                    },
                    JWT_SECRET,
                    algorithm="HS256",
                )
            ),
        ]
        for headers in bad_headers:
            got = await http.get("/api/specialists", headers=headers)
            assert got.status_code == 401, (headers, got.status_code, got.text)
            assert (
                await http.put("/api/specialists/spec-rosa", json=PROFILE, headers=headers)
            ).status_code == 401

        # Bad bodies → 400, and nothing changes.
        bad_bodies: list[Any] = [
            b"{not json",
            b"[]",
            b"",
            {"name": "Rosa", "tags": [], "languages": ["en"]},  # no max_chats
            {"name": "Rosa", "tags": "grief", "languages": ["en"], "max_chats": 2},
            {"name": "Rosa", "tags": [1], "languages": ["en"], "max_chats": 2},
            {"name": "Rosa", "tags": [], "languages": ["en"], "max_chats": "2"},
            {"name": "Rosa", "tags": [], "languages": ["en"], "max_chats": 0},
            {"name": "Rosa", "tags": [], "languages": ["en"], "max_chats": 21},
            {"name": "Rosa", "tags": [], "languages": [], "max_chats": 2},
            {"name": "Rosa", "tags": [], "languages": [" "], "max_chats": 2},
            {"name": " ", "tags": [], "languages": ["en"], "max_chats": 2},
            {"name": "R" * 65, "tags": [], "languages": ["en"], "max_chats": 2},
            {"name": "Rosa", "tags": [], "languages": ["en"], "max_chats": 2, "status": "available"},
        ]
        for bad in bad_bodies:
            if isinstance(bad, bytes):
                got = await http.put("/api/specialists/spec-rosa", content=bad, headers=SUPERVISOR)
            else:
                got = await http.put("/api/specialists/spec-rosa", json=bad, headers=SUPERVISOR)
            assert got.status_code == 400, (bad, got.status_code, got.text)
            assert "error" in got.json()
        too_long_id = "s" * 65
        got = await http.put(f"/api/specialists/{too_long_id}", json=PROFILE, headers=SUPERVISOR)
        assert got.status_code == 400
        after = (await http.get("/api/specialists", headers=SUPERVISOR)).json()
        assert [(p["id"], p["name"], p["max_chats"]) for p in after] == [("spec-rosa", "Rosa M.", 1)]
    assert_clean_log(live)


async def test_transcripts_for_participants_and_audited_supervisors(
    live: LiveService, database_url: str
) -> None:
    pair = await matched(live)
    conv = pair.conversation_id
    for i in range(3):
        await pair.member.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"m{i}", "body": f"body {i}"}, "ack"
        )
    member = bearer(token("member", pair.member_id))
    specialist = bearer(token("specialist", pair.specialist_id))
    path = f"/api/conversations/{conv}/messages"
    reason = "safety review after a risk alert"

    async with httpx.AsyncClient(base_url=live.http) as http:
        for headers in (member, specialist):
            got = await http.get(path, headers=headers)
            assert got.status_code == 200, got.text
            assert got.json()["conversation_id"] == conv
            assert [m["seq"] for m in got.json()["messages"]] == [1, 2, 3]
            assert got.json()["messages"][0]["sender"] == {"role": "member", "name": "Sam"}
        paged = await http.get(path, params={"after_seq": 1, "limit": 1}, headers=member)
        assert [m["body"] for m in paged.json()["messages"]] == ["body 1"]
        assert (await http.get(path, params={"after_seq": "x"}, headers=member)).status_code == 400
        far = await http.get(path, params={"after_seq": 10**12}, headers=member)
        assert far.status_code == 200 and far.json()["messages"] == []
        # Out of bounds is refused, not clamped (PRODUCT.md §6).
        for params in (
            {"after_seq": -(10**12)},
            {"after_seq": "-1"},
            {"after_seq": " 1"},
            {"after_seq": "1_0"},
            {"after_seq": "\u0661"},
            {"after_seq": str(2**63)},
            {"limit": 10**12},
            {"limit": 0},
            {"limit": 501},
            {"limit": ""},
        ):
            got = await http.get(path, params=params, headers=member)
            assert got.status_code == 400, (params, got.text)
        edge = await http.get(path, params={"after_seq": 0, "limit": 500}, headers=member)
        assert [m["seq"] for m in edge.json()["messages"]] == [1, 2, 3]

        # Strangers, whether a member or another specialist, learn nothing, not even existence.
        for stranger in (bearer(token("member", "stranger")), bearer(token("specialist", "spec-x"))):
            assert (await http.get(path, headers=stranger)).status_code == 404
        assert (await http.get("/api/conversations/nope/messages", headers=member)).status_code == 404
        assert (await http.get(path)).status_code == 401

        # A supervisor must give a reason; blank does not count; a bad query is no read.
        for params in ({}, {"reason": ""}, {"reason": "   "}):
            got = await http.get(path, params=params, headers=SUPERVISOR)
            assert got.status_code == 403, (params, got.text)
        got = await http.get(
            "/api/conversations/nope/messages", params={"reason": reason}, headers=SUPERVISOR
        )
        assert got.status_code == 404
        got = await http.get(path, params={"reason": reason, "after_seq": "x"}, headers=SUPERVISOR)
        assert got.status_code == 400

        db = await asyncpg.connect(database_url)
        try:
            reads = "SELECT count(*) FROM audit_log WHERE action = 'read_transcript'"
            assert await db.fetchval(reads) == 0, "no read, no audit row"
            got = await http.get(path, params={"reason": reason}, headers=SUPERVISOR)
            assert got.status_code == 200
            assert [m["body"] for m in got.json()["messages"]] == ["body 0", "body 1", "body 2"]
            rows = await db.fetch(
                "SELECT actor_id, actor_role, action, conversation_id, reason FROM audit_log"
                " WHERE action = 'read_transcript'"
            )
        finally:
            await db.close()
        assert [dict(r) for r in rows] == [
            {
                "actor_id": "sup-1",
                "actor_role": "supervisor",
                "action": "read_transcript",
                "conversation_id": conv,
                "reason": reason,
            }
        ]

        audit = await http.get("/api/audit", headers=SUPERVISOR)
        assert audit.status_code == 200
        entries = audit.json()["entries"]
        # Newest first: the read, then the profile edit `matched` made to set the scene.
        assert [e["action"] for e in entries] == ["read_transcript", "edit_profile"]
        assert entries[0]["reason"] == reason and entries[0]["conversation_id"] == conv
        assert entries[0]["actor_id"] == "sup-1" and entries[0]["action"] == "read_transcript"
        assert (await http.get("/api/audit", headers=member)).status_code == 403
        assert (await http.get("/api/audit")).status_code == 401
    assert_clean_log(live, "body 0", reason)


async def test_nul_characters_are_refused_not_a_server_error(live: LiveService, database_url: str) -> None:
    """PostgreSQL text cannot hold NUL: such input is the client's mistake (4xx), never a 500
    with a traceback."""
    pair = await matched(live)
    member = bearer(token("member", pair.member_id))
    async with httpx.AsyncClient(base_url=live.http) as http:
        got = await http.put("/api/specialists/spec%00x", json=PROFILE, headers=SUPERVISOR)
        assert got.status_code == 400, got.text
        for field, value in (("name", "Ro\u0000sa"), ("tags", ["gr\u0000ief"]), ("languages", ["e\u0000n"])):
            got = await http.put(
                "/api/specialists/spec-1", json={**PROFILE, field: value}, headers=SUPERVISOR
            )
            assert got.status_code == 400, (field, got.text)
        got = await http.get("/api/conversations/c%00/messages", headers=member)
        assert got.status_code == 404, got.text
        got = await http.get("/api/conversations/c%00/messages", params={"reason": "r"}, headers=SUPERVISOR)
        assert got.status_code == 404, got.text
        path = f"/api/conversations/{pair.conversation_id}/messages"
        got = await http.get(path, params={"reason": "why\u0000"}, headers=SUPERVISOR)
        assert got.status_code == 400, got.text
        # Nothing was written by the refused reads and edits (only the scene-setting edit).
        entries = (await http.get("/api/audit", headers=SUPERVISOR)).json()["entries"]
        assert [e["action"] for e in entries] == ["edit_profile"]
        assert [p["name"] for p in (await http.get("/api/specialists", headers=SUPERVISOR)).json()] == [
            "Rosa"
        ]
    assert_clean_log(live)


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_count_group_commits_and_watch_the_event_loop(live: LiveService) -> None:
    """Operators see how many messages each commit carried, and how long the loop made
    every socket wait (a timer every 100 ms: ~10 observations a second)."""
    pair = await matched(live, member_id="acct-metrics", specialist_id="spec-metrics", tag="metrics")
    conv = pair.conversation_id
    for i in range(5):
        await pair.member.send(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"m{i}", "body": "hi"}
        )
    for i in range(5):
        await pair.member.expect("ack", where=lambda f, i=i: f["client_msg_id"] == f"m{i}")
    async with httpx.AsyncClient(base_url=live.http) as http:
        first = (await http.get("/metrics")).text
        await asyncio.sleep(1.0)  # four of the process's 250 ms ticks, each a lag reading
        second = (await http.get("/metrics")).text
    assert _sample(first, "peerchat_message_commit_batch_size_sum") == 5.0
    batches = _sample(first, "peerchat_message_commit_batch_size_count")
    assert 1 <= batches <= 5
    lag_count = _sample(second, "peerchat_event_loop_lag_seconds_count")
    assert lag_count >= _sample(first, "peerchat_event_loop_lag_seconds_count") + 3
    assert _sample(second, 'peerchat_event_loop_lag_seconds_bucket{le="+Inf"}') == lag_count
    await pair.member.close()
    await pair.specialist.close()
