"""chat/gateway/session.py as pure logic: a fake socket records what would be sent, a fake store
answers backfill reads. Ordering, dedupe by seq, gap repair, catch-up, slow consumers.

Every test runs twice: with the socket's direct send (uvicorn with chat/gateway/wsproto.py) and
without it (every frame through the writer task), since both paths serve real clients."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

import chat.gateway.ordering as ordering_module
from chat.delivery.hub import Hub
from chat.gateway.session import CatchUp, Outbound, Session
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Error, Role

CONV = "c1"


def message(seq: int, conversation_id: str = CONV) -> Outbound:
    data = json.dumps({"type": "message", "conversation_id": conversation_id, "seq": seq}).encode()
    return Outbound(data, conversation_id, seq)


def started(conversation_id: str = CONV) -> Outbound:
    data = json.dumps({"type": "conversation_started", "conversation_id": conversation_id}).encode()
    return Outbound(data, conversation_id, None, starts_conversation=True)


@dataclass
class Wire:
    """The socket and the store behind one Session."""

    stored: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    sent: list[dict[str, object]] = field(default_factory=list)
    closes: list[tuple[int, str]] = field(default_factory=list)
    backfills: list[tuple[str, int, int]] = field(default_factory=list)
    fail_sends: bool = False
    fail_backfill: bool = False
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    direct: bool = False
    direct_sends: int = 0

    async def send_text(self, data: bytes) -> None:
        await self.gate.wait()
        if self.fail_sends:
            raise ConnectionError("socket gone")
        self.sent.append(json.loads(data))

    def send_now(self, frames: list[bytes]) -> bool:
        """Like chat/gateway/wsproto.py: all in one write, or False while the socket cannot take them."""
        if not self.gate.is_set() or self.fail_sends:
            return False
        self.sent.extend(json.loads(data) for data in frames)
        self.direct_sends += 1
        return True

    async def close_socket(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    async def backfill(self, conversation_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        self.backfills.append((conversation_id, after, limit))
        if self.fail_backfill:
            raise OSError("database down")
        seqs = [s for s in self.stored[conversation_id] if s > after][:limit]
        return [(s, message(s, conversation_id).data) for s in seqs]

    def session(self, max_queue: int = 100) -> Session:
        return Session(
            user_id="u1",
            role="member",
            name="Sam",
            send_text=self.send_text,
            close_socket=self.close_socket,
            backfill=self.backfill,
            max_queue=max_queue,
            send_now=self.send_now if self.direct else None,
        )

    def seqs(self, conversation_id: str = CONV) -> list[object]:
        return [
            f["seq"] for f in self.sent if f["type"] == "message" and f["conversation_id"] == conversation_id
        ]


async def attached(
    hub: Hub, user_id: str, role: Role = "member", *, max_queue: int = 50
) -> tuple[Session, Wire]:
    """A started Session on a Wire, attached to `hub` (tests/chat/test_hub.py, test_repair.py)."""
    wire = Wire()
    session = Session(
        user_id=user_id,
        role=role,
        name=user_id,
        send_text=wire.send_text,
        close_socket=wire.close_socket,
        backfill=wire.backfill,
        max_queue=max_queue,
    )
    await hub.attach(session)
    session.start()
    return session, wire


@pytest.fixture(autouse=True, params=["queued", "direct"])
def send_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Wires made in this module's tests use the direct send in the "direct" run."""
    if request.param == "direct":
        original = Wire.__init__

        def direct_init(self: Wire, *args: object, **kwargs: object) -> None:
            original(self, *args, **kwargs)  # type: ignore[arg-type]
            self.direct = True

        monkeypatch.setattr(Wire, "__init__", direct_init)
    return str(request.param)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_frames_pushed_before_start_wait_and_keep_their_order() -> None:
    wire = Wire()
    session = wire.session()
    for i in range(50):
        session.push_frame(Error(code=ErrorCode.BAD_FRAME, message=str(i)))
    await settle()
    assert wire.sent == [], "nothing leaves before start()"
    session.start()
    await settle()
    assert [f["message"] for f in wire.sent] == [str(i) for i in range(50)]
    await session.stop()


async def test_a_seq_already_sent_is_dropped() -> None:
    wire = Wire()
    session = wire.session()
    session.start()
    session.push(started())
    for seq in (1, 2, 2, 1, 3, 3):
        session.push(message(seq))
    await settle()
    assert wire.seqs() == [1, 2, 3]
    assert session.seen == {CONV: 3}
    assert wire.backfills == []
    await session.stop()


