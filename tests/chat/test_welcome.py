"""chat/gateway/welcome.py against a real PostgreSQL: what a socket is told right after
`hello`, and in which order: `welcome` with the user's state, then cancellations told once,
then each resumed conversation's missed messages (and its end, if it ended meanwhile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from chat.config import Settings
from chat.gateway.session import CatchUp, Outbound, Session
from chat.gateway.welcome import greet
from chat.people import Person
from chat.presence_memory import MemoryPresence
from chat.services import Services
from chat.store import assignment, conversations, members, offers, profiles, queue
from chat.store.assignment import Assignment
from protocol import frames as f
from protocol.frames import Role
from tests.chat.conftest import Pool


@dataclass
class FakeSession:
    user_id: str
    role: Role
    name: str = "Sam"
    pushed: list[object] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def person(self) -> Person:
        return Person(self.role, self.user_id)

    def push_frame(self, frame: f.Frame) -> None:
        self.pushed.append(frame)

    def push(self, *items: object) -> None:
        self.pushed.extend(items)

    def know(self, conversation_id: str, seq: int) -> None:
        self.seen[conversation_id] = seq


@dataclass
class FakeServices:
    settings: Settings
    db: Pool
    presence: MemoryPresence = field(default_factory=lambda: MemoryPresence(30.0))
    participants: dict[str, object] = field(default_factory=dict)

    def queue_position(self, request_id: str, now: float) -> tuple[int, int] | None:
        return None


def _services(db: Pool, database_url: str) -> Services:
    return cast(
        Services, FakeServices(Settings(database_url=database_url, redis_url="redis://127.0.0.1:1"), db)
    )


async def _greet(
    services: Services, session: FakeSession, resume: dict[str, int] | None = None
) -> list[object]:
    session.pushed.clear()
    await greet(services, cast(Session, session), f.Hello(token="t", resume=resume, ref="r1"))
    return session.pushed


async def _request(db: Pool, member_id: str) -> queue.Request:
    return await queue.create_request(
        db,
        member_id=member_id,
        member_alias=f"alias-{member_id}",
        tags=["grief"],
        language="en",
        note=None,
        priority="normal",
        prefer_specialist=None,
    )


async def _specialist(db: Pool, specialist_id: str) -> None:
    await profiles.put(
        db, specialist_id, name=f"name-{specialist_id}", tags=[], languages=["en"], max_chats=3
    )


async def _conversation(db: Pool, member_id: str, specialist_id: str) -> str:
    await _specialist(db, specialist_id)
    request = await _request(db, member_id)
    assigned = await assignment.claim_request(db, request.id, specialist_id)
    assert isinstance(assigned, Assignment)
    return assigned.conversation_id


async def _say(db: Pool, conversation_id: str, n: int, sender: str = "m1") -> None:
    for i in range(n):
        await conversations.append(
            db,
            conversation_id=conversation_id,
            sender_id=sender,
            sender_role="member",
            sender_name=f"alias-{sender}",
            client_msg_id=f"k{i}",
            body=f"hello {i}",
        )


async def test_a_waiting_member_is_welcomed_with_their_request_and_place(db: Pool, database_url: str) -> None:
    services = _services(db, database_url)
    await _request(db, "m0")
    request = await _request(db, "m1")
    pushed = await _greet(services, FakeSession("m1", "member"))
    assert len(pushed) == 1
    welcome = pushed[0]
    assert isinstance(welcome, f.Welcome)
    assert welcome.ref == "r1" and welcome.user == f.User(id="m1", role="member", name="Sam")
    assert [(r.request_id, r.position) for r in welcome.requests] == [(request.id, 2)]
    assert welcome.conversations == [] and welcome.offers == []
    assert welcome.availability is None, "availability is for specialists"
    assert welcome.past_peers == []


async def test_a_cancellation_made_while_away_follows_the_welcome_once(db: Pool, database_url: str) -> None:
    services = _services(db, database_url)
    request = await _request(db, "m1")
    assert await members.abandon_request(db, request.id) is not None
    pushed = await _greet(services, FakeSession("m1", "member"))
    assert isinstance(pushed[0], f.Welcome) and pushed[0].requests == []
    assert pushed[1:] == [f.Cancelled(request_id=request.id, reason="abandoned")]
    again = await _greet(services, FakeSession("m1", "member"))
    assert len(again) == 1, "told once"


async def test_a_specialist_is_welcomed_with_status_and_pending_offers(db: Pool, database_url: str) -> None:
    services = _services(db, database_url)
    await _specialist(db, "s1")
    await profiles.set_status(db, "s1", "available")
    request = await _request(db, "m1")
    offer = await offers.make_offer(
        db,
        offer_id="o1",
        request_id=request.id,
        specialist_id="s1",
        expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    assert offer is not None
    pushed = await _greet(services, FakeSession("s1", "specialist"))
    welcome = pushed[0]
    assert isinstance(welcome, f.Welcome)
    assert welcome.availability == "available"
    assert [(o.offer_id, o.request_id) for o in welcome.offers] == [("o1", request.id)]
    assert welcome.past_peers is None and welcome.requests == []


async def test_resume_catches_up_from_the_clients_seq_and_other_conversations_start_live(
    db: Pool, database_url: str
) -> None:
    services = _services(db, database_url)
    resumed = await _conversation(db, "m1", "s1")
    other = await _conversation(db, "m2", "s1")
    await _say(db, resumed, 5)
    await _say(db, other, 3, sender="m2")
    session = FakeSession("s1", "specialist")
    pushed = await _greet(services, session, resume={resumed: 2})
    assert isinstance(pushed[0], f.Welcome)
    assert {c.id for c in pushed[0].conversations} == {resumed, other}
    assert pushed[1:] == [CatchUp(resumed)]
    assert session.seen == {resumed: 2, other: 3}, "resumed from 2; the other from its last message"
    assert services.participants[resumed] is not None


async def test_resume_past_the_last_seq_is_clamped(db: Pool, database_url: str) -> None:
    services = _services(db, database_url)
    conv = await _conversation(db, "m1", "s1")
    await _say(db, conv, 2)
    session = FakeSession("m1", "member")
    await _greet(services, session, resume={conv: 99})
    assert session.seen == {conv: 2}


async def test_a_resumed_conversation_that_ended_meanwhile_is_caught_up_then_ended(
    db: Pool, database_url: str
) -> None:
    services = _services(db, database_url)
    conv = await _conversation(db, "m1", "s1")
    await _say(db, conv, 2)
    assert await conversations.end(db, conv, by="specialist", reason="resolved") is not None
    session = FakeSession("m1", "member")
    pushed = await _greet(services, session, resume={conv: 1})
    welcome = pushed[0]
    assert isinstance(welcome, f.Welcome) and welcome.conversations == [], "only active ones are summarised"
    assert pushed[1] == CatchUp(conv)
    end = pushed[2]
    assert isinstance(end, Outbound) and end.ends_conversation and end.conversation_id == conv
    assert b'"conversation_ended"' in end.data
    # Not resumed: an ended conversation is not followed at all.
    quiet = FakeSession("m1", "member")
    assert len(await _greet(services, quiet)) == 1
    assert quiet.seen == {}
