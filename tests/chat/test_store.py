"""chat/store against a real PostgreSQL: every rule that keeps a person safe from a race is
held by the database, so these tests race for real (asyncio.gather over a pool)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from chat.people import Person, member, specialist
from chat.store import assignment, audit, conversations, offers, privacy, profiles, queue, repair_reads
from chat.store.assignment import Assignment, Refusal
from chat.store.conversations import Appended
from chat.store.db import Reused, iso
from chat.store.offers import OfferOutcome
from tests.chat.conftest import Pool
from tests.support.servers import wait_until


async def _request(
    db: Pool, member_id: str, *, language: str | None = None, tags: list[str] | None = None
) -> queue.Request:
    return await queue.create_request(
        db,
        member_id=member_id,
        member_alias=f"alias-{member_id}",
        tags=tags or [],
        language=language,
        note=None,
        priority="normal",
        prefer_specialist=None,
    )


async def _specialist(
    db: Pool, specialist_id: str, *, max_chats: int = 3, languages: list[str] | None = None
) -> None:
    await profiles.put(
        db,
        specialist_id,
        name=f"name-{specialist_id}",
        tags=[],
        languages=languages or ["en"],
        max_chats=max_chats,
    )


async def _conversation(
    db: Pool, member_id: str = "m1", specialist_id: str = "s1"
) -> conversations.Conversation:
    await _specialist(db, specialist_id)
    request = await _request(db, member_id)
    assigned = await assignment.claim_request(db, request.id, specialist_id)
    assert isinstance(assigned, Assignment)
    conv = await conversations.get(db, assigned.conversation_id)
    assert conv is not None
    return conv


async def _send(
    db: Pool, conv: conversations.Conversation, client_msg_id: str, body: str = "hi", *, by: str = "member"
) -> tuple[Appended, int, datetime]:
    sender = conv.member_id if by == "member" else conv.specialist_id
    return await conversations.append(
        db,
        conversation_id=conv.id,
        sender_id=sender,
        sender_role=by,
        sender_name=by.title(),
        client_msg_id=client_msg_id,
        body=body,
    )


# --------------------------------------------------------------------------- messages


async def test_append_numbers_messages_from_one_and_dedupes_by_client_msg_id(db: Pool) -> None:
    conv = await _conversation(db)
    assert (await _send(db, conv, "a", "first"))[:2] == (Appended.STORED, 1)
    assert (await _send(db, conv, "b"))[:2] == (Appended.STORED, 2)
    # The same client_msg_id from the other participant is a different message.
    assert (await _send(db, conv, "a", "theirs", by="specialist"))[:2] == (Appended.STORED, 3)
    outcome, seq, sent_at = await _send(db, conv, "a", "second body")
    assert (outcome, seq) == (Appended.DUPLICATE, 1)
    stored = await conversations.messages_after(db, conv.id, 0)
    assert [(m.seq, m.client_msg_id, m.body) for m in stored] == [
        (1, "a", "first"),
        (2, "b", "hi"),
        (3, "a", "theirs"),
    ]
    assert stored[0].sent_at == sent_at, "a duplicate reports the original's time"
    assert stored[2].sender_role == "specialist" and stored[2].sender_id == conv.specialist_id
    assert (await conversations.get(db, conv.id)).last_seq == 3  # type: ignore[union-attr]
    assert await conversations.get_message(db, conv.id, 2) == stored[1]
    assert await conversations.get_message(db, conv.id, 9) is None
    assert [m.seq for m in await conversations.messages_after(db, conv.id, 1, limit=1)] == [2]
    assert await conversations.messages_after(db, conv.id, 10**12) == [], "past int4: nothing, no error"
    assert len(await conversations.messages_after(db, conv.id, -(10**12))) == 3
    assert iso(sent_at).endswith("Z")


async def test_a_handed_on_conversation_is_read_only_by_its_holder_and_found_for_who_missed_it(
    db: Pool,
) -> None:
    """A socket's catch-up reads a conversation only for the specialist holding it; the
    repair finds a conversation a specialist here still believes is theirs (PRODUCT.md §9)."""
    conv = await _conversation(db, "m-ho", "s-old")
    await _send(db, conv, "a", "before")
    assert [m.seq for m in await conversations.messages_after(db, conv.id, 0, held_by="s-old")] == [1]
    assert await repair_reads.behind(db, {conv.id: 1}, believed={conv.id: {"s-old"}}) == []
    await db.execute("UPDATE conversations SET specialist_id = 's-new' WHERE id = $1", conv.id)
    await _send(db, conv, "b", "after")
    assert await conversations.messages_after(db, conv.id, 0, held_by="s-old") == []
    assert [m.seq for m in await conversations.messages_after(db, conv.id, 1, held_by="s-new")] == [2]
    assert [m.seq for m in await conversations.messages_after(db, conv.id, 0)] == [1, 2]
    # Nothing behind, but a believer who no longer holds it: found, once, whoever else believes.
    found = await repair_reads.behind(db, {conv.id: 2}, believed={conv.id: {"s-new", "s-old"}})
    assert [c.id for c in found] == [conv.id]
    assert await repair_reads.behind(db, {conv.id: 2}, believed={conv.id: {"s-new"}}) == []
    assert await repair_reads.behind(db, {conv.id: 2}) == []


async def test_append_refuses_strangers_unknown_conversations_and_ended_ones(db: Pool) -> None:
    conv = await _conversation(db)
    common = {"sender_name": "x", "client_msg_id": "c", "body": "b"}
    stranger = await conversations.append(
        db, conversation_id=conv.id, sender_id="mallory", sender_role="member", **common
    )
    assert stranger[:2] == (Appended.FORBIDDEN, 0)
    # The member's id with the specialist's role is not the specialist.
    wrong_role = await conversations.append(
        db, conversation_id=conv.id, sender_id=conv.member_id, sender_role="specialist", **common
    )
    assert wrong_role[0] is Appended.FORBIDDEN
    missing = await conversations.append(
        db, conversation_id="nope", sender_id=conv.member_id, sender_role="member", **common
    )
    assert missing[0] is Appended.NOT_FOUND

    assert (await _send(db, conv, "before-end"))[:2] == (Appended.STORED, 1)
    ended = await conversations.end(db, conv.id, by="member", reason="ended")
    assert ended is not None and ended.state == "ended" and ended.ended_by == "member"
    assert (await _send(db, conv, "after-end"))[0] is Appended.ENDED
    # A retry of a message stored before the end still gets its ack.
    assert (await _send(db, conv, "before-end"))[:2] == (Appended.DUPLICATE, 1)
    assert [m.seq for m in await conversations.messages_after(db, conv.id, 0)] == [1]


async def test_concurrent_appends_never_gap_or_duplicate(db: Pool) -> None:
    conv = await _conversation(db)
    results = await asyncio.gather(
        *(_send(db, conv, f"m{i}", f"body {i}", by="member" if i % 2 else "specialist") for i in range(50))
    )
    assert all(outcome is Appended.STORED for outcome, _, _ in results)
    assert sorted(seq for _, seq, _ in results) == list(range(1, 51))
    stored = await conversations.messages_after(db, conv.id, 0)
    assert [m.seq for m in stored] == list(range(1, 51))
    # Each seq carries the body its ack promised.
    by_msg = {m.client_msg_id: m.seq for m in stored}
    assert all(by_msg[f"m{i}"] == results[i][1] for i in range(50))
    # Sent times follow seq.
    assert [m.sent_at for m in stored] == sorted(m.sent_at for m in stored)


async def test_concurrent_retries_of_one_message_store_it_once(db: Pool) -> None:
    conv = await _conversation(db)
    results = await asyncio.gather(*(_send(db, conv, "same", f"copy {i}") for i in range(20)))
    assert {seq for _, seq, _ in results} == {1}
    assert Counter(outcome for outcome, _, _ in results) == {Appended.STORED: 1, Appended.DUPLICATE: 19}
    assert len(await conversations.messages_after(db, conv.id, 0)) == 1


async def test_end_frees_the_slot_once(db: Pool) -> None:
    conv = await _conversation(db)
    assert (await profiles.get(db, "s1")).active_chats == 1  # type: ignore[union-attr]
    results = await asyncio.gather(
        *(conversations.end(db, conv.id, by="specialist", reason="ended") for _ in range(5))
    )
    assert sum(r is not None for r in results) == 1, "exactly one ender wins"
    assert (await profiles.get(db, "s1")).active_chats == 0  # type: ignore[union-attr]
    assert await conversations.end(db, "nope", by="member", reason="ended") is None
    assert await conversations.active_count(db) == 0
    assert [c.id for c in await conversations.of_person(db, member("m1"))] == [], "ended ones only when asked"
    assert [c.id for c in await conversations.of_person(db, member("m1"), ended_within_s=3600)] == [conv.id]


async def test_behind_returns_only_what_a_socket_here_could_be_missing(db: Pool) -> None:
    """The delivery repair's question (chat/upkeep/repair.py): nothing when every socket is
    up to date, so an idle process decodes no rows."""
    quiet = await _conversation(db, "m1", "s1")
    moved = await _conversation(db, "m2", "s2")
    ended = await _conversation(db, "m3", "s3")
    for conv in (quiet, moved, ended):
        await _send(db, conv, "a")
    await _send(db, moved, "b")
    await conversations.end(db, ended.id, by="specialist", reason="ended")
    told = [ended.id]
    assert await repair_reads.behind(db, {quiet.id: 1, moved.id: 2, ended.id: 1}, told_ended=told) == []
    found = await repair_reads.behind(db, {quiet.id: 1, moved.id: 1, ended.id: 1}, told_ended=told)
    assert [(c.id, c.last_seq) for c in found] == [(moved.id, 2)]
    found = await repair_reads.behind(db, {quiet.id: 1, moved.id: 2, ended.id: 1})
    assert [c.id for c in found] == [ended.id] and found[0].ended_at is not None
    found = await repair_reads.behind(db, {moved.id: 1}, believed={moved.id: {"s1", "s2"}})
    assert [c.id for c in found] == [moved.id], "behind and believed by another: found once"
    assert await repair_reads.behind(db, {}) == []
    assert await repair_reads.behind(db, {"NULL": 0, 'a"b\\c,{d}': 0}) == [], "odd ids stay strings"


async def test_array_literals_round_trip_through_postgresql(db: Pool) -> None:
    """`behind` sends its arrays as text (chat/store/conversations.py `_array_literal`):
    any string comes back as itself, never as NULL or split."""
    odd = ["", "NULL", "a,b", '"q"', "back\\slash", "{x}", " s p ", "é", "plain"]
    for values in (odd, ["plain", "c-1"], [], ['"'], ["\\"]):
        literal = repair_reads._array_literal(values)
        assert await db.fetchval("SELECT $1::text::text[]", literal) == values, literal


async def test_recently_started_reads_the_pairs_of_the_window(db: Pool) -> None:
    """The start repair's read: only active conversations, only the window, only the ids."""
    fresh = await _conversation(db, "m-fresh", "s-fresh")
    old = await _conversation(db, "m-old", "s-old")
    gone = await _conversation(db, "m-gone", "s-gone")
    await db.execute(
        "UPDATE conversations SET started_at = now() - interval '10 seconds' WHERE id <> $1", old.id
    )
    await db.execute("UPDATE conversations SET started_at = now() - interval '1 hour' WHERE id = $1", old.id)
    await conversations.end(db, gone.id, by="specialist", reason="ended")
    assert await repair_reads.recently_started(db, between_s=(5, 300)) == [(fresh.id, "m-fresh", "s-fresh")]
    assert await repair_reads.recently_started(db, between_s=(15, 300)) == []
    assert await repair_reads.recently_started(db, between_s=(5, 8)) == []


