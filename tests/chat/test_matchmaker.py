"""chat/carrying_out.py (for chat/matchmaker.py) carries out the engine's decisions against a
real PostgreSQL: each write is a compare-and-set the database may refuse, a refused write
tells nobody anything and makes the next cycle reload, and one batch is acted on in the order
`Decisions` documents (revoked, expired, set_away, offers). The hub is a recorder: what the
matchmaker would send, to whom."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as redis

from chat import snapshot
from chat.config import Settings
from chat.delivery.hub import QUEUE_CHANNEL, STATS_CHANNEL
from chat.delivery.watchers import STATS_MIN_INTERVAL_S
from chat.matchmaker import Matchmaker
from chat.people import Person, member, specialist
from chat.presence import Presence
from chat.presence_memory import MemoryPresence
from chat.presence_redis import RedisPresence
from chat.redis_keys import identity_key
from chat.services import Services
from chat.store import offers, profiles, queue
from matching.decisions import Decisions, QueueEstimate
from matching.model import Offer
from protocol import frames as f
from tests.chat.conftest import Pool


@dataclass
class Recorder:
    sent: list[tuple[Person, object]] = field(default_factory=list)
    broadcasts: list[tuple[str, object]] = field(default_factory=list)
    queue_watchers: set[object] = field(default_factory=set)
    stats_watchers: set[object] = field(default_factory=set)

    def to_user(self, person: Person, frame: object, **_: object) -> None:
        self.sent.append((person, frame))

    async def broadcast(self, channel: str, frame: object, **_: object) -> None:
        self.broadcasts.append((channel, frame))


@dataclass
class FakeServices:
    settings: Settings
    db: Pool
    hub: Recorder = field(default_factory=Recorder)
    presence: Presence = field(default_factory=lambda: MemoryPresence(30.0))


def _matchmaker(
    db: Pool, database_url: str, presence: Presence | None = None, queue_update_s: float = 2.0
) -> tuple[Matchmaker, Recorder]:
    settings = Settings(
        database_url=database_url, redis_url="redis://127.0.0.1:1", queue_update_s=queue_update_s
    )
    services = FakeServices(settings, db)
    if presence is not None:
        services.presence = presence
    mm = Matchmaker(cast(Services, services))
    mm._out.needs_load = False
    return mm, services.hub


async def _waiting(db: Pool, member_id: str) -> queue.Request:
    return await queue.create_request(
        db,
        member_id=member_id,
        member_alias=f"alias-{member_id}",
        tags=[],
        language=None,
        note=None,
        priority="normal",
        prefer_specialist=None,
    )


async def _specialist(db: Pool, specialist_id: str, max_chats: int = 3) -> None:
    await profiles.put(
        db, specialist_id, name=f"name-{specialist_id}", tags=[], languages=["en"], max_chats=max_chats
    )
    await profiles.set_status(db, specialist_id, "available")


def _offer(offer_id: str, request_id: str, specialist_id: str) -> Offer:
    now = time.time()
    return Offer(
        id=offer_id, request_id=request_id, specialist_id=specialist_id, created_at=now, expires_at=now + 30
    )


async def _known(mm: Matchmaker, db: Pool) -> None:
    """What a cycle's snapshot gives `carry_out`: the open requests by id."""
    mm._out.requests_by_id = {r.id: r for r in await queue.open_requests(db)}


