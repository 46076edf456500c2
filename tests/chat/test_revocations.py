"""chat/revocations.py against the real test PostgreSQL, with two "processes" (two mirrors
on one in-memory bus): a revocation refuses older tokens everywhere, tells each process
whose sockets to close, and reaches a process that missed the ring by its poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chat.bus_memory import MemoryBus, MemoryExchange
from chat.config import Settings
from chat.revocations import Revocations, erased_sub
from chat.store import privacy
from chat.store import revocations as store
from chat.tokens import Identity
from tests.chat.conftest import Pool
from tests.support.servers import wait_until

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="s" * 32)


async def _mirror(db: Pool, exchange: MemoryExchange) -> tuple[Revocations, list[tuple[str, str, float]]]:
    bus = MemoryBus(exchange)
    mirror = Revocations(db, bus, SETTINGS)
    await bus.start(lambda channel, data: mirror.on_bus(data), _nothing)
    seen: list[tuple[str, str, float]] = []
    mirror.on_revoked = lambda role, sub, at: seen.append((role, sub, at))
    await mirror.start()
    return mirror, seen


async def _nothing(only: frozenset[str] | None = None) -> None:
    return None


@pytest.fixture
async def mirrors(db: Pool) -> AsyncIterator[tuple[MemoryExchange, list[Revocations]]]:
    exchange = MemoryExchange()
    made: list[Revocations] = []
    yield exchange, made
    for m in made:
        await m.stop()


def _who(sub: str, issued_at: float, role: str = "member") -> Identity:
    return Identity(user_id=sub, role=role, name="x", issued_at=issued_at, expires_at=issued_at + 60)  # type: ignore[arg-type]


async def _revoke(db: Pool, mirror: Revocations, sub: str, role: str = "member") -> store.Revocation:
    row = await store.add(
        db, role=role, sub=sub, actor_id="sup-1", actor_role="supervisor", actor_name="Lee", reason="test"
    )
    await mirror.revoke(row)
    return row


async def test_older_tokens_refused_everywhere_newer_ones_not(
    db: Pool, mirrors: tuple[MemoryExchange, list[Revocations]]
) -> None:
    exchange, made = mirrors
    here, seen_here = await _mirror(db, exchange)
    there, seen_there = await _mirror(db, exchange)
    made += [here, there]
    row = await _revoke(db, here, "acct-1")
    at = row.revoked_at.timestamp()
    assert here.refuses(_who("acct-1", at - 10)) and here.refuses(_who("acct-1", at))
    assert not here.refuses(_who("acct-1", at + 1)), "issued after the revocation"
    assert not here.refuses(_who("acct-1", at - 10, role="specialist")), "another person"
    assert not here.refuses(_who("acct-2", at - 10))
    await wait_until(lambda: there.refuses(_who("acct-1", at - 10)), timeout=5)
    assert seen_here == [("member", "acct-1", at)]
    await wait_until(lambda: seen_there == [("member", "acct-1", at)], timeout=5)


async def test_a_process_that_missed_the_ring_catches_up_by_polling(
    db: Pool, mirrors: tuple[MemoryExchange, list[Revocations]]
) -> None:
    exchange, made = mirrors
    here, _ = await _mirror(db, exchange)
    deaf, seen = await _mirror(db, MemoryExchange())  # another Redis: it hears no ring
    made += [here, deaf]
    row = await _revoke(db, here, "acct-3")
    await wait_until(lambda: bool(seen), timeout=5)  # the 1 s poll
    assert deaf.refuses(_who("acct-3", row.revoked_at.timestamp()))


async def test_a_new_process_loads_what_still_matters(
    db: Pool, mirrors: tuple[MemoryExchange, list[Revocations]]
) -> None:
    exchange, made = mirrors
    here, _ = await _mirror(db, exchange)
    made.append(here)
    row = await _revoke(db, here, "acct-4")
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO revocations (role, sub, revoked_at, revoked_by)"
            " VALUES ('member', 'acct-old', now() - interval '3 days', 'x')"
        )
    later, seen = await _mirror(db, exchange)
    made.append(later)
    assert later.refuses(_who("acct-4", row.revoked_at.timestamp() - 1))
    # Older than any token can live: nothing it could refuse is still valid.
    assert not later.refuses(_who("acct-old", 0))
    await asyncio.sleep(1.5)
    assert seen == [], "loading at start closes nothing: no socket is open yet"


async def test_the_audit_row_names_the_revocation_not_the_account(db: Pool) -> None:
    row = await store.add(
        db,
        role="member",
        sub="acct-5",
        actor_id="sup-1",
        actor_role="supervisor",
        actor_name="Lee",
        reason="",
    )
    audit = await db.fetchrow("SELECT action, target, reason, detail::text AS detail FROM audit_log")
    assert audit is not None
    assert (audit["action"], audit["target"], audit["reason"]) == ("revoke", f"revocation:{row.id}", None)
    assert "acct-5" not in audit["detail"]


async def test_a_revocation_committed_after_a_later_one_is_still_applied(
    db: Pool, mirrors: tuple[MemoryExchange, list[Revocations]]
) -> None:
    """bigserial ids are taken at insert, rows appear at commit: id 1 can commit after id 2
    was read. A mirror that only read `id > last seen` lost such a revocation for good."""
    exchange, made = mirrors
    here, seen = await _mirror(db, exchange)
    made.append(here)
    async with db.acquire() as slow, db.acquire() as fast:
        late = slow.transaction()
        await late.start()
        await slow.execute(
            "INSERT INTO revocations (role, sub, revoked_by) VALUES ('member', 'victim-a', 's')"
        )
        async with fast.transaction():
            await fast.execute(
                "INSERT INTO revocations (role, sub, revoked_by) VALUES ('member', 'other-b', 's')"
            )
        await here.catch_up()  # a poll in between sees only the higher id
        assert [s for _, s, _ in seen] == ["other-b"]
        await late.commit()
    await here.catch_up()  # the next poll (or ring)
    assert here.refuses(_who("victim-a", 1.0)), "the revocation that committed late was lost"
    assert [s for _, s, _ in seen] == ["other-b", "victim-a"], "each row applied once"
    await here.catch_up()
    assert len(seen) == 2, "re-reading the window applies nothing twice"


async def test_an_erasure_leaves_no_account_id_in_revocations_and_old_tokens_stay_refused(
    db: Pool, mirrors: tuple[MemoryExchange, list[Revocations]]
) -> None:
    """Review finding 3: `revocations` kept the erased member's account id and the free-text
    reason. Now the erasure writes the keyed HMAC over the sub (the mirror compares it) and
    drops the reason; a row too old to refuse a living token goes."""
    exchange, made = mirrors
    here, _ = await _mirror(db, exchange)
    made.append(here)
    row = await _revoke(db, here, "acct-erased")  # its reason: "test"
    await _revoke(db, here, "acct-kept")
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO revocations (role, sub, revoked_at, revoked_by, reason)"
            " VALUES ('member', 'acct-erased', now() - interval '3 days', 'x', 'old reason')"
        )
        await conn.execute(
            "INSERT INTO revocations (role, sub, revoked_by) VALUES ('specialist', 'acct-erased', 'x')"
        )
        await privacy.erase_member(
            conn,
            "acct-erased",
            "asked",
            erased_sub=erased_sub(SETTINGS, "member", "acct-erased"),
            max_token_ttl_s=SETTINGS.max_token_ttl_s,
        )
    rows = [tuple(r) for r in await db.fetch("SELECT role, sub, reason FROM revocations ORDER BY id")]
    assert ("member", "acct-erased") not in [r[:2] for r in rows], rows
    assert [r for r in rows if r[0] == "member" and r[1].startswith("erased:")] == [
        ("member", erased_sub(SETTINGS, "member", "acct-erased"), "")
    ], "the recent row stays, without the account id or reason; the 3-day-old one is gone"
    assert ("member", "acct-kept", "test") in rows and ("specialist", "acct-erased", "") in rows
    # A process started after the erasure still refuses the member's older tokens.
    later, _ = await _mirror(db, exchange)
    made.append(later)
    at = row.revoked_at.timestamp()
    assert later.refuses(_who("acct-erased", at - 10))
    assert not later.refuses(_who("acct-erased", at + 1))
    assert later.refuses(_who("acct-kept", at - 10))
    assert not later.refuses(_who("acct-other", at - 10))
