"""The two graces, one sweep at a time, against a real PostgreSQL with presence in memory
(chat/presence_memory.py, the same contract as Redis): chat/upkeep/grace.py (a specialist who
dropped out has `reconnect_grace_s` to return) and chat/upkeep/member_grace.py (a member with
no live connection keeps their place for `member_grace_s`). Time is passed in, never slept."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from chat.config import Settings
from chat.people import Person, member, specialist
from chat.presence_memory import MemoryPresence
from chat.safety.monitoring import MonitorMirror
from chat.services import Services
from chat.store import assignment, conversations, profiles, queue
from chat.store import monitors as store_monitors
from chat.store.assignment import Assignment
from chat.upkeep.grace import ReconnectGrace, sweep_interval
from chat.upkeep.member_grace import MemberGrace, full_sweep_interval
from protocol import frames as f
from tests.chat.conftest import Pool

GRACE_S = 60.0
TTL_S = 30.0


@dataclass
class Recorder:
    sent: list[tuple[Person, object]] = field(default_factory=list)

    def to_user(self, person: Person, frame: object, **_: object) -> None:
        self.sent.append((person, frame))

    def frames_to(self, person: Person) -> list[object]:
        return [frame for p, frame in self.sent if p == person]


@dataclass
class BusRecorder:
    published: list[str] = field(default_factory=list)

    async def publish(self, channel: str, data: bytes) -> None:
        self.published.append(channel)


@dataclass
class FakeServices:
    settings: Settings
    db: Pool
    presence: MemoryPresence = field(default_factory=lambda: MemoryPresence(TTL_S))
    hub: Recorder = field(default_factory=Recorder)
    monitors: MonitorMirror = field(default_factory=MonitorMirror)
    bus: BusRecorder = field(default_factory=BusRecorder)
    participants: dict[str, object] = field(default_factory=dict)  # Services.participants
    pokes: int = 0

    def queue_position(self, request_id: str, now: float) -> tuple[int, int] | None:
        return None

    async def poke_matchmaker(self) -> None:
        self.pokes += 1


def _services(db: Pool, database_url: str) -> FakeServices:
    settings = Settings(
        database_url=database_url,
        redis_url="redis://127.0.0.1:1",
        reconnect_grace_s=GRACE_S,
        member_grace_s=GRACE_S,
        presence_ttl_s=TTL_S,
    )
    return FakeServices(settings, db)


async def _request(db: Pool, member_id: str) -> queue.Request:
    return await queue.create_request(
        db,
        member_id=member_id,
        member_alias=f"alias-{member_id}",
        tags=["grief"],
        language=None,
        note=None,
        priority="normal",
        prefer_specialist=None,
    )


async def _conversation(db: Pool, member_id: str, specialist_id: str) -> tuple[str, queue.Request]:
    await profiles.put(
        db, specialist_id, name=f"name-{specialist_id}", tags=[], languages=["en"], max_chats=3
    )
    request = await _request(db, member_id)
    assigned = await assignment.claim_request(db, request.id, specialist_id)
    assert isinstance(assigned, Assignment)
    return assigned.conversation_id, request


async def _state(db: Pool, conversation_id: str) -> tuple[str, str | None]:
    conv = await conversations.get(db, conversation_id)
    assert conv is not None
    return conv.state, conv.end_reason


def test_sweep_interval_is_a_quarter_of_the_grace_within_bounds() -> None:
    assert sweep_interval(60.0, 30.0) == 5.0
    assert sweep_interval(8.0, 30.0) == 2.0
    assert sweep_interval(60.0, 6.0) == 2.0
    assert sweep_interval(0.1, 0.1) == 0.2


# ------------------------------------------------------------------ specialist's reconnect grace


async def test_a_specialist_back_within_the_grace_keeps_the_conversation(db: Pool, database_url: str) -> None:
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    grace = ReconnectGrace(cast(Services, s))
    t0 = time.time()
    await s.presence.connect("s1", "specialist", "c1", t0)
    await s.presence.disconnect("s1", "specialist", "c1", t0)
    assert await grace.sweep(t0 + GRACE_S - 1) == 0
    assert await _state(db, conv_id) == ("active", None)
    await s.presence.connect("s1", "specialist", "c2", time.time())
    assert await grace.sweep(t0 + GRACE_S + 1) == 0, "back in time: nothing ends"
    assert await _state(db, conv_id) == ("active", None)


async def test_a_turn_is_skipped_while_nothing_can_have_changed(db: Pool, database_url: str) -> None:
    """A round finds what changed: a specialist of an active conversation offline. While the
    last round found none, no specialist left by a close since and no process's lease ran
    out, a turn is skipped; any of those, and it sweeps."""
    s = _services(db, database_url)
    await _conversation(db, "m1", "s1")
    grace = ReconnectGrace(cast(Services, s))
    every = 5.0
    await s.presence.settled(time.time() - 2 * TTL_S)  # presence has been up a while
    await s.presence.connect("s1", "specialist", "c1", time.time())
    assert await grace.take_round(every) is True, "the first turn sweeps"
    assert await grace.take_round(every) is False, "nothing changed"
    await s.presence.disconnect("s1", "specialist", "c1", time.time())
    assert await grace.take_round(every) is True, "a specialist left by a close"
    assert await grace.take_round(every) is True, "... and is offline with a conversation"
    assert s.presence.board.absent, "that round timed their absence"
    await s.presence.connect("s1", "specialist", "c2", time.time())
    assert await grace.take_round(every) is True, "the last round found someone offline"
    assert await grace.take_round(every) is False
    # A process holding another specialist's socket stopped renewing its lease.
    dead = MemoryPresence(TTL_S, s.presence.board)
    await dead.connect("s2", "specialist", "c3", time.time() - TTL_S - 1)
    assert await grace.take_round(every) is True, "a lease ran out"


async def test_turns_skip_from_the_first_round_after_presence_came_up_and_sweep_after_a_wipe(
    db: Pool, database_url: str
) -> None:
    """Right after a start presence has just come up empty: the skip needs a last round
    that ran after presence came up, not a TTL after it (every round of that TTL used to be
    a full one). A Redis that comes back empty since that round sweeps again, though it
    shows no close and no lapsed lease (its count of departures and its leases went too)."""
    s = _services(db, database_url)
    await _conversation(db, "m1", "s1")
    grace = ReconnectGrace(cast(Services, s))
    every = 5.0
    await s.presence.connect("s1", "specialist", "c1", time.time())
    assert await grace.take_round(every) is True, "the first turn sweeps, and notes presence up"
    assert await grace.take_round(every) is True, "that round ran before presence was noted up"
    assert not await s.presence.steady(time.time(), every), "not a TTL yet"
    assert await grace.take_round(every) is False, "nothing changed since a round after it"
    # Redis comes back empty; this process writes its sockets again and another process's
    # sweep notes presence up again, all before this process's next turn.
    s.presence.board.wipe()
    await s.presence.heartbeat([], time.time())
    await s.presence.settled(time.time())
    assert await s.presence.online_specialists(time.time()) == {"s1"}
    assert await s.presence.lapses(time.time(), 1e9) == (0, s.presence.board.epoch)
    assert await grace.take_round(every) is True, "presence came up empty since the last round"
    assert await grace.take_round(every) is False


async def test_past_the_grace_the_conversation_ends_once_and_the_member_is_queued_again(
    db: Pool, database_url: str
) -> None:
    s = _services(db, database_url)
    conv_id, original = await _conversation(db, "m1", "s1")
    grace = ReconnectGrace(cast(Services, s))
    t0 = time.time() - GRACE_S - 5  # the specialist left more than a grace ago
    await s.presence.connect("s1", "specialist", "c1", t0)
    await s.presence.disconnect("s1", "specialist", "c1", t0)
    assert await grace.sweep(time.time()) == 1
    assert await _state(db, conv_id) == ("ended", "peer_gone")
    to_member = s.hub.frames_to(member("m1"))
    assert f.PeerStatus(conversation_id=conv_id, status="gone") in to_member
    assert any(isinstance(x, f.ConversationEnded) and x.reason == "peer_gone" for x in to_member)
    assert any(isinstance(x, f.ConversationEnded) for x in s.hub.frames_to(specialist("s1")))
    again = await queue.open_request_of(db, "m1")
    assert again is not None and again.id != original.id
    assert again.prefer_specialist == "s1" and again.tags == ["grief"]
    assert again.created_at == original.created_at, "the member keeps their place in line"
    updates = [x for x in to_member if isinstance(x, f.QueueUpdate)]
    assert [u.request_id for u in updates] == [again.id]
    assert s.pokes == 1
    # A second process sweeping the same absence ends nothing twice.
    s.hub.sent.clear()
    assert await ReconnectGrace(cast(Services, s)).sweep(time.time()) == 0
    assert s.hub.sent == []


async def test_an_unseen_departure_is_told_to_the_member_and_timed_from_the_first_sweep(
    db: Pool, database_url: str
) -> None:
    """The specialist's process died: no socket recorded the absence. Once presence has settled,
    the first sweep to notice marks it, tells the member `reconnecting`, and starts the grace."""
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    grace = ReconnectGrace(cast(Services, s))
    t0 = time.time()
    assert await s.presence.settled(t0) is False
    assert await grace.sweep(t0) == 0
    assert s.hub.sent == [], "until leases have had a TTL to rebuild, absence is not marked"
    noticed = t0 + TTL_S
    assert await grace.sweep(noticed) == 0
    assert s.hub.sent == [(member("m1"), f.PeerStatus(conversation_id=conv_id, status="reconnecting"))]
    assert await grace.sweep(noticed + GRACE_S - 1) == 0
    assert await _state(db, conv_id) == ("active", None)
    assert await grace.sweep(noticed + GRACE_S + 1) == 1
    assert await _state(db, conv_id) == ("ended", "peer_gone")


async def test_sweep_once_skips_the_round_while_another_process_holds_the_lock(
    db: Pool, database_url: str
) -> None:
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    t0 = time.time() - GRACE_S - 5
    await s.presence.connect("s1", "specialist", "c1", t0)
    await s.presence.disconnect("s1", "specialist", "c1", t0)
    grace = ReconnectGrace(cast(Services, s))
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", 0x6772616365)
        assert await grace.sweep_once() == 0
    assert await _state(db, conv_id) == ("active", None)
    assert await grace.sweep_once() == 1


# ------------------------------------------------------------------ member grace


async def test_a_waiting_member_away_past_the_grace_has_the_request_abandoned(
    db: Pool, database_url: str
) -> None:
    s = _services(db, database_url)
    request = await _request(db, "m1")
    grace = MemberGrace(cast(Services, s))
    await db.execute(
        "INSERT INTO members_away (member_id, since) VALUES ($1, $2)",
        "m1",
        datetime.now(UTC) - timedelta(seconds=GRACE_S - 10),
    )
    assert await grace.sweep(time.time()) == 0, "still within the grace"
    assert await queue.open_request_of(db, "m1") is not None
    assert await grace.sweep(time.time() + 11) == 1
    assert await queue.open_request_of(db, "m1") is None
    gone = await queue.get_request(db, request.id)
    assert gone is not None and gone.state == "cancelled"
    assert s.pokes == 1
    assert await grace.sweep(time.time() + 11) == 0, "cancelled once"


async def test_a_member_online_again_keeps_their_place_and_their_absence_is_cleared(
    db: Pool, database_url: str
) -> None:
    s = _services(db, database_url)
    await _request(db, "m1")
    grace = MemberGrace(cast(Services, s))
    await db.execute(
        "INSERT INTO members_away (member_id, since) VALUES ($1, $2)",
        "m1",
        datetime.now(UTC) - timedelta(seconds=GRACE_S * 2),
    )
    await s.presence.connect("m1", "member", "c1", time.time())
    assert await grace.sweep(time.time()) == 0
    assert await queue.open_request_of(db, "m1") is not None
    assert await db.fetchval("SELECT count(*) FROM members_away") == 0


async def test_a_member_gone_past_the_grace_ends_the_conversation_and_frees_the_specialist(
    db: Pool, database_url: str
) -> None:
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    before = await profiles.get(db, "s1")
    assert before is not None and before.active_chats == 1
    grace = MemberGrace(cast(Services, s))
    t0 = time.time()
    assert await s.presence.settled(t0) is False
    assert await grace.sweep(t0) == 0
    assert s.hub.sent == [], "absence is not marked before presence has settled"
    noticed = t0 + TTL_S
    assert await grace.sweep(noticed) == 0
    assert s.hub.sent == [(specialist("s1"), f.PeerStatus(conversation_id=conv_id, status="reconnecting"))]
    # The grace runs from the stored mark (the database's clock).
    await db.execute(
        "UPDATE members_away SET since = $2 WHERE member_id = $1",
        "m1",
        datetime.now(UTC) - timedelta(seconds=GRACE_S + 1),
    )
    s.hub.sent.clear()
    assert await grace.sweep(time.time()) == 1
    assert await _state(db, conv_id) == ("ended", "peer_gone")
    assert f.PeerStatus(conversation_id=conv_id, status="gone") in s.hub.frames_to(specialist("s1"))
    after = await profiles.get(db, "s1")
    assert after is not None and after.active_chats == 0
    assert await queue.open_request_of(db, "m1") is None, "a member who left is not queued again"


async def test_a_grace_end_reaches_monitoring_supervisors_and_closes_their_watch(
    db: Pool, database_url: str
) -> None:
    # PRODUCT.md §8: a monitor lasts "until unmonitor or the end", whoever ends it; the grace
    # sweep ended conversations without telling the watching supervisor (review finding 12).
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    assert await store_monitors.start(db, conv_id, "monitor\x1fsock", "sup1", "Sam")
    await s.monitors.reload(db)
    watcher = Person("supervisor", "monitor\x1fsock")
    assert s.monitors.watchers(conv_id) == {watcher}
    t0 = time.time() - GRACE_S - 5
    await s.presence.connect("s1", "specialist", "c1", t0)
    await s.presence.disconnect("s1", "specialist", "c1", t0)
    assert await ReconnectGrace(cast(Services, s)).sweep(time.time()) == 1
    ended = [x for x in s.hub.frames_to(watcher) if isinstance(x, f.ConversationEnded)]
    assert [(e.conversation_id, e.by, e.reason) for e in ended] == [(conv_id, "system", "peer_gone")]
    assert [m for m in await store_monitors.open_monitors(db) if m.conversation_id == conv_id] == []
    assert s.monitors.watchers(conv_id) == frozenset()
    assert s.bus.published, "other processes are told the watch closed"


class CountingPresence(MemoryPresence):
    """Memory presence that counts the members a sweep asks about."""

    asked: int = 0

    async def online_among(self, user_ids: Sequence[str], role: str, now: float) -> set[str]:
        self.asked += len(user_ids)
        return await super().online_among(user_ids, role, now)


async def test_a_partial_round_with_nobody_away_asks_presence_nothing_and_one_with_someone_away_works(
    db: Pool, database_url: str
) -> None:
    """Between full rounds (a TTL apart), a round only works while someone is marked away:
    an idle service does not ask presence about every member at stake every few seconds."""
    s = _services(db, database_url)
    s.presence = CountingPresence(TTL_S)
    await _request(db, "m1")
    await _request(db, "m2")
    grace = MemberGrace(cast(Services, s))
    assert await grace.sweep(time.time(), full=False) == 0
    assert s.presence.asked == 0, "nobody away: nothing asked"
    assert await grace.sweep(time.time()) == 0
    assert s.presence.asked == 2, "a full round asks about everyone at stake"
    await db.execute(
        "INSERT INTO members_away (member_id, since) VALUES ($1, $2)",
        "m1",
        datetime.now(UTC) - timedelta(seconds=GRACE_S + 1),
    )
    assert await grace.sweep(time.time(), full=False) == 1, "someone away: the round does its work"
    assert await queue.open_request_of(db, "m1") is None
    assert await queue.open_request_of(db, "m2") is not None


def test_full_rounds_come_once_a_ttl_at_most_and_never_less_often_than_rounds() -> None:
    assert full_sweep_interval(300.0, 30.0) == 30.0
    assert full_sweep_interval(60.0, 30.0) == 15.0
    assert full_sweep_interval(2.0, 30.0) == sweep_interval(2.0, 30.0)


# ------------------------------------------------------------------ a stalled process's return


async def test_a_specialist_written_back_between_the_sweeps_reads_gets_no_notice(
    db: Pool, database_url: str
) -> None:
    """The specialist's process stalled past its lease and runs again: its rewrite (which
    removes the absence mark, and tells the members `connected` if it removed one) lands
    between the sweep's read of who is online and its marking. The mark then comes after
    the rewrite, and a `reconnecting` told now would never be taken back: none is told."""
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    t0 = time.time()
    await s.presence.settled(t0 - TTL_S)
    stalled = MemoryPresence(TTL_S, s.presence.board)
    await stalled.connect("s1", "specialist", "c1", t0 - TTL_S - 5)  # its lease ran out at t0 - 5
    absent_since = s.presence.absent_since

    async def after_the_return(
        user_ids: Sequence[str], now: float, *, mark: bool
    ) -> dict[str, tuple[float, bool]]:
        await stalled.heartbeat([], now)  # runs again: lapsed, so it writes c1 back
        return await absent_since(user_ids, now, mark=mark)

    s.presence.absent_since = after_the_return  # type: ignore[method-assign]
    assert await ReconnectGrace(cast(Services, s)).sweep(t0) == 0
    assert s.hub.sent == []
    assert await _state(db, conv_id) == ("active", None)


async def test_a_member_online_again_without_a_connect_is_told_to_the_specialist(
    db: Pool, database_url: str
) -> None:
    """A full round marked the member away and told the specialist `reconnecting` (the
    member's process had stalled past its lease); the process runs again and the member
    counts online on the same socket. The round that clears the mark says `connected`."""
    s = _services(db, database_url)
    conv_id, _ = await _conversation(db, "m1", "s1")
    grace = MemberGrace(cast(Services, s))
    t0 = time.time()
    await s.presence.settled(t0 - TTL_S)
    stalled = MemoryPresence(TTL_S, s.presence.board)
    await stalled.connect("m1", "member", "c1", t0 - TTL_S - 5)
    assert await grace.sweep(t0) == 0
    told = f.PeerStatus(conversation_id=conv_id, status="reconnecting")
    assert s.hub.sent == [(specialist("s1"), told)]
    await stalled.heartbeat([], t0 + 1)
    assert await grace.sweep(t0 + 2, full=False) == 0
    back = f.PeerStatus(conversation_id=conv_id, status="connected")
    assert s.hub.sent == [(specialist("s1"), told), (specialist("s1"), back)]
    assert await db.fetchval("SELECT count(*) FROM members_away") == 0
    assert await grace.sweep(t0 + 3) == 0
    assert len(s.hub.sent) == 2, "told once"


class _CountingPool:
    """The test pool, counting the connections taken for a transaction (`acquire`)."""

    def __init__(self, pool: Pool) -> None:
        self.pool, self.acquired = pool, 0

    def acquire(self) -> Any:
        self.acquired += 1
        return self.pool.acquire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


async def test_a_light_round_with_nobody_away_opens_no_transaction(db: Pool, database_url: str) -> None:
    """Every few seconds on an idle service: one read, not a transaction, a lock and a read."""
    s = _services(db, database_url)
    counting = _CountingPool(db)
    s.db = cast(Pool, counting)
    await _request(db, "m1")
    grace = MemberGrace(cast(Services, s))
    assert await grace.sweep_once(full=False) == 0
    assert counting.acquired == 0
    await db.execute(
        "INSERT INTO members_away (member_id, since) VALUES ($1, $2)",
        "m1",
        datetime.now(UTC) - timedelta(seconds=GRACE_S + 1),
    )
    assert await grace.sweep_once(full=False) == 1, "someone away: the round, under its lock"
    assert counting.acquired >= 1


class _ArgsPool:
    """The test pool, recording the arguments of every statement run on it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.args: list[tuple[object, ...]] = []

    async def fetch(self, query: str, *args: object) -> Any:
        self.args.append(args)
        return await self.pool.fetch(query, *args)

    async def execute(self, query: str, *args: object) -> Any:
        self.args.append(args)
        return await self.pool.execute(query, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    def lists(self) -> list[list[object]]:
        return [a for args in self.args for a in args if isinstance(a, list)]


async def test_a_full_round_ships_postgresql_only_the_marks_it_drops_or_clears(
    db: Pool, database_url: str
) -> None:
    """A full round on an idle service (everyone at stake online, nobody away) sends no list
    of the members at stake to PostgreSQL: it used to send two (every member at stake, to
    drop the marks of everyone else, and every one online, to clear their marks). The
    marks it must drop or clear are still dropped and cleared."""
    s = _services(db, database_url)
    recording = _ArgsPool(db)
    s.db = cast(Pool, recording)
    t0 = time.time()
    await s.presence.settled(t0 - TTL_S)
    for n in range(20):
        await _request(db, f"m{n}")
        await s.presence.connect(f"m{n}", "member", f"c{n}", t0)
    grace = MemberGrace(cast(Services, s))
    assert await grace.sweep(t0) == 0
    assert recording.lists() == [], "nobody away: no list of members sent"

    # A mark of a member with nothing at stake, and one of a member online (their process
    # had stalled): the first dropped, the second cleared, each statement naming only them.
    await db.execute("INSERT INTO members_away (member_id) VALUES ('m-none'), ('m3')")
    recording.args.clear()
    assert await grace.sweep(t0 + 1) == 0
    assert await db.fetchval("SELECT count(*) FROM members_away") == 0
    assert sorted(recording.lists()) == [["m-none"], ["m3"]]