async def test_a_gap_is_filled_from_the_store_before_the_next_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 0.01)
    wire = Wire()
    wire.stored[CONV] = [1, 2, 3, 4, 5]
    session = wire.session()
    session.start()
    session.push(started())
    session.push(message(1))
    session.push(message(5))  # 2..4 were lost on the bus
    await settle()
    assert wire.seqs() == [1], "5 waits for the missing ones"
    await asyncio.sleep(0.05)
    session.push(message(3))  # a late copy of one the catch-up already sent
    await settle()
    assert wire.seqs() == [1, 2, 3, 4, 5]
    assert wire.backfills == [(CONV, 1, 3)], "reads exactly the missing range"
    await session.stop()


async def test_conversations_are_numbered_independently() -> None:
    wire = Wire()
    session = wire.session()
    session.start()
    session.push(started("a"))
    session.push(started("b"))
    for out in (message(1, "a"), message(1, "b"), message(2, "b"), message(2, "a"), message(1, "a")):
        session.push(out)
    await settle()
    assert wire.seqs("a") == [1, 2] and wire.seqs("b") == [1, 2]
    await session.stop()


async def test_catch_up_sends_everything_after_what_was_seen_in_batches() -> None:
    wire = Wire()
    wire.stored[CONV] = list(range(1, 451))
    session = wire.session()
    session.seen[CONV] = 7  # e.g. `resume: {c1: 7}`
    session.push(CatchUp(CONV))
    session.push(message(451))  # a live message queued behind the catch-up
    wire.stored[CONV].append(451)
    session.start()
    await settle()
    assert wire.seqs() == list(range(8, 452))
    assert [b[1] for b in wire.backfills] == [7, 207, 407]
    assert all(b[2] == 200 for b in wire.backfills)
    await session.stop()


async def test_a_message_for_an_unknown_conversation_first_reads_its_past(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 0.01)
    wire = Wire()
    wire.stored[CONV] = [1, 2, 3]
    session = wire.session()
    session.start()
    session.push(message(3))
    await asyncio.sleep(0.05)
    await settle()
    assert wire.seqs() == [1, 2, 3]
    await session.stop()


async def test_a_client_that_stops_reading_is_closed_4008_once() -> None:
    wire = Wire()
    wire.gate.clear()  # the socket accepts nothing: the client stopped reading
    session = wire.session(max_queue=5)
    session.start()
    for i in range(20):
        session.push(message(i + 1))
    await settle()
    assert wire.closes == [(CloseCode.SLOW_CONSUMER, "slow consumer")]
    assert session.closed
    session.push(message(99))
    session.close_soon(CloseCode.NORMAL)
    await settle()
    assert len(wire.closes) == 1, "closed once, later pushes are ignored"
    await session.stop()


async def test_close_soon_sends_what_was_queued_first() -> None:
    wire = Wire()
    session = wire.session()
    session.push(started())
    session.push(message(1))
    session.close_soon(CloseCode.SERVER_RESTARTING, "server restarting")
    session.push(message(2))
    session.start()
    await settle()
    assert wire.seqs() == [1]
    assert wire.closes == [(CloseCode.SERVER_RESTARTING, "server restarting")]
    await session.stop()


async def test_close_soon_on_a_full_queue_closes_at_once() -> None:
    wire = Wire()
    session = wire.session(max_queue=1)
    session.push(message(1))
    session.close_soon(CloseCode.SERVER_RESTARTING, "server restarting")
    await settle()
    assert wire.closes == [(CloseCode.SERVER_RESTARTING, "server restarting")]
    assert session.closed


async def test_stop_ends_the_writer_and_later_pushes_are_ignored() -> None:
    wire = Wire()
    session = wire.session()
    session.start()
    await session.stop()
    session.push(message(1))
    await settle()
    assert wire.sent == [] and session.closed


async def test_a_failing_socket_stops_the_writer_quietly() -> None:
    wire = Wire(fail_sends=True)
    session = wire.session()
    session.start()
    session.push(message(1))
    await settle()
    assert session.closed
    await session.stop()


async def test_a_failed_backfill_closes_the_socket_so_the_client_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 0.01)
    wire = Wire(fail_backfill=True)
    session = wire.session()
    session.start()
    session.push(started())
    session.push(message(3))  # a gap: needs the store, which is down
    await asyncio.sleep(0.05)
    await settle()
    assert wire.closes, "the client must be told (closed) to reconnect and resume"
    await session.stop()


