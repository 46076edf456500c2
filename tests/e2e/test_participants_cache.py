"""`Services.participants` (chat/services.py), the cache of each conversation's pair that
every send reads: a conversation that ends on this process leaves it, and it stays bounded
on every path that fills it (a welcome, an accept, a miss). Before, a pair left only on an
erasure, a hand-over or a bus reconnect, and only the miss path had a bound (a wholesale
clear past 50,000). A real server in the test's event loop, so its services can be read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import pytest

from chat import config
from chat import services as services_module
from chat.app import create_app
from chat.services import Services
from tests.support.client import Client, token
from tests.support.flows import matched
from tests.support.inprocess import serving
from tests.support.servers import LiveService, Servers, service_env, wait_until


@dataclass
class InProcess:
    """What tests/support/flows.py uses of a LiveService, for a server in this loop."""

    ws: str
    http: str
    services: Services


@pytest.fixture
async def inproc(
    servers: Servers, database_url: str, redis_client: object, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[InProcess]:
    for key, value in service_env(database_url, servers.redis.url).items():
        monkeypatch.setenv(key, value)
    app = create_app(config.from_env())
    async with serving(app, lifespan="on") as port:
        yield InProcess(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", app.state.services)


async def test_a_conversation_that_ends_leaves_the_cache(inproc: InProcess) -> None:
    pair = await matched(cast(LiveService, inproc), member_id="m-cache", specialist_id="s-cache")
    conv = pair.conversation_id
    hello = {"type": "send", "conversation_id": conv, "body": "hi", "client_msg_id": "c1"}
    await pair.member.call(hello, "ack")
    assert conv in inproc.services.participants  # the accept cached it; sends read it
    await pair.member.call({"type": "end", "conversation_id": conv}, "conversation_ended")
    await pair.specialist.expect("conversation_ended")
    # Before: still cached, until an erasure, a hand-over or a bus reconnect.
    await wait_until(lambda: conv not in inproc.services.participants, 10, 0.05)
    # Its pair is still known when asked: a send after the end is refused as before.
    refused = await pair.member.call(
        {"type": "send", "conversation_id": conv, "body": "late", "client_msg_id": "c2"}, "error"
    )
    assert refused["code"] != "internal", refused
    await pair.close()


async def test_the_cache_stays_bounded_on_the_welcome_path(
    inproc: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A welcome caches every conversation of the person it greets: it had no bound."""
    monkeypatch.setattr(services_module, "PARTICIPANTS_MAX", 1, raising=False)
    first = await matched(cast(LiveService, inproc), member_id="m-b1", specialist_id="s-b1", tag="grief")
    second = await matched(cast(LiveService, inproc), member_id="m-b2", specialist_id="s-b2", tag="anxiety")
    assert list(inproc.services.participants) == [second.conversation_id]
    again, _ = await Client.connect(inproc.ws, token("member", "m-b1", "Sam"))  # its welcome caches the first
    await again.settled()
    assert list(inproc.services.participants) == [first.conversation_id]
    for client in (again, first.member, first.specialist, second.member, second.specialist):
        await client.close()
