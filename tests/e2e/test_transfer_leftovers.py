"""Transfers as people see them (PRODUCT.md §5, §9; issue 16's leftovers), end to end over
real processes: what the member is left with when they stay away through a cold wait, and a
supervisor's warm transfer."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.support.client import Client, token
from tests.support.flows import assert_clean_log, matched, put_profile
from tests.support.servers import LiveService, wait_until


async def _rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    db = await asyncpg.connect(database_url)
    try:
        return await db.fetch(sql, *args)
    finally:
        await db.close()


async def test_a_member_away_past_the_grace_during_a_cold_wait_finds_it_ended_not_a_stranger_request(
    service_factory: type, database_url: str
) -> None:
    # §5: past the grace "an active conversation is ended by system with reason peer_gone";
    # a cold transfer's conversation is active throughout (§9), and its queue entry is the
    # conversation's, not a request the member made: no `cancelled abandoned` for it.
    live: LiveService = service_factory(PEERCHAT_MEMBER_GRACE_S="2")
    pair = await matched(live, member_id="acct-away", specialist_id="spec-cold")
    conv = pair.conversation_id
    await pair.specialist.call({"type": "transfer", "conversation_id": conv, "note": "n"}, "transfer")
    assert (await pair.member.expect("transfer", timeout=20))["state"] == "waiting"
    [entry] = await _rows(database_url, "SELECT id FROM requests WHERE transfer_of = $1", conv)
    await pair.member.close()

    async def ended() -> bool:
        rows = await _rows(database_url, "SELECT state FROM conversations WHERE id = $1", conv)
        return bool(rows[0]["state"] == "ended")

    await wait_until(ended, timeout=60)
    [row] = await _rows(
        database_url, "SELECT ended_by, end_reason, specialist_id FROM conversations WHERE id = $1", conv
    )
    assert (row["ended_by"], row["end_reason"], row["specialist_id"]) == ("system", "peer_gone", "")
    [request] = await _rows(
        database_url, "SELECT state, cancel_reason, reason_untold FROM requests WHERE id = $1", entry["id"]
    )
    assert (request["state"], request["cancel_reason"], request["reason_untold"]) == ("cancelled", None, False)
    assert [
        r["state"] for r in await _rows(database_url, "SELECT state FROM transfers WHERE conversation_id = $1", conv)
    ] == ["cancelled"]

    back, welcome = await Client.connect(live.ws, token("member", "acct-away", "Sam"), resume={conv: 0})
    assert welcome["requests"] == [] and welcome["conversations"] == []
    gone = await back.expect("conversation_ended", timeout=20)
    assert (gone["conversation_id"], gone["by"], gone["reason"]) == (conv, "system", "peer_gone")
    # Cancellations untold are pushed right after `welcome`, before any resumed frame.
    assert [f for f in back.received if f["type"] == "cancelled"] == []
    # Free to ask again at once.
    again = await back.call({"type": "request", "tags": ["grief"]}, "queued")
    assert again["type"] == "queued", again
    for client in (pair.specialist, back):
        await client.close()
    assert_clean_log(live)