def ended(conversation_id: str = CONV) -> Outbound:
    data = json.dumps({"type": "conversation_ended", "conversation_id": conversation_id}).encode()
    return Outbound(data, conversation_id, None, ends_conversation=True)


async def test_a_start_or_an_end_told_twice_reaches_the_client_once() -> None:
    # The doorbell and the periodic repair can both bring the same news.
    wire = Wire()
    session = wire.session()
    session.start()
    for item in (started(), started(), message(1), ended(), ended()):
        session.push(item)
    await settle()
    assert [f["type"] for f in wire.sent] == ["conversation_started", "message", "conversation_ended"]
    assert session.ended == {CONV}
    await session.stop()


async def test_messages_rung_out_of_order_need_no_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two processes ring seq 2 and 3 in either order: 3 waits briefly for 2 instead of
    # sending PostgreSQL a query for it.
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 1.0)
    wire = Wire()
    wire.stored[CONV] = [1, 2, 3]
    session = wire.session()
    session.start()
    session.push(started())
    session.push(message(1))
    session.push(message(3))
    session.push(message(2))
    await settle()
    assert wire.seqs() == [1, 2, 3]
    assert wire.backfills == []
    await session.stop()


async def test_an_end_does_not_overtake_held_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 5.0)
    wire = Wire()
    wire.stored[CONV] = [1, 2, 3]
    session = wire.session()
    session.start()
    session.push(started())
    session.push(message(1))
    session.push(message(3))
    session.push(ended())
    await settle()
    assert [f["type"] for f in wire.sent][-1] == "conversation_ended"
    assert wire.seqs() == [1, 2, 3], "the end came after every message"
    await session.stop()


async def test_direct_sends_go_at_once_and_a_full_socket_keeps_the_order(send_path: str) -> None:
    wire = Wire()
    session = wire.session()
    session.start()
    session.push(started())
    session.push(message(1))
    if send_path == "direct":
        assert wire.seqs() == [1] and wire.direct_sends == 2, "sent within push(), no writer hop"
        session.push(message(2), message(3))
        assert wire.seqs() == [1, 2, 3] and wire.direct_sends == 3, "frames pushed together, one write"
    else:
        session.push(message(2), message(3))
    await settle()
    wire.gate.clear()  # the socket's buffer is full
    session.push(message(4))
    session.push(message(5), message(6))
    await settle()
    assert wire.seqs() == [1, 2, 3], "nothing passes a full socket"
    wire.gate.set()
    session.push(message(7))  # behind 4-6, though the socket has room again
    await settle()
    assert wire.seqs() == [1, 2, 3, 4, 5, 6, 7]
    session.push(message(8))
    await settle()
    assert wire.seqs() == [1, 2, 3, 4, 5, 6, 7, 8]
    if send_path == "direct":
        assert wire.direct_sends == 4, "the writer went idle: direct sends again"
    await session.stop()


async def test_held_messages_released_by_a_direct_send_follow_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering_module, "GAP_WAIT_S", 5.0)
    wire = Wire()
    session = wire.session()
    session.start()
    session.push(started())
    for seq in (1, 4, 3, 2, 5):
        session.push(message(seq))
    await settle()
    assert wire.seqs() == [1, 2, 3, 4, 5]
    assert session.seen == {CONV: 5} and wire.backfills == []
    await session.stop()


async def test_an_idle_session_holds_no_writer_task_and_no_queue() -> None:
    """Issue 20, idle memory: a writer task and its queue exist only while something waits
    for them, and the writer ends once it has sent everything (then starts again on demand)."""
    wire = Wire()
    session = wire.session()
    session.push(message(1))  # before start: queued, no writer yet
    session.start()
    await settle()
    assert wire.seqs() == [1]
    assert session._writer is None and session._queue is None
    wire.gate.clear()  # the socket's buffer is full: the next frames go through the writer
    session.push(message(2))
    session.push(message(3))
    await settle()
    assert session._writer is not None
    wire.gate.set()
    await settle()
    assert wire.seqs() == [1, 2, 3]
    assert session._writer is None and session._queue is None
    session.push(CatchUp(CONV))  # a new writer for the next queued item
    wire.stored[CONV] = [1, 2, 3, 4]
    await settle()
    assert wire.seqs() == [1, 2, 3, 4]
    assert session._writer is None
    await session.stop()
