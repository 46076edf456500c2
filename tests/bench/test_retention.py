"""bench/retention.py at a tiny size against the test PostgreSQL: it seeds what it says,
the sweep removes it in bounded batches, and its own check sees no half-swept row."""

from __future__ import annotations

import asyncio

from bench.retention import Sweep, check, seed_aged


async def test_the_retention_bench_seeds_sweeps_in_batches_and_checks(database_url: str) -> None:
    seeded = await seed_aged(database_url, 2_000, 20)
    assert (seeded["conversations"], seeded["messages"]) == (100, 2_000)
    sweep = Sweep(database_url, batch_messages=500)
    sweep.start()
    await asyncio.to_thread(sweep.join)
    summary = sweep.summary()
    assert summary["error"] is None
    assert (summary["conversations"], summary["messages"]) == (100, 2_000)
    assert summary["batches"] == 4, "500 messages a batch, 20 per conversation"
    checked = await check(database_url, 2_000)
    assert checked["ok"], checked
