"""chat/delivery/hub.py over the memory bus: two Hubs on one exchange are two `web` processes.
Each user's sockets get each frame once, wherever they are connected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat.bus import Bus
from chat.bus_memory import MemoryBus, MemoryExchange
from chat.config import Settings
from chat.delivery.hub import QUEUE_CHANNEL, STATS_CHANNEL, Hub
from chat.gateway.session import Session
from chat.people import member, specialist
from chat.redis_keys import identity_key
from chat.seal import Sealer, seal_key
from protocol.codec import encode
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Error
from tests.chat.test_session import Wire, attached, message, settle, started

CONV = "c1"
SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="h" * 32)
KEY = seal_key(SETTINGS.identity_hmac_key)
U1 = member("u1")


def name(role: str, sub: str) -> str:
    return identity_key(SETTINGS, role, sub)


U1_CHANNEL = "pc:user:" + name("member", "u1")


def _new_hub(bus: Bus) -> Hub:
    """A `web` process's hub: every process of a cluster shares the names and the key."""
    return Hub(bus, name, Sealer(KEY))


@pytest.fixture
def exchange() -> MemoryExchange:
    return MemoryExchange()


async def _hub(exchange: MemoryExchange) -> Hub:
    hub = _new_hub(MemoryBus(exchange))

    async def reconnected(only: frozenset[str] | None = None) -> None:
        hub.catch_up_everyone()

    await hub.bus.start(hub.on_bus, reconnected)
    return hub


@pytest.fixture
async def hubs(exchange: MemoryExchange) -> AsyncIterator[tuple[Hub, Hub]]:
    yield await _hub(exchange), await _hub(exchange)


def _errors(wire: Wire) -> list[object]:
    return [f["message"] for f in wire.sent if f["type"] == "error"]


async def test_to_user_reaches_every_socket_on_every_process_once(hubs: tuple[Hub, Hub]) -> None:
    a, b = hubs
    phone, phone_wire = await attached(a, "u1")
    laptop, laptop_wire = await attached(b, "u1")
    tablet, tablet_wire = await attached(a, "u1")
    _, other_wire = await attached(b, "u2")
    a.to_user(U1, Error(code=ErrorCode.INTERNAL, message="hello"))
    await settle()
    for wire in (phone_wire, laptop_wire, tablet_wire):
        assert _errors(wire) == ["hello"]
    assert other_wire.sent == []
    # `skip` leaves out the one socket that already got its direct reply.
    b.to_user(U1, Error(code=ErrorCode.INTERNAL, message="fan-out"), skip=laptop)
    await settle()
    assert _errors(laptop_wire) == ["hello"]
    assert _errors(phone_wire) == _errors(tablet_wire) == ["hello", "fan-out"]
    for s in (phone, laptop, tablet):
        await s.stop()


async def test_close_user_closes_every_socket_of_that_user_on_every_process_after_its_frames(
    hubs: tuple[Hub, Hub],
) -> None:
    a, b = hubs
    _, here = await attached(a, "u1")
    _, there = await attached(b, "u1")
    _, other = await attached(b, "u2")
    _, same_sub_other_role = await attached(b, "u1", role="specialist")
    a.to_user(U1, Error(code=ErrorCode.INTERNAL, message="last words"))
    a.close_user(U1, 4003)
    await settle()
    for wire in (here, there):
        assert _errors(wire) == ["last words"], "the frames rung before the close arrive first"
        assert [code for code, _ in wire.closes] == [4003]
    assert other.closes == []
    assert same_sub_other_role.closes == [], "a specialist with the same sub is another person"


async def test_messages_keep_their_seq_across_processes(hubs: tuple[Hub, Hub]) -> None:
    a, b = hubs
    here, here_wire = await attached(a, "u1")
    there, there_wire = await attached(b, "u1")
    a.to_user(U1, started().data, conversation_id=CONV, starts_conversation=True)
    for seq in (1, 2, 3):
        a.to_user(U1, message(seq).data, conversation_id=CONV, seq=seq)
    a.to_user(U1, message(2).data, conversation_id=CONV, seq=2)  # a repeat
    await settle()
    assert here_wire.seqs() == there_wire.seqs() == [1, 2, 3]
    assert here.seen == there.seen == {CONV: 3}
    await here.stop()
    await there.stop()


