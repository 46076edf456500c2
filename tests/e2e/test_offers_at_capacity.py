"""Issue 18, "offers at capacity": specialists of capacity 1 who only ever accept offers
(never claim by hand) must never be offered a request they have no room for, so no `accept`
is ever answered `invalid_state`. Two processes, so the matchmaker's snapshot races accepts
handled on the other process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.client import Client, token
from tests.support.flows import put_profile
from tests.support.servers import LiveService

SPECIALISTS = 6
MEMBERS = 36


async def _specialist(svc: LiveService, sid: str, done: asyncio.Event, answers: list[str]) -> None:
    client, _ = await Client.connect(svc.ws, token("specialist", sid, sid))
    await client.call({"type": "availability", "status": "available"}, "availability")
    while not done.is_set():
        await asyncio.sleep(0.005)
        for frame in client.inbox[:]:
            client.inbox.remove(frame)
            if frame["type"] == "offer":
                await client.send({"type": "accept", "offer_id": frame["offer_id"], "ref": "accept"})
            elif frame["type"] == "error" and frame.get("ref") == "accept":
                answers.append(frame["code"])
            elif frame["type"] == "conversation_started" and frame.get("ref") == "accept":
                answers.append("started")
                # End at once: the slot frees and the next offer races this accept's aftermath.
                await client.send({"type": "end", "conversation_id": frame["conversation"]["id"]})
    await client.close()


async def _member(svc: LiveService, sub: str) -> None:
    client, _ = await Client.connect(svc.ws, token("member", sub, sub))
    queued = await client.call({"type": "request", "tags": ["grief"]}, "queued")
    assert queued["type"] == "queued", queued
    await client.expect("conversation_started", timeout=120)
    await client.expect("conversation_ended", timeout=60)
    await client.close()


@pytest.mark.slow
async def test_capacity_one_specialists_are_never_offered_what_they_cannot_take(service_factory: Any) -> None:
    procs: list[LiveService] = [service_factory(), service_factory()]
    for i in range(SPECIALISTS):
        await put_profile(procs[0], f"s{i}", name=f"s{i}", tags=["grief"], max_chats=1)
    done = asyncio.Event()
    answers: list[str] = []
    specialists = [
        asyncio.create_task(_specialist(procs[i % 2], f"s{i}", done, answers)) for i in range(SPECIALISTS)
    ]
    await asyncio.sleep(0.5)
    members = [asyncio.create_task(_member(procs[(i + 1) % 2], f"m{i}")) for i in range(MEMBERS)]
    await asyncio.wait_for(asyncio.gather(*members), 240)
    done.set()
    await asyncio.gather(*specialists)
    assert answers.count("started") == MEMBERS
    # An offer may still expire under load (offer_expired), but never arrive without room.
    assert "invalid_state" not in answers, answers
