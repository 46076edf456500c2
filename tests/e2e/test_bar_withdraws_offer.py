"""A block or a report that lands while the barred specialist holds a pending offer for the
member's open request withdraws that offer at once (PRODUCT.md §9, §7): the holder gets
`offer_revoked`, and the request goes to the next candidate without waiting out an offer
that could never be accepted. Two real processes; the offer timeout is long, so only the
withdrawal can move the request on within the test's waits."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.client import Client, token
from tests.support.database import fetchval
from tests.support.flows import assert_clean_log, matched, put_profile
from tests.support.servers import LiveService

# No wrap-up between conversations (PRODUCT.md §8), and offers that would outlive the test.
ENV = {"PEERCHAT_WRAP_UP_S": "0.01", "PEERCHAT_WRAP_UP_URGENT_S": "0.01", "PEERCHAT_OFFER_TIMEOUT_S": "600"}


async def _state_of_offer(database_url: str, offer_id: str) -> Any:
    return await fetchval(database_url, "SELECT state FROM offers WHERE id = $1", offer_id)


async def _available(live: LiveService, sid: str, name: str, tag: str = "anger") -> Client:
    await put_profile(live, sid, name=name, tags=[tag])
    client, _ = await Client.connect(live.ws, token("specialist", sid, name))
    status = await client.call({"type": "availability", "status": "available"}, "availability")
    assert status["status"] == "available", status
    return client


async def _ends_and_asks_again(
    member: Client, holder: Client, conversation_id: str
) -> tuple[str, dict[str, Any]]:
    """The member ends their conversation with `holder` and asks again (tag `anger`): the new
    request's id, and the offer of it `holder` gets."""
    await member.call({"type": "end", "conversation_id": conversation_id}, "conversation_ended")
    await holder.expect("conversation_ended")
    queued = await member.call({"type": "request", "tags": ["anger"]}, "queued")
    request_id: str = queued["request_id"]
    held = await holder.expect("offer", where=lambda m: m["request_id"] == request_id, timeout=20)
    return request_id, held


async def test_a_block_then_a_report_withdraw_the_barred_specialists_pending_offer(
    service_factory: type, database_url: str
) -> None:
    a: LiveService = service_factory(**ENV)
    b: LiveService = service_factory(**ENV)
    pair = await matched(a, member_id="acct-withdraw", specialist_id="spec-rosa", tag="anger")
    member, rosa = pair.member, pair.specialist
    # The member asks again; Rosa, the only one available, holds the offer.
    request_id, held = await _ends_and_asks_again(member, rosa, pair.conversation_id)
    # Ben, on the other process, is free too, but one offer per request at a time.
    ben = await _available(b, "spec-ben", "Ben")

    # Rosa blocks the member of the ended conversation: her offer is withdrawn, Ben gets it.
    blocked = await rosa.call(
        {"type": "block", "conversation_id": pair.conversation_id, "reason": "threats qw1", "end": False},
        "blocked",
    )
    assert blocked["type"] == "blocked", blocked
    revoked = await rosa.expect("offer_revoked", timeout=20)
    assert revoked == {"type": "offer_revoked", "offer_id": held["offer_id"], "reason": "blocked"}
    assert await _state_of_offer(database_url, held["offer_id"]) == "revoked"
    offered = await ben.expect("offer", where=lambda m: m["request_id"] == request_id, timeout=20)
    # Too late for Rosa's accept, whichever device tries it.
    late = await rosa.call({"type": "accept", "offer_id": held["offer_id"]}, "conversation_started")
    assert (late["type"], late["code"]) == ("error", "offer_expired")
    started = await ben.call({"type": "accept", "offer_id": offered["offer_id"]}, "conversation_started")
    with_ben = started["conversation"]["id"]
    await member.expect("conversation_started", where=lambda m: m["conversation"]["id"] == with_ben)

    # After that conversation the member asks again; Ben holds the offer (Rosa is barred) when
    # the member reports Ben's conversation: Ben's offer goes too, to Cleo on process a.
    second, held_by_ben = await _ends_and_asks_again(member, ben, with_ben)
    cleo = await _available(a, "spec-cleo", "Cleo")
    reported = await member.call(
        {"type": "report", "conversation_id": with_ben, "reason": "rude", "details": "mocked me qw2"},
        "reported",
    )
    assert reported["type"] == "reported", reported
    withdrawn = await ben.expect("offer_revoked", timeout=20)
    # Ben is not told why: a report is for supervisors.
    assert withdrawn == {"type": "offer_revoked", "offer_id": held_by_ben["offer_id"], "reason": "withdrawn"}
    assert await _state_of_offer(database_url, held_by_ben["offer_id"]) == "revoked"
    to_cleo = await cleo.expect("offer", where=lambda m: m["request_id"] == second, timeout=20)
    assert to_cleo["offer_id"] != held_by_ben["offer_id"]

    # Neither barred specialist was offered the member's requests again.
    for barred, request in ((rosa, request_id), (ben, second)):
        assert not [m for m in barred.inbox if m["type"] == "offer" and m["request_id"] == request]
    for client in (member, rosa, ben, cleo):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc, "qw1", "qw2")