async def test_a_conversation_is_found_by_the_pair_role_and_sub(db: Pool) -> None:
    """PRODUCT.md §4: a member whose sub is the specialist's id is someone else."""
    conv = await _conversation(db)
    assert [c.id for c in await conversations.of_person(db, specialist("s1"))] == [conv.id]
    assert [c.id for c in await conversations.of_person(db, member("m1"))] == [conv.id]
    assert await conversations.of_person(db, member("s1")) == []
    assert await conversations.of_person(db, specialist("m1")) == []
    assert await conversations.of_person(db, Person("supervisor", "s1")) == []
    assert conv.has(member("m1")) and conv.has(specialist("s1"))
    assert not conv.has(member("s1")) and not conv.has(specialist("m1"))
    assert conv.peer_of(member("m1")) == specialist("s1")
    assert conv.peer_of(specialist("s1")) == member("m1")


async def test_feedback_last_rating_counts(db: Pool) -> None:
    conv = await _conversation(db)
    await conversations.save_feedback(db, conv.id, "m1", 2, None)
    await conversations.save_feedback(db, conv.id, "m1", 5, "thanks")
    assert await db.fetchval("SELECT count(*) FROM feedback") == 1
    assert tuple(await db.fetchrow("SELECT rating, comment FROM feedback")) == (5, "thanks")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- requests and offers


