"""Transfer (PRODUCT.md §8, §9) edge cases found in review, end to end over real processes:
the handing-on specialist's wrap-up of the conversation they handed on, and a member who
cancels the queue entry of their own cold transfer."""

from __future__ import annotations

import asyncio

from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.flows import assert_clean_log, matched, put_profile
from tests.support.servers import LiveService
from tests.support.transfers import available_specialist, cold_transfer, conversation_holder


async def test_the_handing_on_specialist_records_their_wrap_up_and_the_next_keeps_theirs(
    service_factory: type, database_url: str
) -> None:
    # §8: a conversation that ends for a specialist by a transfer away starts their wrap-up,
    # and their `wrap_up` records its outcome and may end it early, like any other end.
    live: LiveService = service_factory(PEERCHAT_WRAP_UP_S="60")
    pair = await matched(live, member_id="acct-wrap", specialist_id="spec-ana")
    conv = pair.conversation_id
    await pair.specialist.call({"type": "transfer", "conversation_id": conv, "note": "n"}, "transfer")
    ended = await pair.specialist.expect("conversation_ended", timeout=20)
    assert ended["reason"] == "transferred"
    notice = await pair.specialist.expect("availability", where=lambda a: a.get("wrap_up_until"), timeout=20)

    saved = await pair.specialist.call(
        {
            "type": "wrap_up",
            "conversation_id": conv,
            "outcome": "handed on to a colleague",
            "risk_level": "low",
        },
        "wrap_up_saved",
    )
    assert saved["type"] == "wrap_up_saved", saved
    assert saved["wrap_up_until"] < notice["wrap_up_until"]  # ended early (not urgent)

    # A specialist who never held it still may not.
    stranger, _ = await Client.connect(live.ws, token("specialist", "spec-x", "Ann"))
    not_theirs = await stranger.call(
        {"type": "wrap_up", "conversation_id": conv, "outcome": "x", "risk_level": "none"}, "wrap_up_saved"
    )
    assert not_theirs["code"] == "not_found"

    # The next specialist takes it, it ends, and they record theirs: both outcomes are kept,
    # each under its own specialist.
    ben = await available_specialist(live, "spec-ben", "Ben")
    offer = await ben.expect("offer", where=lambda o: o.get("transfer") is not None, timeout=30)
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["conversation"]["id"] == conv
    await pair.member.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    await ben.expect("conversation_ended", timeout=20)
    theirs = await ben.call(
        {"type": "wrap_up", "conversation_id": conv, "outcome": "talked it through", "risk_level": "none"},
        "wrap_up_saved",
    )
    assert theirs["type"] == "wrap_up_saved", theirs
    rows = await fetch(
        database_url,
        "SELECT specialist_id, outcome FROM wrap_ups WHERE conversation_id = $1 ORDER BY specialist_id",
        conv,
    )
    assert [(r["specialist_id"], r["outcome"]) for r in rows] == [
        ("spec-ana", "handed on to a colleague"),
        ("spec-ben", "talked it through"),
    ]
    for client in (pair.member, pair.specialist, stranger, ben):
        await client.close()
    assert_clean_log(live)


async def test_a_member_cannot_cancel_their_cold_transfer_into_a_conversation_nobody_holds(
    service_factory: type, database_url: str
) -> None:
    # While a cold transfer waits, its queue entry is the conversation's (the member's
    # `welcome` shows the conversation `waiting`, not a request). Cancelling it anyway must
    # not leave the conversation active, held by nobody and queued for nobody.
    live: LiveService = service_factory()
    pair = await matched(live, member_id="acct-cancel", specialist_id="spec-cold")
    conv = pair.conversation_id
    await cold_transfer(pair)
    rows = await fetch(database_url, "SELECT id FROM requests WHERE transfer_of = $1", conv)
    request_id = rows[0]["id"]
    second, welcome = await Client.connect(live.ws, token("member", "acct-cancel", "Sam"))
    assert welcome["requests"] == []
    assert [(c["id"], c["transfer"]) for c in welcome["conversations"]] == [(conv, {"state": "waiting"})]

    refused = await second.call({"type": "cancel", "request_id": request_id}, "cancelled")
    assert refused["type"] == "error" and refused["code"] == "invalid_state", refused
    # Nothing changed: still waiting in the queue for the next specialist, who gets it.
    assert [
        r["state"] for r in await fetch(database_url, "SELECT state FROM requests WHERE id = $1", request_id)
    ] == ["waiting"]
    ben = await available_specialist(live, "spec-next", "Ben")
    offer = await ben.expect("offer", timeout=30)
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["conversation"]["id"] == conv
    assert await conversation_holder(database_url, conv) == ("active", "spec-next")
    for client in (pair.member, pair.specialist, second, ben):
        await client.close()
    assert_clean_log(live)