async def test_a_report_while_a_cold_transfer_waits_is_about_who_handed_it_on(
    live: LiveService, database_url: str
) -> None:
    pair = await matched(live, member_id="acct-cold-report", specialist_id="spec-cold-rosa", tag="debt")
    waiting = await pair.specialist.call(
        {"type": "transfer", "conversation_id": pair.conversation_id, "note": "qw3"}, "transfer"
    )
    assert (waiting["type"], waiting["state"]) == ("transfer", "waiting"), waiting
    await pair.member.expect("transfer", where=lambda m: m["state"] == "waiting", timeout=20)
    # Nobody holds the conversation now; the member reports the one who just handed it on.
    reported = await pair.member.call(
        {"type": "report", "conversation_id": pair.conversation_id, "reason": "rude"}, "reported"
    )
    assert reported["type"] == "reported", reported
    db = await asyncpg.connect(database_url)
    try:
        about = await db.fetchval(
            "SELECT specialist_id FROM reports WHERE conversation_id = $1", pair.conversation_id
        )
        avoid = await db.fetchval(
            "SELECT avoid FROM requests WHERE transfer_of = $1 AND state IN ('waiting', 'offered')",
            pair.conversation_id,
        )
    finally:
        await db.close()
    assert about == "spec-cold-rosa"
    # And the conversation's queue entry will never go back to her (it never would anyway).
    assert "spec-cold-rosa" in avoid
    for client in (pair.member, pair.specialist):
        await client.close()
    assert_clean_log(live, "qw3")


async def test_a_report_withdraws_a_warm_transfer_offered_to_the_reported_specialist(
    live: LiveService, database_url: str
) -> None:
    # The member talked with Ben before; now they talk with Ana, who asks Ben to take it.
    first = await matched(live, member_id="acct-warm-bar", specialist_id="spec-warm-ben", tag="loss")
    member, ben = first.member, first.specialist
    await member.call({"type": "end", "conversation_id": first.conversation_id}, "conversation_ended")
    await ben.expect("conversation_ended")
    await ben.call({"type": "availability", "status": "away"}, "availability")
    ana = await _available(live, "spec-warm-ana", "Ana", "loss")
    queued = await member.call({"type": "request", "tags": ["loss"]}, "queued")
    offer = await ana.expect("offer", where=lambda m: m["request_id"] == queued["request_id"], timeout=20)
    started = await ana.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    second = started["conversation"]["id"]
    await ana.call(
        {"type": "transfer", "conversation_id": second, "to_specialist": "spec-warm-ben", "note": "qw4"},
        "transfer",
    )
    warm = await ben.expect("offer", where=lambda m: m.get("transfer") is not None, timeout=20)

    # The member reports their earlier conversation with Ben: the warm offer goes at once,
    # and Ana, who keeps the conversation, is told it could not happen.
    await member.call(
        {"type": "report", "conversation_id": first.conversation_id, "reason": "rude"}, "reported"
    )
    revoked = await ben.expect("offer_revoked", timeout=20)
    assert revoked == {"type": "offer_revoked", "offer_id": warm["offer_id"], "reason": "withdrawn"}
    failed = await ana.expect("transfer_failed", timeout=20)
    assert failed == {"type": "transfer_failed", "conversation_id": second, "reason": "unavailable"}
    db = await asyncpg.connect(database_url)
    try:
        state = await db.fetchval("SELECT state FROM transfers WHERE id = $1", warm["offer_id"])
        owner = await db.fetchval("SELECT specialist_id FROM conversations WHERE id = $1", second)
    finally:
        await db.close()
    assert (state, owner) == ("cancelled", "spec-warm-ana")
    late = await ben.call({"type": "accept", "offer_id": warm["offer_id"]}, "conversation_started")
    assert late["type"] == "error", late
    for client in (member, ben, ana):
        await client.close()
    assert_clean_log(live, "qw4")
