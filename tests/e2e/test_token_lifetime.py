"""A socket lives no longer than its token (issue 14, PRODUCT.md §4), against real uvicorn,
PostgreSQL and Redis, with several processes where it matters: the token lifetime limit,
control characters, display names as the peer sees them, the close at `exp`, `reauth`,
revocation across processes, and the socket cap across processes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as redis
import websockets

from tests.support.client import Client, bearer, token
from tests.support.flows import (
    assert_clean_log,
    assert_still_serving,
    hello,
    matched,
    put_profile,
    until_closed,
)
from tests.support.servers import JWT_SECRET, LiveService, wait_until

YEAR = 365 * 86400


def _raw_token(claims: dict[str, Any]) -> str:
    import jwt

    now = int(time.time())
    body = {"iss": "peerchat", "aud": "peerchat", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


async def _metric(live: LiveService, line_start: str) -> float:
    async with httpx.AsyncClient(base_url=live.http) as http:
        text = (await http.get("/metrics")).text
    found = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(found[0].split()[-1]) if found else 0.0


async def _http_status(live: LiveService, tok: str) -> int:
    async with httpx.AsyncClient(base_url=live.http) as http:
        r = await http.get("/api/crisis-resources")  # open to all: proves the server answers
        assert r.status_code == 200
        r = await http.get("/api/specialists", headers=bearer(tok))
        return r.status_code


# --------------------------------------------------------------------------- lifetime


async def test_a_token_living_longer_than_the_limit_is_refused(service_factory: Any) -> None:
    live: LiveService = service_factory(PEERCHAT_MAX_TOKEN_TTL_S="120")
    century = token("supervisor", "sup-1", ttl_s=100 * YEAR)
    refused = await until_closed(live, hello(century))
    assert (refused.code, refused.frames) == (4001, [])
    assert await _http_status(live, century) == 401
    over = token("supervisor", "sup-1", ttl_s=121)
    assert (await until_closed(live, hello(over))).code == 4001
    assert await _http_status(live, over) == 401
    at_limit = token("supervisor", "sup-1", ttl_s=120)
    client, welcome = await Client.connect(live.ws, at_limit)
    assert welcome["user"]["id"] == "sup-1"
    assert await _http_status(live, at_limit) == 200
    await client.close()
    assert_clean_log(live, century, over, at_limit)


async def test_control_characters_in_sub_or_name_close_4001_without_a_traceback(live: LiveService) -> None:
    bad = [
        _raw_token({"sub": "member\x00x", "role": "member"}),
        _raw_token({"sub": "\x1b[2Jmember", "role": "member"}),
        _raw_token({"sub": "member\ud800", "role": "member"}),
        _raw_token({"sub": "spec\x00", "role": "specialist", "name": "Rosa"}),
        _raw_token({"sub": "member-ok", "role": "member", "name": "Sam\x00"}),
        _raw_token({"sub": "member-ok", "role": "member", "name": "Sam\nSupervisor"}),
        _raw_token({"sub": "member-ok", "role": "member", "name": "Sam\x85"}),
    ]
    for tok in bad:
        refused = await until_closed(live, hello(tok))
        assert (refused.code, refused.frames) == (4001, []), tok
        assert await _http_status(live, tok) == 401
    await assert_still_serving(live)
    assert_clean_log(live, *bad)


async def test_bidi_and_invisible_characters_never_reach_the_peer(live: LiveService) -> None:
    await put_profile(live, "spec-bidi", name="Rosa", tags=["grief"])
    specialist, _ = await Client.connect(live.ws, token("specialist", "spec-bidi", "Rosa"))
    await specialist.call({"type": "availability", "status": "available"}, "availability")
    member, welcome = await Client.connect(
        live.ws, token("member", "acct-bidi", "\u202eSupervisor\u200b Lee\u2066\u00ad")
    )
    assert welcome["user"]["name"] == "Supervisor Lee"
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    offer = await specialist.expect("offer", where=lambda f: f["request_id"] == queued["request_id"])
    started = await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["conversation"]["member"]["alias"] == "Supervisor Lee"
    conv = started["conversation"]["id"]
    await member.expect("conversation_started")
    await member.call({"type": "send", "conversation_id": conv, "client_msg_id": "m1", "body": "hi"}, "ack")
    message = await specialist.expect("message")
    assert message["sender"] == {"role": "member", "name": "Supervisor Lee"}
    # A name with nothing visible left falls back to the neutral default.
    blank, welcome = await Client.connect(live.ws, token("member", "acct-blank", "\u202e\u200b\u3164"))
    assert welcome["user"]["name"] == "Member"
    for c in (specialist, member, blank):
        await c.close()


async def test_the_socket_closes_at_exp(live: LiveService) -> None:
    issued = time.time()
    short = token("member", "acct-short", ttl_s=4, now=issued)
    exp = int(issued) + 4
    member, _ = await Client.connect(live.ws, short)
    other, _ = await Client.connect(live.ws, token("member", "acct-long"))
    code = await member.closed(timeout=30)
    closed_at = time.time()
    assert code == 4001
    assert closed_at >= exp, "not before exp"
    assert closed_at < exp + 10, "soon after exp, even on a loaded machine"
    # The other socket lives on, and the expired token opens nothing, over HTTP or socket.
    assert (await other.call({"type": "history", "conversation_id": "c-none"}, "history"))["type"] == "error"
    assert (await until_closed(live, hello(short))).code == 4001
    assert await _http_status(live, short) == 401
    assert await _metric(live, 'peerchat_token_socket_closes_total{why="expired"}') == 1
    await other.close()
    assert_clean_log(live, short)


async def test_an_expired_socket_that_stops_reading_can_do_nothing_more(live: LiveService) -> None:
    """Review finding 2: the close at `exp` waited behind frames queued for a client that
    stopped reading, and until the writer reached it the server went on handling that
    client's frames: 3 s after `exp` its `send` and `typing` still reached the member. Now
    the socket is refused at once (its frames dropped) and cut if it cannot take its close."""
    pair = await matched(live)
    conv, member = pair.conversation_id, pair.member
    for i in range(30):
        await member.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"m{i}", "body": "x" * 3900}, "ack"
        )
    port = int(live.ws.split(":")[2].split("/")[0])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    ttl = 8
    issued = time.time()
    tok = token("specialist", pair.specialist_id, "Rosa", ttl_s=ttl, now=issued)
    exp = int(issued) + ttl
    ws = await websockets.connect(live.ws, sock=sock, max_queue=1, ping_interval=None, max_size=None)
    try:
        await ws.send(json.dumps({"type": "hello", "token": tok}))
        await ws.recv()  # the welcome; from now on this client never reads again
        for _ in range(45):  # megabytes of history: the server's writer is stuck behind them
            await ws.send(json.dumps({"type": "history", "conversation_id": conv, "limit": 500}))
        await asyncio.sleep(max(0.0, exp - time.time()) + 1.5)  # waiting for exp, not asserting
        member.inbox.clear()
        for i in range(3):
            late = {
                "type": "send",
                "conversation_id": conv,
                "client_msg_id": f"late{i}",
                "body": f"after exp {i}",
            }
            await ws.send(json.dumps(late))
            await ws.send(json.dumps({"type": "typing", "conversation_id": conv}))
        # The server cuts the socket that cannot take its close (CLOSE_GRACE_S after exp).
        try:
            await wait_until(lambda: "did not take its close in time; cut" in live.output(), timeout=40)
            cut = True
        except TimeoutError:
            cut = False
        # Anything the member would get from those frames would come with its own frames:
        # a round trip of the member's own shows the server has handled what came before.
        await member.call({"type": "history", "conversation_id": conv, "limit": 1}, "history")
        got = [(f["type"], f.get("body")) for f in member.inbox if f["type"] in ("message", "peer_typing")]
        assert got == [], f"frames of an expired socket reached the member: {got}"
        db = await asyncpg.connect(live.env["DATABASE_URL"])
        try:
            stored = await db.fetchval("SELECT count(*) FROM messages WHERE body LIKE 'after exp%'")
        finally:
            await db.close()
        assert stored == 0
        assert cut, "a socket that does not read its close is cut"
    finally:
        ws.transport.abort()
    assert await _metric(live, 'peerchat_token_socket_closes_total{why="expired"}') == 1
    assert_clean_log(live, tok, "after exp")


async def test_reauth_moves_the_deadline(live: LiveService) -> None:
    issued = time.time()
    member, _ = await Client.connect(live.ws, token("member", "acct-re", "Sam", ttl_s=4, now=issued))
    fresh_issued = int(time.time())
    fresh = token("member", "acct-re", "Sam", ttl_s=600, now=fresh_issued)
    reauthed = await member.call({"type": "reauth", "token": fresh}, "reauthed")
    assert reauthed["type"] == "reauthed", reauthed
    assert datetime.fromisoformat(reauthed["exp"]).timestamp() == fresh_issued + 600
    assert reauthed["exp"].endswith("Z")
    # Past the first token's exp the socket still works.
    await asyncio.sleep(max(0.0, issued + 4 + 1.5 - time.time()))
    queued = await member.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued", queued
    assert member.closed_code is None
    await member.close()


async def test_reauth_as_anyone_else_closes_4001(live: LiveService) -> None:
    others = {
        "another sub": token("member", "acct-other"),
        "another role, same sub": token("specialist", "acct-me"),
        "not a token": "garbage",
        "expired": token("member", "acct-me", ttl_s=60, now=time.time() - 120),
        "too long-lived": token("member", "acct-me", ttl_s=100 * YEAR),
    }
    for why, tok in others.items():
        member, _ = await Client.connect(live.ws, token("member", "acct-me"))
        await member.send({"type": "reauth", "token": tok})
        assert await member.closed(timeout=15) == 4001, why
        assert not member.drain("reauthed"), why
    await assert_still_serving(live)
    assert_clean_log(live, *others.values())


# --------------------------------------------------------------------------- revocation


async def test_revocation_closes_every_socket_on_every_process_and_refuses_old_tokens(
    service_factory: Any, redis_client: redis.Redis, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    old = token("member", "acct-rev", "Sam")
    on_a, _ = await Client.connect(a.ws, old)
    on_b, _ = await Client.connect(b.ws, old)
    on_b2, _ = await Client.connect(b.ws, token("member", "acct-rev", "Sam"))
    # Same sub, another role: another person, untouched.
    bystander, _ = await Client.connect(b.ws, token("specialist", "acct-rev"))
    doorbell = redis_client.pubsub()
    await doorbell.psubscribe("*")
    supervisor = token("supervisor", "sup-rev", "Lee")

    asked = time.monotonic()
    async with httpx.AsyncClient(base_url=a.http) as http:
        r = await http.post(
            "/api/revocations",
            json={"role": "member", "sub": "acct-rev", "reason": "lost device"},
            headers=bearer(supervisor),
        )
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "member" and r.json()["sub"] == "acct-rev"
    codes = await asyncio.gather(*(c.closed(timeout=15) for c in (on_a, on_b, on_b2)))
    took = time.monotonic() - asked
    assert codes == [4001, 4001, 4001]
    assert took < 2.0, f"sockets closed {took:.2f} s after the revocation was asked"
    assert bystander.closed_code is None

    # The old token is refused everywhere, over a socket and over HTTP.
    for live in (a, b):
        assert (await until_closed(live, hello(old))).code == 4001
    async with httpx.AsyncClient(base_url=b.http) as http:
        r = await http.get("/api/conversations/c-none/messages", headers=bearer(old))
        assert r.status_code == 401
    # A token issued after the revocation opens a socket again.
    new = token("member", "acct-rev", "Sam", now=time.time() + 1.5)
    again, _ = await Client.connect(b.ws, new)
    assert (await again.call({"type": "request", "tags": ["grief"]}, "queued"))["type"] == "queued"

    # Audited; and nothing on Redis named whose access ended.
    db = await asyncpg.connect(database_url)
    try:
        row = await db.fetchrow("SELECT actor_id, action, reason FROM audit_log WHERE action = 'revoke'")
    finally:
        await db.close()
    assert row is not None and row["actor_id"] == "sup-rev" and "lost device" in row["reason"]
    seen: list[bytes] = []
    while (m := await doorbell.get_message(timeout=0.2)) is not None:
        if m["type"] == "pmessage":
            seen.append(m["channel"] + b" " + m["data"])
    assert any(s.startswith(b"pc:revocations ") for s in seen), seen
    assert not any(b"acct-rev" in s and s.startswith(b"pc:revocations") for s in seen)
    await doorbell.aclose()  # type: ignore[no-untyped-call]
    for c in (again, bystander):
        await c.close()
    assert_clean_log(a, old, new)
    assert_clean_log(b, old, new)


async def test_only_a_supervisor_revokes_and_bad_requests_get_400(live: LiveService) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        body = {"role": "member", "sub": "acct-x"}
        r = await http.post("/api/revocations", json=body, headers=bearer(token("specialist", "spec-x")))
        assert r.status_code == 403
        r = await http.post("/api/revocations", json=body)
        assert r.status_code == 401
        sup = bearer(token("supervisor", "sup-x"))
        for bad in (
            {"role": "admin", "sub": "acct-x"},
            {"role": "member", "sub": ""},
            {"role": "member", "sub": "x" * 65},
            {"role": "member", "sub": "acct\x00"},
            {"role": "member"},
            {"role": "member", "sub": "acct-x", "extra": 1},
        ):
            r = await http.post("/api/revocations", json=bad, headers=sup)
            assert r.status_code == 400, (bad, r.text)
        r = await http.post("/api/revocations", content=b"{not json", headers=sup)
        assert r.status_code == 400
    await assert_still_serving(live)
    assert_clean_log(live)


# --------------------------------------------------------------------------- socket cap


async def test_the_socket_cap_holds_across_processes_and_recovers(
    service_factory: Any, redis_client: redis.Redis
) -> None:
    env = {"PEERCHAT_MAX_SOCKETS_PER_USER": "3"}
    a: LiveService = service_factory(**env)
    b: LiveService = service_factory(**env)
    tok = token("member", "acct-cap", "Sam")
    held = [
        (await Client.connect(a.ws, tok))[0],
        (await Client.connect(a.ws, tok))[0],
        (await Client.connect(b.ws, tok))[0],
    ]
    for live in (a, b):
        refused = await until_closed(live, hello(tok))
        assert refused.code == 4029
        assert [f["type"] for f in refused.frames] == ["error"]
        assert refused.frames[0]["code"] == "too_many_connections"
    assert await _metric(a, "peerchat_socket_cap_refusals_total") == 1
    # Another person (same sub, other role) is counted apart.
    other, _ = await Client.connect(b.ws, token("specialist", "acct-cap"))
    # The counts are keyed by a keyed HMAC of (role, sub): two keys, neither naming the account.
    keys = [k async for k in redis_client.scan_iter("pc:sockets:*")]
    assert len(keys) == 2 and not any(b"acct-cap" in k for k in keys), keys
    assert sorted([await redis_client.zcard(k) for k in keys]) == [1, 3]

    # A closed socket gives its slot back, on either process.
    await held.pop(0).close()

    async def one_more_fits() -> bool:
        try:
            extra, _ = await Client.connect(b.ws, tok)
        except AssertionError:
            return False
        held.append(extra)
        return True

    await wait_until(one_more_fits, timeout=15, every=0.2)
    assert (await until_closed(a, hello(tok))).code == 4029
    for c in (*held, other):
        await c.close()
    await wait_until(lambda: one_more_fits(), timeout=15, every=0.2)
    for c in held:
        await c.close()
    assert_clean_log(a, tok)
    assert_clean_log(b, tok)


async def test_a_burst_of_sockets_across_processes_gets_exactly_the_cap(
    service_factory: Any, redis_client: redis.Redis
) -> None:
    env = {"PEERCHAT_MAX_SOCKETS_PER_USER": "3"}
    a: LiveService = service_factory(**env)
    b: LiveService = service_factory(**env)
    tok = token("member", "acct-burst", "Sam")
    # Twelve handshakes at once, alternating processes, each held open until all answered.
    sockets = [await websockets.connect(live.ws) for live in [a, b] * 6]
    await asyncio.gather(*(ws.send(hello(tok)) for ws in sockets))
    firsts = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 15) for ws in sockets))
    kinds = [msgspec.json.decode(raw)["type"] for raw in firsts]
    codes = [msgspec.json.decode(raw).get("code") for raw in firsts]
    assert kinds.count("welcome") == 3, kinds
    assert codes.count("too_many_connections") == 9, codes
    for ws, kind in zip(sockets, kinds, strict=True):
        if kind == "error":
            await asyncio.wait_for(ws.wait_closed(), 15)
            assert ws.close_code == 4029
        await ws.close()


async def test_a_crashed_process_does_not_leak_its_slots(
    service_factory: Any, redis_client: redis.Redis
) -> None:
    env = {"PEERCHAT_MAX_SOCKETS_PER_USER": "1", "PEERCHAT_PRESENCE_TTL_S": "2"}
    a: LiveService = service_factory(**env)
    b: LiveService = service_factory(**env)
    tok = token("member", "acct-crash", "Sam")
    doomed, _ = await Client.connect(a.ws, tok)
    assert (await until_closed(b, hello(tok))).code == 4029
    a.kill()  # no goodbye: its lease is never removed, only no longer renewed
    await doomed.closed(timeout=15)

    async def fits() -> bool:
        try:
            survivor, _ = await Client.connect(b.ws, tok)
        except AssertionError:
            return False
        await survivor.close()
        return True

    await wait_until(fits, timeout=20, every=0.3)