async def test_one_open_request_per_member(db: Pool) -> None:
    first = await _request(db, "m1")
    with pytest.raises(queue.AlreadyOpen):
        await _request(db, "m1")
    results = await asyncio.gather(*(_request(db, "m2") for _ in range(10)), return_exceptions=True)
    assert sum(isinstance(r, queue.Request) for r in results) == 1
    assert all(isinstance(r, queue.Request | queue.AlreadyOpen) for r in results)
    # Once assigned, the active conversation blocks a new request too.
    await _specialist(db, "s1")
    assert isinstance(await assignment.claim_request(db, first.id, "s1"), Assignment)
    with pytest.raises(queue.AlreadyOpen):
        await _request(db, "m1")
    assert (await queue.open_request_of(db, "m1")) is None
    assert [r.member_id for r in await queue.open_requests(db)] == ["m2"]


async def test_many_claims_on_one_request_exactly_one_wins(db: Pool) -> None:
    request = await _request(db, "m1")
    for i in range(20):
        await _specialist(db, f"s{i}")
    results = await asyncio.gather(*(assignment.claim_request(db, request.id, f"s{i}") for i in range(20)))
    winners = [r for r in results if isinstance(r, Assignment)]
    assert len(winners) == 1
    assert all(r is Refusal.ALREADY_CLAIMED for r in results if not isinstance(r, Assignment))
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1
    assert await db.fetchval("SELECT sum(active_chats) FROM specialists") == 1, "losers keep their slot"
    assert (await queue.get_request(db, request.id)).state == "assigned"  # type: ignore[union-attr]


