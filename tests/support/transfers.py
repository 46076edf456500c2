"""Set-ups the transfer end-to-end tests (test_transfer*.py, test_handoffs.py) share:
specialists with a profile, connected and counted as online or available, a cold transfer
brought up, messages said, and who holds a conversation now."""

from __future__ import annotations

from typing import Any

from tests.support.client import Client, token
from tests.support.database import fetch
from tests.support.flows import Pair, put_profile
from tests.support.servers import LiveService


async def specialist_with_profile(live: LiveService, sub: str, name: str, **profile: Any) -> Client:
    """A specialist with a profile (tagged `grief` unless `profile` says otherwise),
    connected to `live`, counted as online (`Client.settled`: a warm transfer to them is
    not refused as offline on a loaded machine) and left `away`."""
    await put_profile(live, sub, name=name, **{"tags": ["grief"], **profile})
    client, _ = await Client.connect(live.ws, token("specialist", sub, name))
    await client.settled()
    return client


async def online_specialist(live: LiveService, sub: str, name: str, **profile: Any) -> Client:
    """A specialist with a profile, connected and counted as online (`away`)."""
    return await specialist_with_profile(live, sub, name, **profile)


async def available_specialist(live: LiveService, sub: str, name: str, **profile: Any) -> Client:
    """A specialist with a profile, connected and `available`, so offers reach them."""
    client = await specialist_with_profile(live, sub, name, **profile)
    status = await client.call({"type": "availability", "status": "available"}, "availability")
    assert status["type"] == "availability", status
    return client


async def cold_transfer(pair: Pair) -> dict[str, Any]:
    """The pair's specialist hands the conversation on to nobody in particular; returns the
    `transfer` frame the member is told."""
    await pair.specialist.call(
        {"type": "transfer", "conversation_id": pair.conversation_id, "note": "n"}, "transfer"
    )
    told: dict[str, Any] = await pair.member.expect("transfer", timeout=20)
    return told


async def say(client: Client, conversation_id: str, body: str) -> int:
    """Sends `body` (also its client_msg_id) and returns the stored seq."""
    ack = await client.call(
        {"type": "send", "conversation_id": conversation_id, "client_msg_id": body, "body": body}, "ack"
    )
    assert ack["type"] == "ack", ack
    seq: int = ack["seq"]
    return seq


async def conversation_holder(database_url: str, conversation_id: str) -> tuple[str, str]:
    """The conversation's stored state and the specialist holding it ("" for nobody)."""
    rows = await fetch(
        database_url, "SELECT state, specialist_id FROM conversations WHERE id = $1", conversation_id
    )
    return rows[0]["state"], rows[0]["specialist_id"]
