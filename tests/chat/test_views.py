"""chat/views.py: what of a stored row a given person may see. Above all, a member's
account id never leaves the service: the specialist sees their alias only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from chat import views
from chat.people import member, specialist
from chat.store.conversations import Conversation
from chat.store.queue import Offer, Request
from protocol.ids import ConversationId, OfferId, RequestId, UserId

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CONV = Conversation(
    id=ConversationId("c1"),
    member_id=UserId("acct-12345"),
    member_alias="Sam",
    specialist_id=UserId("spec-1"),
    specialist_name="Ana",
    tags=["grief"],
    state="active",
    last_seq=9,
    started_at=NOW,
    ended_at=None,
    ended_by=None,
    end_reason=None,
)
REQUEST = Request(
    id=RequestId("r1"),
    member_id=UserId("acct-12345"),
    member_alias="Sam",
    tags=["grief"],
    language="en",
    note="a hard week",
    priority="urgent",
    prefer_specialist=None,
    avoid=[],
    state="waiting",
    created_at=NOW - timedelta(seconds=90),
)


def test_the_specialist_sees_the_alias_and_never_the_account_id() -> None:
    summary = views.summary_for(CONV, specialist("spec-1"))
    assert summary.peer is not None
    assert (summary.peer.role, summary.peer.name, summary.peer.id) == ("member", "Sam", None)
    assert "acct-12345" not in msgspec.json.encode(summary).decode()
    info = views.conversation_info(CONV)
    assert "acct-12345" not in msgspec.json.encode(info).decode()


def test_the_member_sees_their_specialist_by_id_and_name() -> None:
    summary = views.summary_for(CONV, member("acct-12345"))
    assert summary.peer is not None
    assert (summary.peer.role, summary.peer.name, summary.peer.id) == ("specialist", "Ana", "spec-1")
    assert (summary.state, summary.last_seq) == ("active", 9)


def test_queue_entries_and_offers_carry_the_wait_not_the_member() -> None:
    entry = views.queue_entry(REQUEST, NOW, away={"acct-12345"})
    assert (entry.waited_s, entry.priority, entry.member_online) == (90, "urgent", False)
    offer = Offer(
        id=OfferId("o1"),
        request_id=RequestId("r1"),
        specialist_id=UserId("spec-1"),
        state="pending",
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=30),
    )
    made = views.offer_made(REQUEST, offer, NOW.timestamp() + 10)
    assert (made.waited_s, made.expires_in_s, made.priority, made.member_online) == (100, 20, "urgent", True)
    for frame in (entry, made):
        assert "acct-12345" not in msgspec.json.encode(frame).decode()


def test_a_wait_is_never_negative() -> None:
    assert views.waited_s(NOW + timedelta(seconds=5), NOW) == 0
