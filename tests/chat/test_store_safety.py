"""chat/store/alerts.py and chat/store/conversation_list.py against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from chat.safety import alerting
from chat.safety.alerting import LONG_WAIT_ALERT_S
from chat.store import alerts, assignment, conversations, profiles, queue
from chat.store.alerts import Acked, AlertKind
from chat.store.assignment import Assignment
from chat.store.conversation_list import list_conversations
from tests.chat.conftest import Pool


async def _conversation(db: Pool, member_id: str, *, priority: str = "normal") -> str:
    await profiles.put(db, "s1", name="Sam", tags=[], languages=["en"], max_chats=20)
    request = await queue.create_request(
        db,
        member_id=member_id,
        member_alias=f"alias-{member_id}",
        tags=["grief"],
        language=None,
        note=None,
        priority=priority,
        prefer_specialist=None,
    )
    assigned = await assignment.claim_request(db, request.id, "s1")
    assert isinstance(assigned, Assignment)
    return assigned.conversation_id


async def test_an_alert_raised_once_by_many_is_one_alert(db: Pool) -> None:
    raised = await asyncio.gather(
        *(
            alerts.raise_alert(db, AlertKind.URGENT_REQUEST, request_id="r1", tags=["x"], once_key="u:r1")
            for _ in range(10)
        )
    )
    assert sum(1 for a in raised if a is not None) == 1
    [open_one] = await alerts.open_alerts(db)
    assert open_one.kind == "urgent_request"
    assert open_one.request_id == "r1"
    assert open_one.tags == ["x"]
    # Without a once key, every raise is its own alert (two flags are two events).
    await alerts.raise_alert(db, AlertKind.FLAGGED, conversation_id="c1", level="concern")
    await alerts.raise_alert(db, AlertKind.FLAGGED, conversation_id="c1", level="high")
    assert [a.kind for a in await alerts.open_alerts(db)] == ["urgent_request", "flagged", "flagged"]


async def test_one_of_racing_acknowledgements_wins_and_the_alert_closes(db: Pool) -> None:
    alert = await alerts.raise_alert(db, AlertKind.RISK_MESSAGE, conversation_id="c1")
    assert alert is not None
    results = await asyncio.gather(
        *(alerts.acknowledge(db, alert.id, by_id=f"sup{i}", by_name=f"Sup {i}") for i in range(8))
    )
    assert Counter(outcome for outcome, _ in results) == {Acked.ACKED: 1, Acked.ALREADY: 7}
    assert await alerts.open_alerts(db) == []
    stored = await alerts.get(db, alert.id)
    assert stored is not None and stored.acked_at is not None
    assert await alerts.acknowledge(db, "nope", by_id="s", by_name="S") == (Acked.NOT_FOUND, None)


async def test_risk_is_sticky_and_set_once(db: Pool) -> None:
    conv_id = await _conversation(db, "m1")
    firsts = await asyncio.gather(*(alerts.mark_risk_high(db, conv_id) for _ in range(5)))
    assert firsts.count(True) == 1
    assert not await alerts.mark_risk_high(db, conv_id)
    await alerts.add_flag(db, conv_id, "concern")
    await alerts.add_flag(db, conv_id, "high")
    [listed] = await list_conversations(db) or []
    assert (listed.risk, listed.flags) == ("high", ["concern", "high"])
    # Ending does not clear it.
    assert await conversations.end(db, conv_id, by="member", reason="ended") is not None
    [listed] = await list_conversations(db, risk="high") or []
    assert listed.state == "ended"


async def test_conversation_list_filters_and_pages_newest_first(db: Pool) -> None:
    ids = [await _conversation(db, f"m{i}", priority="urgent" if i == 2 else "normal") for i in range(5)]
    await alerts.mark_risk_high(db, ids[1])
    await conversations.end(db, ids[0], by="member", reason="ended")
    everything = await list_conversations(db)
    assert everything is not None
    assert [c.id for c in everything] == ids[::-1]
    assert {c.id: c.priority for c in everything}[ids[2]] == "urgent"
    assert everything[0].member_alias == "alias-m4" and everything[0].specialist_name == "Sam"
    assert [c.id for c in await list_conversations(db, state="ended") or []] == [ids[0]]
    assert [c.id for c in await list_conversations(db, state="active", risk="high") or []] == [ids[1]]
    page = await list_conversations(db, limit=2)
    assert [c.id for c in page or []] == [ids[4], ids[3]]
    older = await list_conversations(db, limit=2, before=ids[3])
    assert [c.id for c in older or []] == [ids[2], ids[1]]
    assert await list_conversations(db, before="unknown") is None


async def test_long_waits_raise_one_alert_each_and_a_waiting_request_shows_its_wait_now(db: Pool) -> None:
    await profiles.put(db, "s1", name="Sam", tags=[], languages=["en"], max_chats=20)
    made = [
        await queue.create_request(
            db,
            member_id=f"m{i}",
            member_alias="a",
            tags=["grief"],
            language=None,
            note=None,
            priority="normal",
            prefer_specialist=None,
        )
        for i in range(2)
    ]
    now = made[0].created_at + timedelta(seconds=LONG_WAIT_ALERT_S - 1)
    await alerting.long_waits(db, made, now)
    assert await alerts.open_alerts(db) == []
    later = datetime.now(UTC) + timedelta(seconds=LONG_WAIT_ALERT_S)
    for _ in range(3):
        await alerting.long_waits(db, made, later)
    opened = await alerts.open_alerts(db)
    assert sorted(a.request_id or "" for a in opened) == sorted(r.id for r in made)
    assert {a.kind for a in opened} == {"long_wait"}
    # Shown with the wait PostgreSQL measures now (the request still waits), not a stale one.
    assert all(a.waited_s is not None and 0 <= a.waited_s < 60 for a in opened)