async def test_an_offer_is_written_then_sent_to_its_specialist(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    request = await _waiting(db, "m1")
    await _known(mm, db)
    await mm._out.carry_out(Decisions(offers=(_offer("o1", request.id, "s1"),)), time.time())
    stored = await queue.pending_offers(db, "s1")
    assert [o.id for o in stored] == ["o1"]
    assert len(hub.sent) == 1
    person, frame = hub.sent[0]
    assert person == specialist("s1")
    assert isinstance(frame, f.OfferMade) and frame.offer_id == "o1" and frame.request_id == request.id
    assert mm._out.needs_load is False


async def test_a_second_leaders_offer_of_the_same_request_is_refused_and_told_to_nobody(
    db: Pool, database_url: str
) -> None:
    """Two leaders at once (a partition): the database takes the first offer only."""
    first, first_hub = _matchmaker(db, database_url)
    second, second_hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    request = await _waiting(db, "m1")
    await _known(first, db)
    await _known(second, db)
    await first._out.carry_out(Decisions(offers=(_offer("o1", request.id, "s1"),)), time.time())
    await second._out.carry_out(Decisions(offers=(_offer("o2", request.id, "s2"),)), time.time())
    assert [o.id for o in await queue.pending_offers(db)] == ["o1"]
    assert len(first_hub.sent) == 1
    assert second_hub.sent == [], "a refused offer is never sent"
    assert second._out.needs_load is True, "a refusal makes the next cycle start afresh"


async def test_an_offer_beyond_the_specialists_capacity_is_refused(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1", max_chats=1)
    a = await _waiting(db, "m1")
    b = await _waiting(db, "m2")
    await _known(mm, db)
    await mm._out.carry_out(
        Decisions(offers=(_offer("o1", a.id, "s1"), _offer("o2", b.id, "s1"))),
        time.time(),
    )
    assert [o.id for o in await queue.pending_offers(db, "s1")] == ["o1"]
    assert [frame.offer_id for _, frame in hub.sent if isinstance(frame, f.OfferMade)] == ["o1"]
    assert mm._out.needs_load is True
    still = await queue.get_request(db, b.id)
    assert still is not None and still.state == "waiting", "the refused request keeps waiting"


async def test_an_offer_for_a_request_the_snapshot_lacks_is_not_written(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    request = await _waiting(db, "m1")
    mm._out.requests_by_id = {}  # cancelled between the snapshot and the decision
    await mm._out.carry_out(Decisions(offers=(_offer("o1", request.id, "s1"),)), time.time())
    assert await queue.pending_offers(db) == []
    assert hub.sent == []
    assert mm._out.needs_load is True


async def test_revoking_is_a_compare_and_set_on_pending(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    request = await _waiting(db, "m1")
    await _known(mm, db)
    offer = _offer("o1", request.id, "s1")
    await mm._out.carry_out(Decisions(offers=(offer,)), time.time())
    hub.sent.clear()
    await mm._out.carry_out(Decisions(revoked=(offer,)), time.time())
    assert hub.sent == [(specialist("s1"), f.OfferRevoked(offer_id="o1", reason="withdrawn"))]
    back = await queue.get_request(db, request.id)
    assert back is not None and back.state == "waiting"
    assert "s1" not in back.avoid, "a withdrawn offer is not held against the specialist"
    hub.sent.clear()
    await mm._out.carry_out(Decisions(revoked=(offer,)), time.time())
    assert hub.sent == [], "an offer no longer pending is not revoked twice"


async def test_an_expired_offer_is_closed_once_and_the_request_avoids_that_specialist(
    db: Pool, database_url: str
) -> None:
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    request = await _waiting(db, "m1")
    await _known(mm, db)
    offer = _offer("o1", request.id, "s1")
    await mm._out.carry_out(Decisions(offers=(offer,)), time.time())
    hub.sent.clear()
    await mm._out.carry_out(Decisions(expired=(offer,)), time.time())
    assert hub.sent == [(specialist("s1"), f.OfferRevoked(offer_id="o1", reason="expired"))]
    back = await queue.get_request(db, request.id)
    assert back is not None and back.state == "waiting" and "s1" in back.avoid
    profile = await profiles.get(db, "s1")
    assert profile is not None and profile.missed_offers == 1
    hub.sent.clear()
    await mm._out.carry_out(Decisions(expired=(offer,)), time.time())
    assert hub.sent == []


async def test_set_away_stores_the_status_and_tells_the_specialist(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    await mm._out.carry_out(Decisions(set_away=("s1",)), time.time())
    profile = await profiles.get(db, "s1")
    assert profile is not None and profile.status == "away"
    assert hub.sent == [(specialist("s1"), f.AvailabilityChanged(status="away", reason="missed_offers"))]


async def test_one_batch_is_carried_out_in_the_documented_order(db: Pool, database_url: str) -> None:
    """Revoked, then expired, then set_away, then offers: an expiry that frees a request is
    written before the offer that reuses it, so the new offer is not refused."""
    mm, hub = _matchmaker(db, database_url)
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    await _specialist(db, "s3")
    a = await _waiting(db, "m1")
    b = await _waiting(db, "m2")
    await _known(mm, db)
    to_revoke, to_expire = _offer("o1", a.id, "s1"), _offer("o2", b.id, "s2")
    await mm._out.carry_out(Decisions(offers=(to_revoke, to_expire)), time.time())
    hub.sent.clear()
    await _known(mm, db)
    reoffer = _offer("o3", b.id, "s3")
    await mm._out.carry_out(
        Decisions(offers=(reoffer,), set_away=("s2",), expired=(to_expire,), revoked=(to_revoke,)),
        time.time(),
    )
    kinds = [(type(frame).__name__, person.id) for person, frame in hub.sent]
    assert kinds == [
        ("OfferRevoked", "s1"),
        ("OfferRevoked", "s2"),
        ("AvailabilityChanged", "s2"),
        ("OfferMade", "s3"),
    ]
    assert [o.id for o in await queue.pending_offers(db)] == ["o3"]
    assert mm._out.needs_load is False


async def _asked_a_minute_ago(db: Pool) -> None:
    """Their `queued` reply long past: the next update is not held for it."""
    await db.execute("UPDATE requests SET created_at = created_at - interval '1 minute'")


async def test_queue_updates_go_to_the_requests_member(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url)
    request = await _waiting(db, "m1")
    await _asked_a_minute_ago(db)
    await _known(mm, db)
    await mm._out.carry_out(
        Decisions(queue_updates=(QueueEstimate(request.id, 2, 90), QueueEstimate("gone", 1, 10))),
        time.time(),
    )
    assert len(hub.sent) == 1, "an update for a request the snapshot lacks is dropped"
    person, frame = hub.sent[0]
    assert person == member("m1")
    assert isinstance(frame, f.QueueUpdate)
    assert (frame.request_id, frame.position, frame.estimated_wait_s) == (request.id, 2, 90)


async def test_a_members_queue_updates_are_coalesced_to_one_per_interval(db: Pool, database_url: str) -> None:
    """The first update goes at once; more within `queue_update_s` are held and only the
    latest is sent when the interval is up; one held for a request that has left is dropped."""
    interval = 0.5
    mm, hub = _matchmaker(db, database_url, queue_update_s=interval)
    mm._leadership.leading = True  # held updates are sent by the leader only
    a = await _waiting(db, "m1")
    b = await _waiting(db, "m2")
    await _asked_a_minute_ago(db)
    await _known(mm, db)
    now = time.time()
    mm.engine.load([], [], [], now)
    for request in (a, b):
        mm.engine.request_added(snapshot.as_request(request), now)

    def updates(request_id: str) -> list[tuple[int, float]]:
        return [
            (frame.position, at)
            for (_, frame), at in zip(hub.sent, sent_at, strict=True)
            if isinstance(frame, f.QueueUpdate) and frame.request_id == request_id
        ]

    sent_at: list[float] = []
    real_to_user = hub.to_user

    def stamped(person: Person, frame: object, **kw: object) -> None:
        sent_at.append(time.monotonic())
        real_to_user(person, frame, **kw)

    hub.to_user = stamped  # type: ignore[method-assign]
    first = time.monotonic()
    await mm._out.carry_out(Decisions(queue_updates=(QueueEstimate(a.id, 3, 90),)), now)
    await mm._out.carry_out(Decisions(queue_updates=(QueueEstimate(a.id, 2, 60),)), now)
    await mm._out.carry_out(
        Decisions(queue_updates=(QueueEstimate(a.id, 1, 30), QueueEstimate(b.id, 5, 99))), now
    )
    assert [p for p, _ in updates(a.id)] == [3], "the first at once, the next two held"
    assert [p for p, _ in updates(b.id)] == [5], "another member's first is not held"
    for _ in range(200):  # the held one is due after `interval`; generous on a busy machine
        if len(updates(a.id)) >= 2:
            break
        await asyncio.sleep(0.05)
    told = updates(a.id)
    assert [p for p, _ in told] == [3, 1], "only the latest of the held ones"
    assert told[1][1] - first >= interval * 0.9

    # Held, then the request leaves the line (matched): nothing more is said about it.
    await mm._out.carry_out(Decisions(queue_updates=(QueueEstimate(a.id, 7, 700),)), now)
    mm.engine.request_removed(a.id, now)
    await asyncio.sleep(interval * 3)
    assert [p for p, _ in updates(a.id)] == [3, 1]
    await mm.stop()


# ------------------------------------------------------------------ whole cycles


def _offers_made(hub: Recorder) -> list[f.OfferMade]:
    return [frame for _, frame in hub.sent if isinstance(frame, f.OfferMade)]


async def test_a_cycle_offers_a_waiting_request_to_an_online_specialist_once(
    db: Pool, database_url: str
) -> None:
    presence = MemoryPresence(30.0)
    await presence.connect("s1", "specialist", "c1", time.time())
    mm, hub = _matchmaker(db, database_url, presence)
    mm._out.needs_load = True  # as on taking the lead
    await _specialist(db, "s1")
    request = await _waiting(db, "m1")
    await mm.cycle()
    pending = await queue.pending_offers(db)
    assert [(o.request_id, o.specialist_id) for o in pending] == [(request.id, "s1")]
    assert [o.offer_id for o in _offers_made(hub)] == [pending[0].id]
    await mm.cycle()
    assert len(await queue.pending_offers(db)) == 1, "the next cycle does not offer it again"
    assert len(_offers_made(hub)) == 1


async def test_a_declined_offer_goes_to_another_specialist_next_cycle(db: Pool, database_url: str) -> None:
    presence = MemoryPresence(30.0)
    for sid in ("s1", "s2"):
        await presence.connect(sid, "specialist", f"c-{sid}", time.time())
    mm, hub = _matchmaker(db, database_url, presence)
    mm._out.needs_load = True
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    request = await _waiting(db, "m1")
    await mm.cycle()
    [first] = await queue.pending_offers(db)
    closed = await offers.close_offer(db, first.id, offers.OfferOutcome.DECLINED, first.specialist_id)
    assert closed is not None
    await mm.cycle()
    [second] = await queue.pending_offers(db)
    assert second.request_id == request.id
    assert second.specialist_id != first.specialist_id, "never offered again to who declined it"


async def test_nobody_online_means_no_offer(db: Pool, database_url: str) -> None:
    mm, hub = _matchmaker(db, database_url, MemoryPresence(30.0))
    mm._out.needs_load = True
    await _specialist(db, "s1")
    await _waiting(db, "m1")
    await mm.cycle()
    assert await queue.pending_offers(db) == []
    assert _offers_made(hub) == []


async def test_two_leaders_cycling_at_once_never_offer_a_request_twice_nor_overfill(
    db: Pool, database_url: str
) -> None:
    """A network partition: two leaders, each with its own engine, on the same database."""
    presence = MemoryPresence(30.0)
    for sid in ("s1", "s2", "s3"):
        await presence.connect(sid, "specialist", f"c-{sid}", time.time())
        await _specialist(db, sid, max_chats=1)
    for i in range(6):
        await _waiting(db, f"m{i}")
    first, first_hub = _matchmaker(db, database_url, presence)
    second, second_hub = _matchmaker(db, database_url, presence)
    first._out.needs_load = second._out.needs_load = True
    await asyncio.gather(first.cycle(), second.cycle())
    await asyncio.gather(first.cycle(), second.cycle())
    pending = await queue.pending_offers(db)
    assert len({o.request_id for o in pending}) == len(pending), "one pending offer per request"
    per_specialist = [o.specialist_id for o in pending]
    assert sorted(per_specialist) == sorted(set(per_specialist)), "max_chats 1: one offer each"
    assert len(pending) == 3, "every free slot is offered"
    sent = {o.offer_id for o in _offers_made(first_hub) + _offers_made(second_hub)}
    assert {o.id for o in pending} <= sent, "every pending offer was told to its specialist"
    stored = {r["id"] for r in await db.fetch("SELECT id FROM offers")}
    assert sent <= stored, "only offers the database took were sent"


async def test_a_cycles_new_requests_are_offered_in_one_transaction(db: Pool, database_url: str) -> None:
    """A burst: each new request is its own engine event; their offers are written together
    (one transaction: one `now()`), not one transaction apiece."""
    presence = MemoryPresence(30.0)
    for sid in ("s1", "s2", "s3", "s4"):
        await presence.connect(sid, "specialist", f"c-{sid}", time.time())
        await _specialist(db, sid, max_chats=1)
    mm, hub = _matchmaker(db, database_url, presence)
    mm._out.needs_load = True
    await mm.cycle()  # the engine loaded, nobody waiting
    requests = [await _waiting(db, f"m{i}") for i in range(4)]
    await mm.cycle()  # four request_added events
    rows = await db.fetch("SELECT request_id, specialist_id, created_at FROM offers WHERE state = 'pending'")
    assert sorted(r["request_id"] for r in rows) == sorted(r.id for r in requests)
    assert len({r["specialist_id"] for r in rows}) == 4, "max_chats 1: one each"
    assert len({r["created_at"] for r in rows}) == 1, "one transaction wrote them all"
    assert len(_offers_made(hub)) == 4
    assert mm._out.needs_load is False


async def test_a_slot_freed_is_offered_without_counting_as_a_decline(db: Pool, database_url: str) -> None:
    """A conversation ends while a request waits: the next cycle offers it to the freed
    specialist, and the engine does not mistake that new offer (not in its snapshot) for
    one declined, nor start the next cycle afresh."""
    presence = MemoryPresence(30.0)
    await presence.connect("s1", "specialist", "c-s1", time.time())
    await _specialist(db, "s1", max_chats=1)
    await db.execute("UPDATE specialists SET active_chats = 1 WHERE id = 's1'")
    mm, hub = _matchmaker(db, database_url, presence)
    request = await _waiting(db, "m1")
    mm._out.needs_load = True
    await mm.cycle()
    assert await queue.pending_offers(db) == [], "s1 is full"
    await db.execute("UPDATE specialists SET active_chats = 0 WHERE id = 's1'")
    await mm.cycle()
    [offer] = await queue.pending_offers(db)
    assert (offer.request_id, offer.specialist_id) == (request.id, "s1")
    assert "s1" not in mm.engine.requests[request.id].avoid, "s1 never declined it"
    assert mm.engine.offers.keys() == {offer.id}
    assert mm._out.needs_load is False


async def test_an_offer_revoked_by_the_cycle_itself_does_not_make_the_next_start_afresh(
    db: Pool, database_url: str
) -> None:
    """The specialist holding an offer goes away: the cycle revokes it (pending in its
    snapshot, gone from the engine) without taking it for an offer it did not make."""
    presence = MemoryPresence(30.0)
    for sid in ("s1", "s2"):
        await presence.connect(sid, "specialist", f"c-{sid}", time.time())
    await _specialist(db, "s1")
    mm, hub = _matchmaker(db, database_url, presence)
    request = await _waiting(db, "m1")
    mm._out.needs_load = True
    await mm.cycle()
    [offer] = await queue.pending_offers(db)
    await profiles.set_status(db, "s1", "away")
    await _specialist(db, "s2")
    await mm.cycle()
    [again] = await queue.pending_offers(db)
    assert (again.request_id, again.specialist_id) == (request.id, "s2")
    assert (specialist("s1"), f.OfferRevoked(offer_id=offer.id, reason="withdrawn")) in hub.sent
    assert mm._out.needs_load is False


async def test_a_new_requests_first_update_waits_out_the_interval_of_its_queued_reply(
    db: Pool, database_url: str
) -> None:
    """`queued` told the member their place as they asked: the matchmaker's first update
    within `queue_update_s` of that is held (the latest wins), and said only if they still
    wait when the interval is up."""
    interval = 1.0
    mm, hub = _matchmaker(db, database_url, queue_update_s=interval)
    mm._leadership.leading = True
    waiting = await _waiting(db, "m1")
    matched = await _waiting(db, "m2")
    await _known(mm, db)
    now = time.time()
    mm.engine.load([], [], [], now)
    for request in (waiting, matched):
        mm.engine.request_added(snapshot.as_request(request), now)
    await mm._out.carry_out(
        Decisions(queue_updates=(QueueEstimate(waiting.id, 2, 60), QueueEstimate(matched.id, 1, 30))), now
    )
    assert not [frame for _, frame in hub.sent if isinstance(frame, f.QueueUpdate)], "both held"
    mm.engine.request_removed(matched.id, now)  # matched before its interval was up
    for _ in range(100):
        if any(isinstance(frame, f.QueueUpdate) for _, frame in hub.sent):
            break
        await asyncio.sleep(0.05)
    told = [frame for _, frame in hub.sent if isinstance(frame, f.QueueUpdate)]
    assert [(u.request_id, u.position) for u in told] == [(waiting.id, 2)]
    await asyncio.sleep(interval)
    assert len([frame for _, frame in hub.sent if isinstance(frame, f.QueueUpdate)]) == 1
    await mm.stop()


@dataclass
class QuietRecorder(Recorder):
    """A hub whose queue and stats broadcasts reach no process (the bus's receiver count is 0)."""

    async def broadcast(self, channel: str, frame: object, **kw: object) -> None:
        await super().broadcast(channel, frame)
        on_receivers = kw.get("on_receivers")
        if callable(on_receivers):
            on_receivers(0)


@dataclass
class NoBus:
    async def subscribe(self, channel: str) -> None:
        pass


async def test_a_process_taking_the_lead_again_sends_the_queue_it_had_stopped_building(
    db: Pool, database_url: str
) -> None:
    """A leader stops building the queue once a publish of it reached no process
    (chat/delivery/watchers.py); a watcher who comes while another process leads pokes that
    one. So a process that takes the lead again starts as a new leader does: it sends the
    queue until a publish says nobody listens, or that watcher waits for the 10 s resend."""
    mm, hub = _matchmaker(db, database_url)
    quiet = QuietRecorder()
    mm.s.hub = cast(Any, quiet)
    mm.s.bus = cast(Any, NoBus())
    try:
        assert await mm._elect() is True
        await mm.cycle()  # a new leader sends the queue; it reaches nobody
        assert [c for c, _ in quiet.broadcasts].count(QUEUE_CHANNEL) == 1
        await mm._leadership.resign()  # another process leads a while, and is told of a watcher
        await _waiting(db, "m1")
        assert await mm._elect() is True  # the lead comes back within the resend's 10 s
        await mm.cycle()
        queues = [frame for c, frame in quiet.broadcasts if c == QUEUE_CHANNEL]
        assert len(queues) == 2, "the queue is sent again on taking the lead"
        assert isinstance(queues[-1], f.Queue) and len(queues[-1].requests) == 1
    finally:
        await mm.stop()


async def test_queue_stats_are_not_built_while_no_supervisor_listens(db: Pool, database_url: str) -> None:
    """Once a publish of `queue_stats` reached no process and no supervisor watches on the
    leader's, cycles build none (two PostgreSQL reads each, up to four a second) until a
    supervisor's `watch_queues` asks for a restatement, or one watches here."""
    mm, _ = _matchmaker(db, database_url)
    quiet = QuietRecorder()
    mm.s.hub = cast(Any, quiet)
    mm.s.bus = cast(Any, NoBus())

    def stats() -> list[f.QueueStats]:
        return [
            frame for c, frame in quiet.broadcasts if c == STATS_CHANNEL and isinstance(frame, f.QueueStats)
        ]

    try:
        assert await mm._elect() is True
        await mm.cycle()  # a new leader sends them; they reach nobody
        assert len(stats()) == 1
        for n in range(3):  # changes the stats would show, each past the coalescing interval
            await _waiting(db, f"m{n}")
            await asyncio.sleep(STATS_MIN_INTERVAL_S + 0.05)
            await mm.cycle()
        assert len(stats()) == 1, "built while nobody listened"
        mm.restate_stats()  # a supervisor began watching (on any process)
        await mm.cycle()
        assert [s.waiting for s in stats()] == [0, 3]
        # That publish reached nobody either; a watcher on the leader's own process counts.
        await _waiting(db, "m-here")
        await asyncio.sleep(STATS_MIN_INTERVAL_S + 0.05)
        await mm.cycle()
        assert len(stats()) == 2
        quiet.stats_watchers.add(object())
        await mm.cycle()
        assert [s.waiting for s in stats()] == [0, 3, 4]
    finally:
        await mm.stop()


# ------------------------------------------------------------------ the idle leader's look


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_an_idle_leader_notices_a_specialist_whose_process_died_at_its_next_look(
    db: Pool, database_url: str, redis_client: redis.Redis
) -> None:
    """A specialist whose process dies pokes nobody: their process's lease lapses (PRODUCT.md
    §5). An idle leader reads only `specialists_mark` every `_IDLE_LOOK_S`, not every online
    specialist; its first look after the lapse must still cycle, and a look with nothing
    changed must not."""
    settings = Settings(database_url="-", redis_url="-", jwt_secret="p" * 32)

    def name(role: str, sub: str) -> str:
        return identity_key(settings, role, sub)

    here = RedisPresence(redis_client, 30.0, name)  # the leader's own process
    dying = RedisPresence(redis_client, 1.0, name)  # a short lease, so it lapses soon
    await here.connect("s1", "specialist", "c1", time.time())
    await dying.connect("s2", "specialist", "c2", time.time())
    await _specialist(db, "s1")
    await _specialist(db, "s2")
    mm, _ = _matchmaker(db, database_url, here)
    await mm.cycle()
    assert mm._last_online == {"s1", "s2"}
    mm._last_look = 0.0  # a look is due
    assert not await mm._unpoked_change(), "nothing changed: no cycle"
    assert mm._last_look > 0.0 and not await mm._unpoked_change(), "and no look before the next is due"

    # `dying` never beats again: its lease lapses, unpoked.
    async def lapsed() -> bool:
        return await here.online_specialists(time.time()) == {"s1"}

    await _until(lapsed)
    mm._last_look = 0.0
    assert await mm._unpoked_change(), "the first look after the lapse cycles"
    await mm.cycle()
    assert mm._last_online == {"s1"}
    mm._last_look = 0.0
    assert not await mm._unpoked_change()

    # A process starting with a specialist (its connect pokes too) moves the mark as well.
    back = RedisPresence(redis_client, 30.0, name)
    await back.connect("s2", "specialist", "c3", time.time())
    mm._last_look = 0.0
    assert await mm._unpoked_change()


async def test_the_leaders_nap_ends_on_a_poke_or_its_time_and_only_a_poke_counts(
    db: Pool, database_url: str
) -> None:
    """The leader waits for a poke at most `_TICK_S`, on the process's tick (chat/ticks.py):
    a poke ends the wait at once and counts as one; the time running out does not (an idle
    leader would otherwise cycle every second)."""
    mm, _ = _matchmaker(db, database_url)
    started = time.monotonic()
    await mm._nap(0.2)
    assert time.monotonic() - started >= 0.19
    assert mm._wake.is_set() and not mm._poked, "woken by the time, not poked"
    mm._wake.clear()
    asyncio.get_running_loop().call_later(0.05, mm.poke)
    started = time.monotonic()
    await mm._nap(60.0)
    assert time.monotonic() - started < 30.0, "the poke ended the wait"
    assert mm._poked
