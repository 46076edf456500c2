"""Three web processes, one Redis, one PostgreSQL: members and their specialists on
different processes, random disconnects and resumes, and nothing lost or repeated."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.faults.harness import Cluster, Participant, check_in_postgres, seed_conversations

pytestmark = pytest.mark.slow

CONVERSATIONS = 50
EACH_WAY = 100


async def test_fifty_conversations_across_three_processes_lose_and_repeat_nothing(cluster: Cluster) -> None:
    cluster.env = {"PEERCHAT_RATE_LIMIT_PER_10S": "100000", "PEERCHAT_PRESENCE_TTL_S": "6"}
    await cluster.start(processes=3)
    urls = [svc.ws for svc in cluster.web]
    seeded = await seed_conversations(cluster.database_url, CONVERSATIONS)
    random.seed(4)
    participants: list[Participant] = []
    for i, s in enumerate(seeded):
        member = Participant(
            role="member", user_id=s.member_id, conversation_id=s.conversation_id, urls=urls, sends=EACH_WAY
        )
        specialist = Participant(
            role="specialist",
            user_id=s.specialist_id,
            conversation_id=s.conversation_id,
            urls=urls,
            sends=EACH_WAY,
        )
        await member.connect(urls[i % 3])
        await specialist.connect(urls[(i + 1) % 3])  # never the member's process
        participants += [member, specialist]
        if i % 5 == 0:  # a second device of the member, on the third process, only listening
            laptop = Participant(
                role="member", user_id=s.member_id, conversation_id=s.conversation_id, urls=urls, sends=0
            )
            await laptop.connect(urls[(i + 2) % 3])
            participants.append(laptop)

    started = time.monotonic()
    await asyncio.gather(*(p.run(2 * EACH_WAY, drop_chance=0.015, deadline_s=150) for p in participants))
    elapsed = time.monotonic() - started

    for p in participants:
        assert not p.violations, p.violations[:5]
        assert p.last_seq == 2 * EACH_WAY
    counts = await check_in_postgres(cluster.database_url, participants, 2 * EACH_WAY)
    assert counts["messages"] == CONVERSATIONS * 2 * EACH_WAY
    reconnects = sum(p.reconnects for p in participants)
    assert reconnects > 50, "the run should have exercised resume"
    print(
        f"\n{counts['messages']} messages, {len(participants)} devices, {reconnects} reconnects with resume, "
        f"{elapsed:.1f} s"
    )
    for p in participants:
        await p.close()
    assert "lorem" not in cluster.logs(), "message bodies must stay out of logs"
