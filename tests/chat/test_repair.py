"""chat/upkeep/repair.py against a real PostgreSQL and a real hub: what a round finds that no
doorbell told a socket here (a start, an end, messages), and what it may leave unread
because a socket's `welcome` holds it (docs/performance.md, round 11, repair)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from chat.bus_memory import MemoryBus, MemoryExchange
from chat.delivery.hub import Hub
from chat.gateway.session import CatchUp, Outbound, Session
from chat.services import Services
from chat.store import assignment, conversations
from chat.store.assignment import Assignment
from chat.upkeep.repair import (
    REASK_EVERY,
    STARTS_OVERLAP_S,
    STARTS_SETTLE_S,
    Rounds,
    _question,
    ask,
    repair_once,
)
from tests.chat.conftest import Pool
from tests.chat.test_hub import _new_hub
from tests.chat.test_session import Wire, attached, message, settle, started
from tests.chat.test_store import _request, _specialist


@dataclass
class RepairServices:
    """What a round uses of a process's Services: its hub and its pool."""

    hub: Hub
    db: Pool


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = _new_hub(MemoryBus(MemoryExchange()))

    async def reconnected(only: frozenset[str] | None = None) -> None:
        return None

    await hub.bus.start(hub.on_bus, reconnected)
    yield hub


async def _start(db: Pool, member_id: str, specialist_id: str, *, age_s: float) -> str:
    """A conversation committed now, whose doorbell never rang here, its `started_at`
    `age_s` back (past the settle time, as a round would look at it)."""
    await _specialist(db, specialist_id)
    request = await _request(db, member_id)
    assigned = await assignment.claim_request(db, request.id, specialist_id)
    assert isinstance(assigned, Assignment)
    await db.execute(
        "UPDATE conversations SET started_at = now() - make_interval(secs => $2) WHERE id = $1",
        assigned.conversation_id,
        age_s,
    )
    return assigned.conversation_id


def _started(wire: Wire) -> list[object]:
    return [frame["conversation"]["id"] for frame in wire.sent if frame["type"] == "conversation_started"]  # type: ignore[index]


async def test_a_start_committed_while_a_socket_here_was_connected_and_never_rung_is_repaired(
    hub: Hub, db: Pool
) -> None:
    """The first round after the process's start reads back to that start (with the
    overlap), not five minutes: what it skips is in every socket's `welcome`. A start
    committed after a socket here connected, its doorbell lost, is still told, once."""
    rounds = Rounds(time.monotonic() - 8)  # the process started 8 s ago
    services = cast(Services, RepairServices(hub, db))
    _, member_wire = await attached(hub, "m-lost")
    _, specialist_wire = await attached(hub, "s-lost", "specialist")
    conv = await _start(db, "m-lost", "s-lost", age_s=STARTS_SETTLE_S + 1)
    await repair_once(services, rounds)
    await settle()
    assert _started(member_wire) == [conv] and _started(specialist_wire) == [conv]
    await repair_once(services, rounds)
    await settle()
    assert _started(member_wire) == [conv], "told once"


async def test_after_a_round_with_no_socket_a_later_socket_still_gets_a_lost_start(
    hub: Hub, db: Pool
) -> None:
    """A round that found no socket here moves the start of the next read to itself (every
    later socket connected after it): a start committed once a socket came is still told."""
    rounds = Rounds(time.monotonic() - 3600)
    services = cast(Services, RepairServices(hub, db))
    await repair_once(services, rounds)
    assert time.monotonic() - rounds.starts_read_at < 5, "the round with no socket is the new start"
    _, wire = await attached(hub, "m-later")
    conv = await _start(db, "m-later", "s-later", age_s=STARTS_SETTLE_S + 1)
    await repair_once(services, rounds)
    await settle()
    assert _started(wire) == [conv]


async def test_a_start_from_before_the_process_is_left_to_the_welcome(hub: Hub, db: Pool) -> None:
    """The bound of the first read: a start older than the process (by more than the
    overlap) is not read at all; a socket here connected later and had it in its `welcome`
    (here it did not, which shows the row was never read)."""
    rounds = Rounds(time.monotonic() - 8)
    services = cast(Services, RepairServices(hub, db))
    _, wire = await attached(hub, "m-old")
    await _start(db, "m-old", "s-old", age_s=8 + STARTS_OVERLAP_S + STARTS_SETTLE_S + 10)
    await repair_once(services, rounds)
    await settle()
    assert _started(wire) == []


async def test_an_end_told_to_one_device_reaches_the_other_it_was_not(hub: Hub, db: Pool) -> None:
    """Two sockets of one member know the conversation; one was told it ended, the other's
    doorbell was lost: the round finds the end (not told to every socket) and tells it."""
    rounds = Rounds()
    services = cast(Services, RepairServices(hub, db))
    conv = await _start(db, "m-two", "s-two", age_s=0)
    phone, phone_wire = await attached(hub, "m-two")
    laptop, laptop_wire = await attached(hub, "m-two")
    for session in (phone, laptop):
        session.seen[conv] = 0
    ended = await conversations.end(db, conv, by="specialist", reason="ended")
    assert ended is not None
    await db.execute("UPDATE conversations SET ended_at = now() - interval '10 seconds' WHERE id = $1", conv)
    phone.ended.add(conv)  # its doorbell came
    await repair_once(services, rounds)
    await settle()
    assert [f["type"] for f in laptop_wire.sent] == ["conversation_ended"]
    assert phone_wire.sent == []
    laptop_wire.sent.clear()
    await repair_once(services, rounds)
    await settle()
    assert laptop_wire.sent == [], "told once: every socket now knows"