async def test_accepts_and_claims_race_for_one_request(db: Pool) -> None:
    request = await _request(db, "m1")
    for i in range(10):
        await _specialist(db, f"s{i}")
    offer = await offers.make_offer(
        db,
        offer_id="o1",
        request_id=request.id,
        specialist_id="s0",
        expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    assert offer is not None and offer.state == "pending"
    assert (
        await offers.make_offer(
            db,
            offer_id="o2",
            request_id=request.id,
            specialist_id="s1",
            expires_at=datetime.now(UTC) + timedelta(seconds=30),
        )
        is None
    ), "one offer per request at a time"
    results = await asyncio.gather(
        *(assignment.accept_offer(db, "o1", "s0") for _ in range(5)),
        *(assignment.claim_request(db, request.id, f"s{i}") for i in range(1, 10)),
    )
    winners = [r for r in results if isinstance(r, Assignment)]
    assert len(winners) == 1
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1
    assert await db.fetchval("SELECT sum(active_chats) FROM specialists") == 1
    # Whoever won, the offer is no longer pending and a late accept is refused.
    assert await queue.pending_offers(db) == []
    assert await assignment.accept_offer(db, "o1", "s0") is Refusal.OFFER_EXPIRED
    if winners[0].specialist_id != "s0":
        assert [o.id for o in winners[0].revoked] == ["o1"], "the holder learns their offer was withdrawn"


async def test_accept_refusals(db: Pool) -> None:
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    request = await _request(db, "m1")
    past = datetime.now(UTC) - timedelta(seconds=1)
    await offers.make_offer(db, offer_id="late", request_id=request.id, specialist_id="s1", expires_at=past)
    assert await assignment.accept_offer(db, "late", "s1") is Refusal.OFFER_EXPIRED, "past its expiry"
    assert [o.id for o in await queue.pending_offers(db)] == ["late"], "the refusal rolled back"
    assert await assignment.accept_offer(db, "late", "s2") is Refusal.OFFER_EXPIRED, "not their offer"
    assert await assignment.accept_offer(db, "nope", "s1") is Refusal.OFFER_EXPIRED
    assert await assignment.claim_request(db, "nope", "s1") is Refusal.NOT_FOUND
    assert await assignment.claim_request(db, request.id, "no-profile") is Refusal.NOT_FOUND


async def test_claim_needs_the_requested_language_and_rolls_back_when_refused(db: Pool) -> None:
    await _specialist(db, "s1", languages=["en"])
    request = await _request(db, "m1", language="es")
    assert await assignment.claim_request(db, request.id, "s1") is Refusal.LANGUAGE
    assert (await profiles.get(db, "s1")).active_chats == 0  # type: ignore[union-attr]
    assert (await queue.get_request(db, request.id)).state == "waiting"  # type: ignore[union-attr]
    await _specialist(db, "s2", languages=["es", "en"])
    assert isinstance(await assignment.claim_request(db, request.id, "s2"), Assignment)


async def test_capacity_holds_under_concurrent_claims(db: Pool) -> None:
    await _specialist(db, "s1", max_chats=3)
    requests = [await _request(db, f"m{i}") for i in range(12)]
    results = await asyncio.gather(*(assignment.claim_request(db, r.id, "s1") for r in requests))
    assert sum(isinstance(r, Assignment) for r in results) == 3
    assert all(r is Refusal.NO_SLOT for r in results if not isinstance(r, Assignment))
    assert (await profiles.get(db, "s1")).active_chats == 3  # type: ignore[union-attr]
    assert await db.fetchval("SELECT count(*) FROM conversations WHERE specialist_id = 's1'") == 3
    assert len(await queue.open_requests(db)) == 9, "refused requests are still waiting"
    assert await db.fetchval("SELECT count(*) FROM requests WHERE state = 'waiting'") == 9


async def test_capacity_holds_when_accepts_and_claims_mix(db: Pool) -> None:
    await _specialist(db, "s1", max_chats=2)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    offered = [await _request(db, f"m{i}") for i in range(2)]
    for i, r in enumerate(offered):
        assert await offers.make_offer(
            db, offer_id=f"o{i}", request_id=r.id, specialist_id="s1", expires_at=soon
        )
    claimable = [await _request(db, f"n{i}") for i in range(4)]
    results = await asyncio.gather(
        *(assignment.accept_offer(db, f"o{i}", "s1") for i in range(2)),
        *(assignment.claim_request(db, r.id, "s1") for r in claimable),
    )
    assert sum(isinstance(r, Assignment) for r in results) == 2
    assert (await profiles.get(db, "s1")).active_chats == 2  # type: ignore[union-attr]
    # A refused accept leaves the offer pending (it may still expire or be declined).
    assert len(await queue.pending_offers(db, "s1")) == 2 - sum(
        isinstance(r, Assignment) for r in results[:2]
    )


async def test_no_offer_beyond_free_slots(db: Pool) -> None:
    """Issue 18: offers reached a specialist with no room, who then got `invalid_state` on
    accept. Pending offers hold slots, and the database refuses an offer past them."""
    await _specialist(db, "s1", max_chats=2)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    requests = [await _request(db, f"m{i}") for i in range(4)]
    assert await offers.make_offer(
        db, offer_id="o0", request_id=requests[0].id, specialist_id="s1", expires_at=soon
    )
    claimed = await assignment.claim_request(db, requests[1].id, "s1")
    assert isinstance(claimed, Assignment)
    # One chat and one pending offer: full.
    assert (
        await offers.make_offer(
            db, offer_id="o2", request_id=requests[2].id, specialist_id="s1", expires_at=soon
        )
        is None
    )
    refused = await queue.get_request(db, requests[2].id)
    assert refused is not None and refused.state == "waiting" and refused.avoid == [], (
        "no strike, still in line"
    )
    assert [o.id for o in await queue.pending_offers(db, "s1")] == ["o0"]

    # An offer past its expiry holds no slot (accept refuses it anyway).
    await db.execute("UPDATE offers SET expires_at = now() - interval '1 second' WHERE id = 'o0'")
    assert await offers.make_offer(
        db, offer_id="o3", request_id=requests[2].id, specialist_id="s1", expires_at=soon
    )
    assert (
        await offers.make_offer(
            db, offer_id="o4", request_id=requests[3].id, specialist_id="s1", expires_at=soon
        )
        is None
    )
    assert (
        await offers.make_offer(
            db, offer_id="o5", request_id=requests[3].id, specialist_id="nobody", expires_at=soon
        )
        is None
    )


async def test_a_batch_of_offers_holds_every_refusal_of_one_offer(db: Pool) -> None:
    """Issue 20: a burst's offers are written in one transaction. Each is still refused on its
    own (request no longer waiting, specialist avoided, no free slot counting the batch's
    own earlier offers), the others are made, and refused requests are still waiting."""
    await _specialist(db, "s1", max_chats=2)
    await _specialist(db, "s2", max_chats=1)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    r = [await _request(db, f"m{i}") for i in range(6)]
    await db.execute("UPDATE requests SET avoid = '{s2}' WHERE id = $1", r[3].id)
    await queue.cancel_request(db, r[4].id, "m4")
    made = await offers.make_offers(
        db,
        [
            offers.NewOffer("o0", r[0].id, "s1", soon),
            offers.NewOffer("o1", r[1].id, "s1", soon),
            offers.NewOffer("o2", r[2].id, "s1", soon),  # s1 is full with o0 and o1
            offers.NewOffer("o3", r[3].id, "s2", soon),  # avoided
            offers.NewOffer("o4", r[4].id, "s2", soon),  # cancelled
            offers.NewOffer("o5", r[5].id, "s2", soon),
            offers.NewOffer("o6", r[5].id, "s1", soon),  # a second offer for one request
        ],
    )
    assert [o.id for o in made] == ["o0", "o1", "o5"]
    assert sorted(o.id for o in await queue.pending_offers(db)) == ["o0", "o1", "o5"]
    states = {row["id"]: row["state"] for row in await db.fetch("SELECT id, state FROM requests")}
    assert [states[x.id] for x in r] == ["offered", "offered", "waiting", "waiting", "cancelled", "offered"]
    assert await offers.make_offers(db, [offers.NewOffer("o7", r[2].id, "s2", soon)]) == [], "s2 is full"
    assert (await queue.get_request(db, r[2].id)).state == "waiting"  # type: ignore[union-attr]


async def test_concurrent_offers_to_one_specialist_never_exceed_capacity(db: Pool) -> None:
    """Two leaders at once (a partition) racing offers to one specialist: the row lock and
    slot check admit exactly their free slots."""
    await _specialist(db, "s1", max_chats=3)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    requests = [await _request(db, f"m{i}") for i in range(12)]
    made = await asyncio.gather(
        *(
            offers.make_offer(db, offer_id=f"o{i}", request_id=r.id, specialist_id="s1", expires_at=soon)
            for i, r in enumerate(requests)
        )
    )
    assert sum(o is not None for o in made) == 3
    assert len(await queue.pending_offers(db, "s1")) == 3
    assert await db.fetchval("SELECT count(*) FROM requests WHERE state = 'waiting'") == 9
    accepted = await asyncio.gather(*(assignment.accept_offer(db, o.id, "s1") for o in made if o is not None))
    assert all(isinstance(a, Assignment) for a in accepted), "every offer made can be accepted"


async def test_cancel(db: Pool) -> None:
    await _specialist(db, "s1")
    request = await _request(db, "m1")
    soon = datetime.now(UTC) + timedelta(seconds=30)
    await offers.make_offer(db, offer_id="o1", request_id=request.id, specialist_id="s1", expires_at=soon)
    assert await queue.cancel_request(db, request.id, "someone-else") is None
    revoked = await queue.cancel_request(db, request.id, "m1")
    assert revoked is not None and [(o.id, o.state) for o in revoked] == [("o1", "revoked")]
    assert await queue.cancel_request(db, request.id, "m1") is None, "already cancelled"
    assert await assignment.accept_offer(db, "o1", "s1") is Refusal.OFFER_EXPIRED
    assert await assignment.claim_request(db, request.id, "s1") is Refusal.ALREADY_CLAIMED
    assert await queue.open_requests(db) == []
    # The member may ask again.
    assert (await _request(db, "m1")).state == "waiting"


async def test_cancel_races_a_claim(db: Pool) -> None:
    for round_ in range(10):
        await _specialist(db, f"s{round_}")
        request = await _request(db, f"m{round_}")
        cancelled, claimed = await asyncio.gather(
            queue.cancel_request(db, request.id, f"m{round_}"),
            assignment.claim_request(db, request.id, f"s{round_}"),
        )
        assert (cancelled is None) == isinstance(claimed, Assignment), "exactly one of them wins"


async def test_close_offer_keeps_the_place_and_avoids_the_specialist(db: Pool) -> None:
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    older = await _request(db, "m0")
    request = await _request(db, "m1")
    soon = datetime.now(UTC) + timedelta(seconds=30)
    await offers.make_offer(db, offer_id="o1", request_id=request.id, specialist_id="s1", expires_at=soon)
    assert await offers.close_offer(db, "o1", OfferOutcome.DECLINED, "s2") is None, "only its holder declines"
    closed = await offers.close_offer(db, "o1", OfferOutcome.DECLINED, "s1")
    assert closed is not None and closed[0].state == "declined" and closed[1] == 0
    assert await offers.close_offer(db, "o1", OfferOutcome.DECLINED, "s1") is None, "not pending any more"
    again = await queue.get_request(db, request.id)
    assert again is not None and again.state == "waiting" and again.avoid == ["s1"]
    assert again.created_at == request.created_at, "keeps its place in line"
    assert [r.id for r in await queue.open_requests(db)] == [older.id, request.id]
    # Never offered to s1 again; s2 may have it.
    assert (
        await offers.make_offer(db, offer_id="o2", request_id=request.id, specialist_id="s1", expires_at=soon)
        is None
    )
    assert await offers.make_offer(
        db, offer_id="o3", request_id=request.id, specialist_id="s2", expires_at=soon
    )


async def test_expired_offers_count_missed_in_a_row(db: Pool) -> None:
    await _specialist(db, "s1")
    soon = datetime.now(UTC) + timedelta(seconds=30)
    missed = []
    for i in range(3):
        r = await _request(db, f"m{i}")
        await offers.make_offer(db, offer_id=f"o{i}", request_id=r.id, specialist_id="s1", expires_at=soon)
        closed = await offers.close_offer(db, f"o{i}", OfferOutcome.EXPIRED)
        assert closed is not None
        missed.append(closed[1])
    assert missed == [1, 2, 3]
    r = await _request(db, "m9")
    await offers.make_offer(db, offer_id="o9", request_id=r.id, specialist_id="s1", expires_at=soon)
    assert (await offers.close_offer(db, "o9", OfferOutcome.DECLINED))[1] == 0  # type: ignore[index]
    await profiles.set_status(db, "s1", "away")
    assert (await profiles.get(db, "s1")).missed_offers == 0  # type: ignore[union-attr]


async def test_revoke_offer_is_not_held_against_the_specialist(db: Pool) -> None:
    await _specialist(db, "s1")
    r = await _request(db, "m1")
    soon = datetime.now(UTC) + timedelta(seconds=30)
    await offers.make_offer(db, offer_id="o1", request_id=r.id, specialist_id="s1", expires_at=soon)
    assert await offers.revoke_offer(db, "o1")
    assert not await offers.revoke_offer(db, "o1")
    again = await queue.get_request(db, r.id)
    assert again is not None and again.state == "waiting" and again.avoid == []
    assert await offers.make_offer(db, offer_id="o2", request_id=r.id, specialist_id="s1", expires_at=soon)


async def test_concurrent_offers_of_one_request(db: Pool) -> None:
    r = await _request(db, "m1")
    soon = datetime.now(UTC) + timedelta(seconds=30)
    for i in range(10):
        await _specialist(db, f"s{i}")
    made = await asyncio.gather(
        *(
            offers.make_offer(db, offer_id=f"o{i}", request_id=r.id, specialist_id=f"s{i}", expires_at=soon)
            for i in range(10)
        )
    )
    assert sum(o is not None for o in made) == 1
    assert len(await queue.pending_offers(db)) == 1


# --------------------------------------------------------------------------- profiles and audit


async def test_profiles(db: Pool) -> None:
    created = await profiles.ensure(db, "s1", "Rosa")
    assert (created.name, created.tags, created.languages, created.max_chats, created.status) == (
        "Rosa",
        [],
        ["en"],
        3,
        "away",
    )
    assert (await profiles.ensure(db, "s1", "Other")).name == "Rosa", "ensure never overwrites"
    await profiles.set_status(db, "s1", "available")
    edited = await profiles.put(db, "s1", name="Rosa M.", tags=["grief"], languages=["es"], max_chats=5)
    assert (edited.name, edited.tags, edited.languages, edited.max_chats) == ("Rosa M.", ["grief"], ["es"], 5)
    assert edited.status == "available", "an edit keeps the status"
    assert await profiles.set_status(db, "nobody", "away") is None
    assert [p.id for p in await profiles.list_all(db)] == ["s1"]
    with pytest.raises(asyncpg.CheckViolationError):
        await profiles.put(db, "s2", name="x", tags=[], languages=["en"], max_chats=0)


async def test_audit_log(db: Pool) -> None:
    for i in range(3):
        await audit.record(
            db,
            actor_id="sup",
            actor_role="supervisor",
            actor_name="Lee",
            action="read_transcript",
            conversation_id=f"c{i}",
            reason=f"reason {i}",
        )
    entries = await audit.recent(db, limit=2)
    assert [(e.conversation_id, e.reason) for e in entries] == [("c2", "reason 2"), ("c1", "reason 1")]
    with pytest.raises(asyncpg.CheckViolationError):
        await audit.record(
            db,
            actor_id="sup",
            actor_role="supervisor",
            actor_name="Lee",
            action="x",
            conversation_id=None,
            reason=" ",
        )


async def test_audit_pages_back_newest_first_with_target_and_detail(db: Pool) -> None:
    for i in range(5):
        await audit.record(
            db,
            actor_id="sup",
            actor_role="supervisor",
            actor_name="Lee",
            action="edit_profile",
            target=f"spec-{i}",
            detail={"before": None, "after": {"max_chats": i}},
        )
    first = await audit.page(db, limit=2)
    assert [e.target for e in first] == ["spec-4", "spec-3"]
    assert first[0].reason is None and first[0].detail == {"before": None, "after": {"max_chats": 4}}
    second = await audit.page(db, before=first[-1].id, limit=2)
    assert [e.target for e in second] == ["spec-2", "spec-1"]
    last = await audit.page(db, before=second[-1].id, limit=10)
    assert [e.target for e in last] == ["spec-0"]
    assert await audit.page(db, before=last[-1].id) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET reason = 'rewritten'",
        "UPDATE audit_log SET reason = 'none' WHERE false",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = -1",
        "TRUNCATE audit_log",
        "TRUNCATE audit_log CASCADE",
    ],
)
async def test_audit_log_is_append_only_even_for_a_superuser(db: Pool, statement: str) -> None:
    """PRODUCT.md §6: the database itself refuses; the test user is a superuser, and
    `session_replication_role = replica` (which silences ordinary triggers) changes nothing."""
    await audit.record(
        db, actor_id="sup", actor_role="supervisor", actor_name="Lee", action="read_transcript", reason="r"
    )
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        for role in ("origin", "replica"):
            await conn.execute(f"SET session_replication_role = {role}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        await conn.execute("RESET session_replication_role")
    rows = await db.fetch("SELECT actor_id, reason FROM audit_log")
    assert [tuple(r) for r in rows] == [("sup", "r")]


def test_iso_is_utc_with_a_z_whatever_came_before() -> None:
    """`iso` keeps its last answer (a batch shares one stamp); a different stamp, or the
    same instant in another zone, must not get a stale or wrongly zoned answer."""
    a = datetime(2026, 11, 27, 14, 0, 0, 123456, tzinfo=UTC)
    b = a + timedelta(milliseconds=1)
    same_as_b = b.astimezone(timezone(timedelta(hours=2)))
    assert [iso(a), iso(a), iso(b), iso(same_as_b), iso(a)] == [
        "2026-11-27T14:00:00.123Z",
        "2026-11-27T14:00:00.123Z",
        "2026-11-27T14:00:00.124Z",
        "2026-11-27T14:00:00.124Z",
        "2026-11-27T14:00:00.123Z",
    ]


async def test_a_claim_never_takes_the_slot_a_pending_offer_holds(db: Pool) -> None:
    """Issue 18: with capacity 1 and an offer out, a claim by hand used to take the slot, and
    the offer then answered `accept` with `invalid_state`. The offer holds the slot."""
    await _specialist(db, "s1", max_chats=1)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    offered, other = await _request(db, "m1"), await _request(db, "m2")
    assert await offers.make_offer(
        db, offer_id="o1", request_id=offered.id, specialist_id="s1", expires_at=soon
    )
    assert await assignment.claim_request(db, other.id, "s1") is Refusal.NO_SLOT
    assert isinstance(await assignment.accept_offer(db, "o1", "s1"), Assignment), (
        "the offer can still be taken"
    )
    # With room for the offer and one more, a claim fits beside it.
    await _specialist(db, "s2", max_chats=2)
    third = await _request(db, "m3")
    assert await offers.make_offer(
        db, offer_id="o3", request_id=third.id, specialist_id="s2", expires_at=soon
    )
    assert isinstance(await assignment.claim_request(db, other.id, "s2"), Assignment)
    assert isinstance(await assignment.accept_offer(db, "o3", "s2"), Assignment)
    # Claiming the very request on offer to you is not blocked by that offer.
    await _specialist(db, "s3", max_chats=1)
    fourth = await _request(db, "m4")
    assert await offers.make_offer(
        db, offer_id="o4", request_id=fourth.id, specialist_id="s3", expires_at=soon
    )
    assert isinstance(await assignment.claim_request(db, fourth.id, "s3"), Assignment)


async def test_a_request_made_while_the_member_is_erased_is_not_left_waiting_without_them(db: Pool) -> None:
    """Review finding 7: a `request` from another device that committed between the
    erasure's count of open business and its updates was scrubbed (member_id '') and left
    waiting, to be offered; two such broke the one-open-request index. The erasure is held
    here right after its count (another transaction locks the member's old conversation)."""
    conv = await _conversation(db, "m-erase")
    assert await conversations.end(db, conv.id, by="member", reason="done") is not None
    async with db.acquire() as holder, db.acquire() as eraser:
        blocking = holder.transaction()
        await blocking.start()
        await holder.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv.id)
        erasing = asyncio.create_task(
            privacy.erase_member(eraser, "m-erase", "asked", erased_sub="x", max_token_ttl_s=60)
        )
        await wait_until(lambda: _waiting_on_a_lock(db, "FOR UPDATE"), timeout=30)
        requesting = asyncio.create_task(_request(db, "m-erase"))
        # The request either commits now (the race) or waits for the erasure.
        await wait_until(lambda: requesting.done() or _waiting_on_a_lock(db, "advisory"), timeout=30)
        await blocking.rollback()
        erased = await asyncio.wait_for(erasing, 30)
        request = await asyncio.wait_for(requesting, 30)
    assert not erased.busy and erased.rows >= 1
    orphans = await db.fetch(
        "SELECT id FROM requests WHERE member_id = '' AND state IN ('waiting', 'offered')"
    )
    assert orphans == [], "a waiting request that names no one"
    # The request came after the erasure: the member's, untouched, a fresh start.
    assert request.member_id == "m-erase"
    assert [r.id for r in await queue.open_requests(db)] == [request.id]