async def test_an_end_during_a_transfer_withdraws_its_offer_from_whoever_holds_it(
    service_factory: type, database_url: str
) -> None:
    # A transfer under way ends with its conversation; the specialist offered it must be
    # told (`offer_revoked`), not left with an offer whose accept can only fail.
    a: LiveService = service_factory()
    b: LiveService = service_factory()
    await put_profile(a, "spec-warm", name="Ben", tags=["grief"])
    ben, _ = await Client.connect(b.ws, token("specialist", "spec-warm", "Ben"))
    await ben.settled()  # online, away
    pair = await matched(a, member_id="acct-ends", specialist_id="spec-ana")
    conv = pair.conversation_id
    await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-warm", "note": "n"}, "transfer"
    )
    warm = await ben.expect("offer", timeout=20)
    await pair.member.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    revoked = await ben.expect("offer_revoked", where=lambda r: r["offer_id"] == warm["offer_id"], timeout=20)
    assert revoked["offer_id"] == warm["offer_id"]

    # Cold: the queue entry's offer is withdrawn from its holder the same way.
    second = await matched(a, member_id="acct-ends-2", specialist_id="spec-cole", tag="loss")
    await put_profile(a, "spec-warm", name="Ben", tags=["grief", "loss"])
    await second.specialist.call(
        {"type": "transfer", "conversation_id": second.conversation_id, "note": "n"}, "transfer"
    )
    await ben.call({"type": "availability", "status": "available"}, "availability")
    cold = await ben.expect(
        "offer",
        where=lambda o: (o.get("transfer") or {}).get("conversation_id") == second.conversation_id,
        timeout=30,
    )
    await second.member.call({"type": "end", "conversation_id": second.conversation_id}, "conversation_ended")
    revoked = await ben.expect("offer_revoked", where=lambda r: r["offer_id"] == cold["offer_id"], timeout=20)
    assert revoked["offer_id"] == cold["offer_id"]
    late = await ben.call({"type": "accept", "offer_id": cold["offer_id"]}, "conversation_started")
    assert late["type"] == "error" and late["code"] == "offer_expired"
    assert await conversation_holder(database_url, second.conversation_id) == ("ended", "")
    for client in (pair.member, pair.specialist, second.member, second.specialist, ben):
        await client.close()
    for svc in (a, b):
        assert_clean_log(svc)


async def test_a_warm_transfer_whose_process_died_still_expires_and_the_sender_is_told(
    service_factory: type, database_url: str
) -> None:
    # The warm offer's expiry was a timer in the process that sent it: a crash or a rolling
    # restart of that process left the sender waiting for an answer that never came.
    a: LiveService = service_factory(PEERCHAT_OFFER_TIMEOUT_S="3")
    b: LiveService = service_factory(PEERCHAT_OFFER_TIMEOUT_S="3")
    await put_profile(b, "spec-target", name="Ben", tags=["grief"])
    ben, _ = await Client.connect(b.ws, token("specialist", "spec-target", "Ben"))
    await ben.settled()
    pair = await matched(a, member_id="acct-crash", specialist_id="spec-sender")
    conv = pair.conversation_id
    asked = await pair.specialist.call(
        {"type": "transfer", "conversation_id": conv, "to_specialist": "spec-target", "note": "n"}, "transfer"
    )
    assert asked["state"] == "waiting"
    await ben.expect("offer", timeout=20)
    a.kill()
    sender, _ = await Client.connect(b.ws, token("specialist", "spec-sender", "Rosa"))
    failed = await sender.expect("transfer_failed", timeout=40)
    assert failed == {"type": "transfer_failed", "conversation_id": conv, "reason": "expired"}
    rows = await fetch(database_url, "SELECT state FROM transfers WHERE conversation_id = $1", conv)
    assert [r["state"] for r in rows] == ["expired"]
    assert await conversation_holder(database_url, conv) == ("active", "spec-sender")
    for client in (sender, ben):
        await client.close()
    assert_clean_log(b)


async def test_the_next_specialist_learns_the_conversation_is_high_risk(
    service_factory: type, database_url: str
) -> None:
    # §8: the first risk phrase marks a conversation `risk: "high"` and tells its specialist
    # `risk` once. One handed on after that (or marked while it waited for nobody) must not
    # reach its next specialist looking like any other.
    live: LiveService = service_factory()
    pair = await matched(live, member_id="acct-risk", specialist_id="spec-first")
    conv = pair.conversation_id
    await cold_transfer(pair)
    # While it waits for nobody, the member discloses.
    for body in ("hello again", "i want to die"):
        ack = await pair.member.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": body, "body": body}, "ack"
        )
        assert ack["type"] == "ack", ack
    marked = await fetch(database_url, "SELECT risk FROM conversations WHERE id = $1", conv)
    for _ in range(100):
        if marked[0]["risk"] == "high":
            break
        await asyncio.sleep(0.1)
        marked = await fetch(database_url, "SELECT risk FROM conversations WHERE id = $1", conv)
    assert marked[0]["risk"] == "high"

    ben = await available_specialist(live, "spec-next", "Ben")
    offer = await ben.expect("offer", timeout=30)
    started = await ben.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
    assert started["conversation"]["id"] == conv
    risk = await ben.expect("risk", timeout=20)
    assert risk == {"type": "risk", "conversation_id": conv, "level": "high", "seq": 2}
    for client in (pair.member, pair.specialist, ben):
        await client.close()
    assert_clean_log(live)