async def test_a_socket_behind_on_messages_is_caught_up_a_round_later(hub: Hub, db: Pool) -> None:
    """A message committed whose ring was lost: the round after the one that saw it behind
    catches the socket up (the hub compares with the round before)."""
    rounds = Rounds()
    services = cast(Services, RepairServices(hub, db))
    conv = await _start(db, "m-msg", "s-msg", age_s=0)
    session, wire = await attached(hub, "m-msg")
    session.seen[conv] = 0
    await conversations.append(
        db,
        conversation_id=conv,
        sender_id="s-msg",
        sender_role="specialist",
        sender_name="Ro",
        client_msg_id="c1",
        body="hello",
    )
    wire.stored[conv] = [1]
    await repair_once(services, rounds)
    await settle()
    assert wire.backfills == [], "a round later: it may still be on its way"
    await repair_once(services, rounds)
    await settle()
    assert wire.backfills and wire.backfills[0][:2] == (conv, 0)
    assert session.seen[conv] == 1


async def test_a_start_visible_only_after_the_round_that_covered_its_time_is_still_told(
    hub: Hub, db: Pool
) -> None:
    """`started_at` is the transaction's start, not its commit: a start the last round could
    not see yet, though its time was in that round's window, is told by the next (the
    overlap; what a round skips is only what the round before read and checked)."""
    rounds = Rounds(time.monotonic() - 60)
    services = cast(Services, RepairServices(hub, db))
    _, wire = await attached(hub, "m-slow")
    first = await _start(db, "m-first", "s-first", age_s=STARTS_SETTLE_S + 1)
    await repair_once(services, rounds)
    assert rounds.starts_checked == {first}
    late = await _start(db, "m-slow", "s-slow", age_s=STARTS_SETTLE_S + 10)  # committed only now
    await repair_once(services, rounds)
    await settle()
    assert _started(wire) == [late]


# Writes to a socket's `seen`, `ended` or `handed_on` anywhere but chat/gateway/ordering.py.
_WRITES = re.compile(
    r"\.seen\[[^\]]+\]\s*=[^=]|\.seen\.(pop|clear|update|setdefault|popitem)\("
    r"|del [\w.]+\.seen\[|\.(ended|handed_on)\.(add|discard|remove|clear|update|pop)\("
)


def test_only_the_ordering_writes_what_a_socket_knows() -> None:
    """The repair reuses its question while `CHANGES` has not moved, and only the ordering
    (and the hub's attach/detach) moves it: a handler writing `seen` itself would leave a
    socket out of the question, and a ring it lost unrepaired. Use `Session.know`/`forget`."""
    root = Path(__file__).resolve().parents[2] / "chat"
    writers = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if path.name != "ordering.py" or path.parent.name != "gateway"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _WRITES.search(line)
    ]
    assert writers == []


def _ended(conversation_id: str, reason: str = "ended") -> Outbound:
    data = json.dumps({"type": "conversation_ended", "conversation_id": conversation_id, "reason": reason})
    return Outbound(
        data.replace(", ", ",").replace(": ", ":").encode(), conversation_id, ends_conversation=True
    )


async def test_the_question_is_walked_again_after_every_change_a_socket_here_makes(hub: Hub) -> None:
    """After each thing that changes what a socket knows (through the real session and
    ordering), the round's question is the one a fresh walk makes; with nothing changed it
    is the round before's, not walked again (until the backstop)."""
    rounds = Rounds()
    member_session, member_wire = await attached(hub, "m-q")
    specialist_session, _ = await attached(hub, "s-q", "specialist")
    later: list[Session] = []

    def check(label: str) -> None:
        assert _question(hub, rounds) == ask(hub), label

    async def second_device() -> None:
        session = (await attached(hub, "m-q"))[0]
        session.know("c-q", 1)  # its `welcome`
        later.append(session)

    async def leave() -> None:
        await hub.detach(later.pop())

    both = (member_session, specialist_session)

    def to(sessions: tuple[Session, ...], item: Outbound) -> Callable[[], None]:
        def step() -> None:
            for session in sessions:
                session.deliver(item)

        return step

    steps: list[tuple[str, Callable[[], object]]] = [
        ("start", to(both, started("c-q"))),
        ("message", to(both, message(1, "c-q"))),
        ("ahead of a gap", to(both, message(3, "c-q"))),
        ("gap filled", to(both, message(2, "c-q"))),
        ("welcome", lambda: specialist_session.know("c-other", 4)),
        ("second device", second_device),
        ("device left", leave),
        ("unwatch", lambda: specialist_session.forget("c-other")),
        ("end", to((member_session,), _ended("c-q"))),
        ("handed on", to((specialist_session,), _ended("c-q", "transferred"))),
        ("handed back", to((specialist_session,), started("c-q"))),
    ]
    check("first")
    for label, step in steps:
        before = rounds.asked
        assert before is not None and _question(hub, rounds) is before, (
            f"nothing changed before {label}: reused"
        )
        result = step()
        if asyncio.iscoroutine(result):
            await result
        await settle()
        check(label)
    # A catch-up read from PostgreSQL moves what the socket was sent too.
    member_wire.stored["c-new"] = [1, 2]
    member_session.deliver(started("c-new"))
    await settle()
    check("another start")
    member_session.deliver(CatchUp("c-new"))
    await settle()
    assert member_session.seen["c-new"] == 2
    check("caught up")
    assert ask(hub).lowest["c-new"] == 2
    rounds.reused = 0
    kept = rounds.asked
    for _ in range(REASK_EVERY - 1):
        assert _question(hub, rounds) is kept, "nothing changed: reused"
    assert _question(hub, rounds) is not kept, "the backstop walks again"