async def _waiting_on_a_lock(db: Pool, what: str) -> bool:
    """Whether some session waits for a lock: a row lock (`FOR UPDATE` in its query) or
    an advisory lock."""
    if what == "advisory":
        return bool(
            await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    return bool(
        await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'""",
            what,
        )
    )


async def test_reused_rows_are_last_times_instances_until_the_row_changes(db: Pool) -> None:
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    r1 = await _request(db, "m1")
    await _request(db, "m2")
    profile_rows, request_rows = Reused(profiles.Profile), Reused(queue.Request)
    first = {p.id: p for p in await profiles.list_all(db, profile_rows)}
    first_requests = {r.id: r for r in await queue.open_requests(db, request_rows)}
    await profiles.set_status(db, "s1", "available")
    await queue.cancel_request(db, r1.id, "m1")
    again = {p.id: p for p in await profiles.list_all(db, profile_rows)}
    again_requests = {r.id: r for r in await queue.open_requests(db, request_rows)}
    # Changed rows are read afresh; unchanged ones are the very instances of last time.
    assert (first["s1"].status, again["s1"].status) == ("away", "available")
    assert again["s2"] is first["s2"]
    assert r1.id not in again_requests and len(again_requests) == 1
    (other,) = again_requests.values()
    assert other is first_requests[other.id]
    # Without `reuse`, the same values as ever.
    assert await profiles.list_all(db) == list(sorted(again.values(), key=lambda p: (p.name, p.id)))
