"""Transfers as people see them (PRODUCT.md §5, §9; issue 16's leftovers), end to end over
real processes: what each side's `welcome` shows of a transfer under way after a reload,
what supervisors see of it (live and on the list of conversations), what the member is left
with when they stay away through a cold wait, and a supervisor's warm transfer."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.flows import assert_clean_log, matched
from tests.support.servers import LiveService, wait_until
from tests.support.transfers import cold_transfer, online_specialist


async def test_a_member_away_past_the_grace_during_a_cold_wait_finds_it_ended_not_a_stranger_request(
    service_factory: type, database_url: str
) -> None:
    # §5: past the grace "an active conversation is ended by system with reason peer_gone";
    # a cold transfer's conversation is active throughout (§9), and its queue entry is the
    # conversation's, not a request the member made: no `cancelled abandoned` for it.
    live: LiveService = service_factory(PEERCHAT_MEMBER_GRACE_S="2")
    pair = await matched(live, member_id="acct-away", specialist_id="spec-cold")
    conv = pair.conversation_id
    supervisor, _ = await Client.connect(live.ws, token("supervisor", "sup-away", "Dana"))
    assert (await supervisor.call({"type": "watch_queues"}, "queue_stats"))["type"] == "queue_stats"
    assert (await cold_transfer(pair))["state"] == "waiting"
    assert (await supervisor.expect("transfer_status", timeout=20)).get("transfer") == {"state": "waiting"}
    [entry] = await fetch(database_url, "SELECT id FROM requests WHERE transfer_of = $1", conv)
    await pair.member.close()

    async def ended() -> bool:
        rows = await fetch(database_url, "SELECT state FROM conversations WHERE id = $1", conv)
        return bool(rows[0]["state"] == "ended")

    await wait_until(ended, timeout=60)
    # Supervisors see the transfer is over (the end cancelled it).
    assert await supervisor.expect("transfer_status", timeout=20) == {
        "type": "transfer_status",
        "conversation_id": conv,
    }
    [row] = await fetch(
        database_url, "SELECT ended_by, end_reason, specialist_id FROM conversations WHERE id = $1", conv
    )
    assert (row["ended_by"], row["end_reason"], row["specialist_id"]) == ("system", "peer_gone", "")
    [request] = await fetch(
        database_url, "SELECT state, cancel_reason, reason_untold FROM requests WHERE id = $1", entry["id"]
    )
    assert (request["state"], request["cancel_reason"], request["reason_untold"]) == (
        "cancelled",
        None,
        False,
    )
    assert [
        r["state"]
        for r in await fetch(database_url, "SELECT state FROM transfers WHERE conversation_id = $1", conv)
    ] == ["cancelled"]

    back, welcome = await Client.connect(live.ws, token("member", "acct-away", "Sam"), resume={conv: 0})
    assert welcome["requests"] == [] and welcome["conversations"] == []
    gone = await back.expect("conversation_ended", timeout=20)
    assert (gone["conversation_id"], gone["by"], gone["reason"]) == (conv, "system", "peer_gone")
    # Cancellations untold are pushed right after `welcome`, before any resumed frame.
    assert [f for f in back.received if f["type"] == "cancelled"] == []
    # Free to ask again at once.
    again = await back.call({"type": "request", "tags": ["grief"]}, "queued")
    assert again["type"] == "queued", again
    for client in (pair.specialist, back, supervisor):
        await client.close()
    assert_clean_log(live)


async def test_a_supervisors_warm_transfer_is_offered_accepted_joined_and_audited(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a, member_id="acct-supwarm", specialist_id="spec-tired")
    conv = pair.conversation_id
    ben = await online_specialist(b, "spec-fresh", "Ben")
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-w", "Dana"))
    asked = await supervisor.call(
        {
            "type": "transfer",
            "conversation_id": conv,
            "to_specialist": "spec-fresh",
            "note": "fresh eyes sw1",
        },
        "transfer",
    )
    assert (asked["type"], asked["state"]) == ("transfer", "waiting"), asked
    offer = await ben.expect("offer", timeout=20)
    # The specialist who keeps it until then sees it is on offer, and to whom.
    told = await pair.specialist.expect("transfer_status", timeout=20)
    assert (told["conversation_id"], told["transfer"]["state"], told["transfer"]["to"]) == (
        conv,
        "offered",
        {"id": "spec-fresh", "name": "Ben"},
    )
    # The offer names the specialist whose conversation it is, not the supervisor.
    assert offer["transfer"] == {"conversation_id": conv, "from": {"name": "Rosa"}, "note": "fresh eyes sw1"}
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["type"] == "conversation_started", started
    assert started["conversation"]["id"] == conv
    assert started["transfer"] == {"from": {"name": "Rosa"}, "note": "fresh eyes sw1"}
    ended = await pair.specialist.expect("conversation_ended", timeout=20)
    assert (ended["by"], ended["reason"]) == ("specialist", "transferred")
    joined = await pair.member.expect("transfer", timeout=20)
    assert joined == {
        "type": "transfer",
        "conversation_id": conv,
        "state": "joined",
        "specialist": {"id": "spec-fresh", "name": "Ben"},
    }
    [holder] = await fetch(database_url, "SELECT specialist_id FROM conversations WHERE id = $1", conv)
    assert holder["specialist_id"] == "spec-fresh"
    audit = await fetch(
        database_url,
        "SELECT actor_id, actor_role, conversation_id, target FROM audit_log WHERE action = 'transfer'",
    )
    assert [tuple(r.values()) for r in audit] == [("sup-w", "supervisor", conv, "spec-fresh")]
    [row] = await fetch(
        database_url, "SELECT state, by_role, by_id FROM transfers WHERE conversation_id = $1", conv
    )
    assert tuple(row.values()) == ("accepted", "supervisor", "sup-w")
    assert not any("sw1" in str(frame) for frame in pair.member.received)
    for client in (pair.member, pair.specialist, ben, supervisor):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "sw1")


async def _listed(live: LiveService, conversation_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        got = await http.get(
            f"{live.http}/api/conversations",
            params={"state": "active"},
            headers={"Authorization": f"Bearer {token('supervisor', 'sup-list', 'Lu')}"},
        )
    assert got.status_code == 200, got.text
    [row] = [c for c in got.json()["conversations"] if c["id"] == conversation_id]
    return dict(row)


async def test_a_transfer_under_way_shows_after_a_reload_to_each_side_and_live_to_supervisors(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    pair = await matched(a, member_id="acct-reload", specialist_id="spec-ana")
    conv = pair.conversation_id
    supervisor, _ = await Client.connect(b.ws, token("supervisor", "sup-live", "Dana"))
    stats = await supervisor.call({"type": "watch_queues"}, "queue_stats")
    assert stats["type"] == "queue_stats", stats
    ben = await online_specialist(b, "spec-ben", "Ben")

    # Warm: asked, not yet accepted.
    asked = await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-ben"}, "transfer"
    )
    assert asked["type"] == "transfer", asked
    offer = await ben.expect("offer", timeout=20)
    offered = {"state": "offered", "to": {"id": "spec-ben", "name": "Ben"}}
    status = await supervisor.expect("transfer_status", timeout=20)
    assert status["conversation_id"] == conv
    assert {k: status["transfer"][k] for k in ("state", "to")} == offered
    assert "expires_at" in status["transfer"]
    assert (await _listed(a, conv))["transfer"] == status["transfer"]
    # The sender reloads (another device, the other process): their conversation says so.
    ana_again, welcome = await Client.connect(b.ws, token("specialist", "spec-ana", "Rosa"))
    [summary] = welcome["conversations"]
    assert (summary["id"], summary["transfer"]) == (conv, status["transfer"])
    # The member is told nothing of a warm transfer until it is accepted.
    sam_again, welcome = await Client.connect(b.ws, token("member", "acct-reload", "Sam"))
    [summary] = welcome["conversations"]
    assert "transfer" not in summary and summary["peer"]["id"] == "spec-ana"

    # Declined: over, for everyone.
    declined = await ben.call({"type": "decline", "offer_id": offer["offer_id"]}, "declined")
    assert declined["type"] == "declined", declined
    over = await supervisor.expect("transfer_status", timeout=20)
    assert over == {"type": "transfer_status", "conversation_id": conv}
    assert (await _listed(a, conv))["transfer"] is None
    _, welcome = await Client.connect(a.ws, token("specialist", "spec-ana", "Rosa"))
    assert "transfer" not in welcome["conversations"][0]

    # Cold: back in the queue, held by nobody.
    cold = await pair.specialist.call({"type": "transfer", "conversation_id": conv}, "transfer")
    assert cold["type"] == "transfer", cold
    assert (await pair.member.expect("transfer", timeout=20))["state"] == "waiting"
    status = await supervisor.expect("transfer_status", timeout=20)
    assert status == {"type": "transfer_status", "conversation_id": conv, "transfer": {"state": "waiting"}}
    assert (await _listed(a, conv))["transfer"] == {"state": "waiting"}
    _, welcome = await Client.connect(b.ws, token("member", "acct-reload", "Sam"))
    assert welcome["requests"] == []  # its queue entry is the conversation's, not theirs
    [summary] = welcome["conversations"]
    assert summary["id"] == conv and summary["transfer"] == {"state": "waiting"}
    assert "peer" not in summary
    _, welcome = await Client.connect(a.ws, token("specialist", "spec-ana", "Rosa"))
    assert welcome["conversations"] == []  # handed on: no longer hers

    # Ben takes it: over again, and the row names him.
    await ben.call({"type": "availability", "status": "available"}, "availability")
    cold_offer = await ben.expect("offer", where=lambda o: o.get("transfer"), timeout=30)
    await ben.call({"type": "accept", "offer_id": cold_offer["offer_id"]}, "conversation_started")
    over = await supervisor.expect("transfer_status", timeout=20)
    assert over == {"type": "transfer_status", "conversation_id": conv}
    row = await _listed(a, conv)
    assert row["transfer"] is None and row["specialist"] == {"id": "spec-ben", "name": "Ben"}
    _, welcome = await Client.connect(a.ws, token("member", "acct-reload", "Sam"))
    [summary] = welcome["conversations"]
    assert "transfer" not in summary and summary["peer"]["id"] == "spec-ben"
    for client in (pair.member, pair.specialist, supervisor, ben, ana_again, sam_again):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc)