async def test_attach_and_detach_hold_one_subscription_per_user(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    a, _ = hubs
    channel = U1_CHANNEL
    first, _ = await attached(a, "u1")
    second, _ = await attached(a, "u1")
    assert exchange.subscribers[channel] == {a.bus}
    assert {s.id for s in a.all_sessions()} == {first.id, second.id}
    await a.detach(first)
    assert exchange.subscribers[channel] == {a.bus}, "one socket is still here"
    await a.detach(second)
    assert exchange.subscribers[channel] == set()
    assert a.all_sessions() == [] and U1 not in a.sessions
    await a.detach(second)  # twice is harmless
    for s in (first, second):
        await s.stop()


async def test_watchers_get_broadcasts_from_any_process(hubs: tuple[Hub, Hub]) -> None:
    a, b = hubs
    watcher, watcher_wire = await attached(b, "spec-1")
    supervisor, supervisor_wire = await attached(b, "sup-1")
    b.queue_watchers.add(watcher)
    b.stats_watchers.add(supervisor)
    for channel in (QUEUE_CHANNEL, STATS_CHANNEL):
        await b.bus.subscribe(channel)
    await a.broadcast(QUEUE_CHANNEL, Error(code=ErrorCode.INTERNAL, message="queue changed"))
    await a.broadcast(STATS_CHANNEL, Error(code=ErrorCode.INTERNAL, message="stats changed"))
    await settle()
    assert _errors(watcher_wire) == ["queue changed"]
    assert _errors(supervisor_wire) == ["stats changed"]
    await b.detach(watcher)
    await a.broadcast(QUEUE_CHANNEL, Error(code=ErrorCode.INTERNAL, message="again"))
    await settle()
    assert _errors(watcher_wire) == ["queue changed"], "a detached socket is no longer a watcher"
    for s in (watcher, supervisor):
        await s.stop()


async def test_bus_noise_is_ignored(hubs: tuple[Hub, Hub]) -> None:
    a, _ = hubs
    session, wire = await attached(a, "u1")
    for data in (b"", b"no header", b"too|few\n{}", b"o|c|not-a-number|\n{}"):
        a.on_bus(U1_CHANNEL, data)
    a.on_bus("pc:somewhere-else", b"o|||\n{}")
    # The hub's own rings come back from the bus and are dropped: it delivered locally already.
    a.on_bus(U1_CHANNEL, f"{a.origin}|||\n".encode() + encode(Error(code=ErrorCode.INTERNAL, message="own")))
    await settle()
    assert wire.sent == []
    await session.stop()


async def test_after_a_bus_outage_every_socket_catches_up_from_the_store(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    a, b = hubs
    session, wire = await attached(b, "u1")
    wire.stored[CONV] = [1, 2]
    b.to_user(U1, started().data, conversation_id=CONV, starts_conversation=True)
    b.to_user(U1, message(1).data, conversation_id=CONV, seq=1)
    exchange.up = False
    wire.stored[CONV] += [3, 4]
    a.to_user(U1, message(3).data, conversation_id=CONV, seq=3)  # lost: the bus is down
    await settle()
    assert wire.seqs() == [1]
    exchange.up = True
    assert isinstance(b.bus, MemoryBus)
    await b.bus.simulate_reconnect()
    await settle()
    assert wire.seqs() == [1, 2, 3, 4]
    await session.stop()


async def test_a_slow_socket_does_not_hold_up_the_others(hubs: tuple[Hub, Hub]) -> None:
    a, _ = hubs
    slow, slow_wire = await attached(a, "u1", max_queue=10)
    fast, fast_wire = await attached(a, "u1", max_queue=50)
    slow_wire.gate.clear()
    for seq in range(1, 41):
        a.to_user(U1, message(seq).data, conversation_id=CONV, seq=seq)
    await settle()
    assert fast_wire.seqs() == list(range(1, 41))
    assert slow_wire.closes == [(CloseCode.SLOW_CONSUMER, "slow consumer")]
    for s in (slow, fast):
        await s.stop()


async def test_fan_out_before_start_follows_the_welcome(hubs: tuple[Hub, Hub]) -> None:
    """The gateway attaches a socket before it reads the user's state, so a ring can arrive
    before the `welcome` is queued; the client must still see `welcome` first."""
    a, b = hubs
    wire = Wire()
    wire.stored[CONV] = [1, 2]
    session = Session(
        user_id="u1",
        role="member",
        name="u1",
        send_text=wire.send_text,
        close_socket=wire.close_socket,
        backfill=wire.backfill,
        max_queue=50,
    )
    await a.attach(session)
    b.to_user(U1, message(2).data, conversation_id=CONV, seq=2)  # rings in early
    session.push_frame(Error(code=ErrorCode.INTERNAL, message="welcome"))
    session.seen[CONV] = 1  # the welcome said last_seq 1
    session.start()
    await settle()
    assert wire.sent[0]["message"] == "welcome"
    assert wire.seqs() == [2]
    await session.stop()


async def test_a_user_held_by_one_process_only_is_not_rung_for_messages(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    """The ring would only come back to its sender: after one PUBLISH that reached only
    this process, message rings for that user are skipped; other frames still ring."""
    a, _ = hubs
    session, wire = await attached(a, "u1")
    a.to_user(U1, started().data, conversation_id=CONV, starts_conversation=True)
    for seq in (1, 2, 3):
        a.to_user(U1, message(seq).data, conversation_id=CONV, seq=seq)
    await settle()
    assert wire.seqs() == [1, 2, 3], "the local socket gets everything"
    assert a.rings_skipped == 2, "the first ring taught it; the next two were skipped"
    # A listener that never joined (the instant before a newcomer's join arrives) hears
    # everything but message rings.
    eavesdrop = MemoryBus(exchange)
    heard: list[bytes] = []
    await eavesdrop.start(lambda _channel, data: heard.append(data), _nothing)
    await eavesdrop.subscribe(U1_CHANNEL)
    a.to_user(U1, message(4).data, conversation_id=CONV, seq=4)
    a.to_user(U1, Error(code=ErrorCode.INTERNAL, message="not a message"))
    assert len(heard) == 1 and b"not a message" not in heard[0], "sealed"
    header = heard[0][: heard[0].index(b"\n") + 1]
    opened = Sealer(KEY).open(heard[0][len(header) :], U1_CHANNEL.encode() + header)
    assert opened is not None and b"not a message" in opened
    await session.stop()


async def _nothing(only: frozenset[str] | None = None) -> None:
    return None


async def test_a_newcomer_gets_what_was_skipped_and_everything_after(hubs: tuple[Hub, Hub]) -> None:
    a, b = hubs
    here, here_wire = await attached(a, "u1")
    a.to_user(U1, started().data, conversation_id=CONV, starts_conversation=True)
    for seq in (1, 2, 3):
        a.to_user(U1, message(seq).data, conversation_id=CONV, seq=seq)
    assert a.rings_skipped == 2
    # A second device on the other process; its state read (the welcome) saw seq 1 only.
    wire = Wire()
    there = wire.session()
    there.seen[CONV] = 1
    await b.attach(there)  # subscribes, then rings the join: a re-sends 2 and 3
    there.start()
    a.to_user(U1, message(4).data, conversation_id=CONV, seq=4)
    await settle()
    assert wire.seqs() == [2, 3, 4]
    assert wire.backfills == [], "nothing had to be read from the store"
    assert here_wire.seqs() == [1, 2, 3, 4]
    assert a.rings_skipped == 2, "two processes hold u1 now: every ring goes out"
    await here.stop()
    await there.stop()


async def test_a_bus_reconnect_ends_solo_and_resends_what_was_skipped(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    a, _ = hubs
    session, _ = await attached(a, "u1")
    for seq in (1, 2):
        a.to_user(U1, message(seq).data, conversation_id=CONV, seq=seq)
    assert a.rings_skipped == 1
    # Someone subscribed while a's connection was down and its join was lost.
    late = MemoryBus(exchange)
    heard: list[bytes] = []
    await late.start(lambda _channel, data: heard.append(data), _nothing)
    await late.subscribe(U1_CHANNEL)
    a.bus_reconnected()
    assert any(ring.startswith(f"{a.origin}|{CONV}|2|".encode()) for ring in heard), (
        "the skipped ring was sent"
    )
    assert any(ring.endswith(b"|J\n") for ring in heard), "and a joined again"
    a.to_user(U1, message(3).data, conversation_id=CONV, seq=3)
    assert any(ring.startswith(f"{a.origin}|{CONV}|3|".encode()) for ring in heard)
    assert a.rings_skipped == 1
    await session.stop()


class _LateReplies(MemoryBus):
    """Delivers at once but holds PUBLISH replies back, as a busy Redis connection would."""

    def __init__(self, exchange: MemoryExchange) -> None:
        super().__init__(exchange)
        self.held: list[tuple[Any, int]] = []

    def post(self, channel: str, data: bytes, on_receivers: Any = None) -> None:
        super().post(
            channel, data, None if on_receivers is None else lambda n: self.held.append((on_receivers, n))
        )

    def release(self) -> None:
        held, self.held = self.held, []
        for callback, n in held:
            callback(n)


async def test_a_reply_counted_before_a_change_teaches_nothing(exchange: MemoryExchange) -> None:
    """A PUBLISH that reached only us, answered after the user's sockets here went and came
    back (another process may have joined meanwhile), must not make the user solo."""
    bus = _LateReplies(exchange)
    a = _new_hub(bus)
    await bus.start(a.on_bus, _nothing)
    first, _ = await attached(a, "u1")
    a.to_user(U1, message(1).data, conversation_id=CONV, seq=1)  # reply held
    await a.detach(first)
    second, _ = await attached(a, "u1")
    bus.release()  # the stale "1 receiver" arrives now
    a.to_user(U1, message(2).data, conversation_id=CONV, seq=2)
    assert a.rings_skipped == 0, "the stale count was ignored"
    bus.release()  # a fresh count: now it may learn
    a.to_user(U1, message(3).data, conversation_id=CONV, seq=3)
    assert a.rings_skipped == 1
    for s in (first, second):
        await s.stop()


async def test_a_member_and_a_specialist_with_one_sub_are_two_people(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    """PRODUCT.md §4: sockets and channels are keyed by (role, sub), here and across processes."""
    a, b = hubs
    rosa_here, rosa_wire = await attached(a, "same", role="specialist")
    mallory_here, mallory_here_wire = await attached(a, "same", role="member")
    mallory_there, mallory_there_wire = await attached(b, "same", role="member")
    assert a.channel(specialist("same")) != a.channel(member("same"))
    assert "same" not in a.channel(member("same"))
    a.to_user(specialist("same"), Error(code=ErrorCode.INTERNAL, message="for Rosa"))
    b.to_user(member("same"), Error(code=ErrorCode.INTERNAL, message="for Mallory"))
    await settle()
    assert _errors(rosa_wire) == ["for Rosa"]
    assert _errors(mallory_here_wire) == _errors(mallory_there_wire) == ["for Mallory"]
    for s in (rosa_here, mallory_here, mallory_there):
        await s.stop()


async def test_a_ring_sealed_under_another_key_or_altered_is_dropped(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    a, b = hubs
    session, wire = await attached(a, "u1")
    stranger = Hub(MemoryBus(exchange), name, Sealer(seal_key(b"z" * 32)))
    await stranger.bus.start(stranger.on_bus, _nothing)
    stranger.to_user(U1, Error(code=ErrorCode.INTERNAL, message="forged"))
    eavesdrop = MemoryBus(exchange)
    heard: list[bytes] = []
    await eavesdrop.start(lambda _channel, data: heard.append(data), _nothing)
    await eavesdrop.subscribe(U1_CHANNEL)
    b.to_user(U1, Error(code=ErrorCode.INTERNAL, message="genuine"))
    altered = bytearray(heard[-1])
    altered[-1] ^= 1
    a.on_bus(U1_CHANNEL, bytes(altered))
    # Moved to another person's channel: the channel is authenticated with the frame.
    a.on_bus(a.channel(member("u2")), heard[-1])
    await settle()
    assert _errors(wire) == ["genuine"]
    assert a.rings_unopened == 2
    await session.stop()


async def test_a_close_ring_not_sealed_with_the_key_closes_nothing(hubs: tuple[Hub, Hub]) -> None:
    """Someone who can write to Redis cannot close a person's sockets."""
    a, _ = hubs
    session, wire = await attached(a, "u1")
    a.on_bus(U1_CHANNEL, b"someone||4003|C\n")
    a.on_bus(U1_CHANNEL, b"someone||4003|C\n" + b"\x01" * 60)
    await settle()
    assert wire.closes == []
    await session.stop()


async def test_a_partial_bus_recovery_catches_up_and_unsolos_only_the_people_it_names(
    exchange: MemoryExchange, hubs: tuple[Hub, Hub]
) -> None:
    """A cluster bus brings back one master's partitions at a time (chat/bus_cluster.py):
    only the people whose channels were on them may have lost rings."""
    a, _ = hubs
    u2 = member("u2")
    sessions = {}
    for person in (U1, u2):
        session, wire = await attached(a, person.id)
        sessions[person] = (session, wire)
        a.to_user(person, started().data, conversation_id=CONV, starts_conversation=True)
        for seq in (1, 2):  # the second is skipped: only a holds them (solo)
            a.to_user(person, message(seq).data, conversation_id=CONV, seq=seq)
        wire.stored[CONV] = [1, 2, 3]  # 3 was stored elsewhere and its ring lost
    await settle()
    assert a.rings_skipped == 2
    heard: list[bytes] = []
    late = MemoryBus(exchange)
    await late.start(lambda _channel, data: heard.append(data), _nothing)
    await late.subscribe(a.channel(u2))
    only = frozenset({a.channel(U1)})
    a.bus_reconnected(only)
    a.catch_up_everyone(only)
    await settle()
    assert sessions[U1][1].seqs() == [1, 2, 3]
    assert sessions[u2][1].seqs() == [1, 2], "u2's partition lost nothing: no catch-up"
    assert heard == [], "nor a re-sent skipped ring or a join on u2's channel"
    a.bus_reconnected()  # a whole-bus reconnect still covers everyone
    assert any(ring.startswith(f"{a.origin}|{CONV}|2|".encode()) for ring in heard)
    for session, _ in sessions.values():
        await session.stop()


async def test_repair_catches_up_a_socket_behind_the_seqs_of_the_round_before(hubs: tuple[Hub, Hub]) -> None:
    """A ring lost without the bus noticing: the repair round compares each socket with what
    PostgreSQL had one round earlier, and catches up the ones behind. A round after one that
    found nothing behind looks at no socket at all (the idle case)."""
    a, _ = hubs
    session, wire = await attached(a, "u1")
    wire.stored[CONV] = [1]
    a.to_user(U1, started().data, conversation_id=CONV, starts_conversation=True)
    a.to_user(U1, message(1).data, conversation_id=CONV, seq=1)
    await settle()
    assert a.repair({}) == 0
    wire.stored[CONV] += [2, 3]  # committed, their rings lost
    assert a.repair({CONV: 3}) == 0, "a round later: they may still be on their way"
    assert a.repair({}) == 1, "compared with the round before"
    await settle()
    assert wire.seqs() == [1, 2, 3]
    assert a.repair({CONV: 3}) == 0 and a.repair({}) == 0, "caught up"
    await session.stop()
