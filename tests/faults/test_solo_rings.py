"""Rings for a user held by one process only are skipped (docs/decisions.md, "No ring
nobody else would hear"). A second device of that user on another process must still get
the very next message at once: not 0.25 s later when a following message exposes a gap,
nor 10 s later from the periodic repair. Each check below is the *last* message sent, so
only the join can have delivered it in time."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import Cluster, http_get, seed_conversations
from tests.support.client import Client, token

pytestmark = pytest.mark.slow

PROMPT_S = 2.0  # well under the repair period (TTL/3 = 10 s by default)


def _skipped(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("peerchat_bus_rings_skipped_total "):
            return float(line.split()[1])
    raise AssertionError("no peerchat_bus_rings_skipped_total in /metrics")


async def _say(specialist: Client, conversation_id: str, n: int) -> None:
    frame = {"type": "send", "conversation_id": conversation_id, "client_msg_id": f"s{n}", "body": f"m{n}"}
    await specialist.call(frame, "ack")


async def test_a_second_device_elsewhere_gets_the_next_message_at_once(cluster: Cluster) -> None:
    await cluster.start(processes=2)
    (seeded,) = await seed_conversations(cluster.database_url, 1)
    here, there = cluster.web
    conv = seeded.conversation_id
    specialist, _ = await Client.connect(here.ws, token("specialist", seeded.specialist_id, "Ro"))
    phone, _ = await Client.connect(here.ws, token("member", seeded.member_id, "Sam"))
    for n in (1, 2, 3):
        await _say(specialist, conv, n)
        await phone.expect("message", where=lambda f, n=n: f["body"] == f"m{n}", timeout=PROMPT_S)
    _, metrics = http_get(here.http + "/metrics")
    assert _skipped(metrics) >= 2, "both users are only here: their message rings were skipped"

    # The member opens a laptop on the other process; its welcome saw up to seq 3.
    laptop, _ = await Client.connect(there.ws, token("member", seeded.member_id, "Sam"), resume={conv: 3})
    await _say(specialist, conv, 4)  # the last message: nothing after it would expose a gap
    got = await laptop.expect("message", timeout=PROMPT_S)
    assert (got["seq"], got["body"]) == (4, "m4")
    await phone.expect("message", where=lambda f: f["body"] == "m4", timeout=PROMPT_S)

    # The laptop goes; the member is back to one process, and it learns that again.
    await laptop.close()
    await asyncio.sleep(0.5)
    for n in (5, 6, 7):
        await _say(specialist, conv, n)
        await phone.expect("message", where=lambda f, n=n: f["body"] == f"m{n}", timeout=PROMPT_S)
    _, again = http_get(here.http + "/metrics")
    assert _skipped(again) > _skipped(metrics), "one process holds the member again"

    # And a new device there still gets the next one at once.
    tablet, _ = await Client.connect(there.ws, token("member", seeded.member_id, "Sam"), resume={conv: 7})
    await _say(specialist, conv, 8)
    got = await tablet.expect("message", timeout=PROMPT_S)
    assert (got["seq"], got["body"]) == (8, "m8")
    for client in (specialist, phone, tablet):
        await client.close()
