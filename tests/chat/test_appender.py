"""Group commit against real PostgreSQL: batches keep each conversation gap-free and in
order, dedupe inside a batch, and one bad element does not hold the others back."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import pytest

from chat.store import conversations
from chat.store.appender import BUSY_RATE, Appender, PoolConnection
from chat.store.conversations import Appended
from tests.chat.conftest import Pool
from tests.chat.test_store import _conversation


def _send(
    appender: Appender, conv: conversations.Conversation, cmid: str, body: str = "hi"
) -> asyncio.Task[tuple[Appended, int, object]]:
    return asyncio.ensure_future(
        appender.submit(
            conversation_id=conv.id,
            sender_id=conv.member_id,
            sender_role="member",
            sender_name="Sam",
            client_msg_id=cmid,
            body=body,
        )
    )


async def test_many_sends_go_in_few_round_trips_each_conversation_in_order(db: Pool) -> None:
    convs = [await _conversation(db, f"m{i}", f"s{i}") for i in range(5)]
    appender = Appender(db)
    tasks = {(c.id, n): _send(appender, c, f"x{n}", f"{c.id}/{n}") for n in range(40) for c in convs}
    results = {key: await task for key, task in tasks.items()}
    assert appender.batches < 40, "sends arriving together share a commit"
    for conv in convs:
        seqs = [results[(conv.id, n)][1] for n in range(40)]
        assert seqs == list(range(1, 41)), "a sender's messages keep their order"
        stored = await conversations.messages_after(db, conv.id, 0)
        assert [m.body for m in stored] == [f"{conv.id}/{n}" for n in range(40)]


async def test_a_repeat_in_the_same_batch_is_a_duplicate(db: Pool) -> None:
    conv = await _conversation(db)
    appender = Appender(db)
    first, again = await asyncio.gather(
        _send(appender, conv, "same", "one"), _send(appender, conv, "same", "two")
    )
    assert first[0] is Appended.STORED and again[0] is Appended.DUPLICATE
    assert first[1] == again[1] == 1
    assert [m.body for m in await conversations.messages_after(db, conv.id, 0)] == ["one"]


async def test_one_bad_element_fails_alone(db: Pool) -> None:
    conv = await _conversation(db)
    appender = Appender(db)
    good = _send(appender, conv, "good", "fine")
    bad = _send(appender, conv, "x" * 5, "\x00 PostgreSQL cannot store NUL")
    later = _send(appender, conv, "later", "also fine")
    assert (await good)[0] is Appended.STORED
    with pytest.raises(asyncpg.PostgresError):
        await bad
    assert (await later)[0] is Appended.STORED
    assert [m.body for m in await conversations.messages_after(db, conv.id, 0)] == ["fine", "also fine"]


async def test_a_caller_gone_during_the_one_by_one_retry_does_not_fail_the_others(db: Pool) -> None:
    conv = await _conversation(db, "m-gone", "s-gone")
    appender = Appender(db)
    gone = _send(appender, conv, "gone", "its socket closed")
    bad = _send(appender, conv, "bad", "\x00 PostgreSQL cannot store NUL")
    later = _send(appender, conv, "later", "still stored")
    await asyncio.sleep(0)  # the batch is on its way
    gone.cancel()  # the caller's future is cancelled while its batch is retried one by one
    with pytest.raises(asyncpg.PostgresError):
        await bad
    assert (await later)[0] is Appended.STORED
    stored = [m.body for m in await conversations.messages_after(db, conv.id, 0)]
    assert stored[-1] == "still stored"


async def test_outcomes_other_than_stored_come_back_per_element(db: Pool) -> None:
    conv = await _conversation(db)
    other = await _conversation(db, "m2", "s2")
    appender = Appender(db)
    stranger = asyncio.ensure_future(
        appender.submit(
            conversation_id=other.id,
            sender_id=conv.member_id,
            sender_role="member",
            sender_name="Sam",
            client_msg_id="c",
            body="hi",
        )
    )
    missing = asyncio.ensure_future(
        appender.submit(
            conversation_id="nope",
            sender_id=conv.member_id,
            sender_role="member",
            sender_name="Sam",
            client_msg_id="c",
            body="hi",
        )
    )
    mine = _send(appender, conv, "c")
    assert (await stranger)[0] is Appended.FORBIDDEN
    assert (await missing)[0] is Appended.NOT_FOUND
    assert (await mine)[0] is Appended.STORED


async def test_a_message_for_no_conversation_is_refused_on_every_path_without_a_foreign_key(
    db: Pool,
) -> None:
    """messages has no foreign key to conversations (migration 0092: a per-row check that
    cost ~10 % of a commit); every writer checks the conversation under its row lock
    instead, so an unknown conversation still stores nothing, alone or in a batch."""
    fks = await db.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'messages'::regclass AND contype = 'f'"
    )
    assert fks == 0, "the per-row foreign-key check is back on the hot table"
    conv = await _conversation(db, "m-nofk", "s-nofk")
    appender = Appender(db)
    kwargs = dict(
        sender_id=conv.member_id, sender_role="member", sender_name="Sam", client_msg_id="g", body="x"
    )
    good = asyncio.ensure_future(appender.submit(conversation_id=conv.id, **kwargs))
    lost = asyncio.ensure_future(appender.submit(conversation_id="no-such-conversation", **kwargs))
    assert (await good)[0] is Appended.STORED
    assert (await lost)[0] is Appended.NOT_FOUND
    alone = await conversations.append(db, conversation_id="no-such-conversation-either", **kwargs)
    assert alone[0] is Appended.NOT_FOUND
    orphans = await db.fetchval(
        "SELECT count(*) FROM messages m WHERE NOT EXISTS"
        " (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id)"
    )
    assert orphans == 0


async def test_the_batch_and_the_one_at_a_time_paths_agree_on_every_outcome(db: Pool) -> None:
    """The group commit and the one-at-a-time path (a batch of one, used when a batch fails)
    give the same outcome for the same history (duplicate before ended, the first copy's
    stamp, forbidden)."""
    results = []
    for batch in (True, False):
        conv = await _conversation(db, f"m-{batch}", f"s-{batch}")
        first = await conversations.append(
            db,
            conversation_id=conv.id,
            sender_id=conv.member_id,
            sender_role="member",
            sender_name="Sam",
            client_msg_id="a",
            body="before the end",
        )
        assert await conversations.end(db, conv.id, by="member", reason="done") is not None
        cases = [
            (conv.member_id, "member", "a"),  # a repeat of a stored message, after the end
            (conv.member_id, "member", "b"),  # a new message, after the end
            (conv.specialist_id, "member", "c"),  # someone claiming another's role
        ]
        appender = Appender(db)
        got = []
        for sender, role, cmid in cases:
            kwargs = dict(
                conversation_id=conv.id,
                sender_id=sender,
                sender_role=role,
                sender_name="Sam",
                client_msg_id=cmid,
                body="x",
            )
            outcome = await (appender.submit(**kwargs) if batch else conversations.append(db, **kwargs))
            got.append(
                (outcome[0], outcome[1], outcome[2] == first[2] if outcome[0] is Appended.DUPLICATE else None)
            )
        results.append(got)
    assert (
        results[0]
        == results[1]
        == [
            (Appended.DUPLICATE, 1, True),
            (Appended.ENDED, 0, None),
            (Appended.FORBIDDEN, 0, None),
        ]
    )


async def test_clean_batches_take_the_set_path_and_it_agrees_with_the_careful_one(db: Pool) -> None:
    """`append_messages` stores a clean batch in a few set statements and sends any batch
    holding a repeat or a refusal through `append_messages_each` (migration 0009). Both
    give the same outcomes and rows for the same history; the careful one must be used
    only when needed."""

    async def run(
        function: str, conv_a: str, conv_b: str, member_a: str, member_b: str
    ) -> tuple[object, ...]:
        batches = [
            [(conv_a, member_a, "x1"), (conv_b, member_b, "y1"), (conv_a, member_a, "x2")],
            [(conv_a, member_a, "x1"), (conv_a, member_a, "x3"), (conv_a, member_a, "x3")],
            [(conv_b, member_b, "y2"), ("nope", member_b, "z"), (conv_b, member_a, "w")],
        ]
        # Pending (not yet reported) call counts of this backend, so read as a difference.
        calls = (
            "SELECT coalesce(sum(calls), 0)::int FROM pg_stat_xact_user_functions"
            " WHERE funcname = 'append_messages_each'"
        )
        outcomes, careful_calls = [], []
        async with db.acquire() as conn:
            for batch in batches:
                async with conn.transaction():
                    await conn.execute("SET LOCAL track_functions = 'pl'")
                    before = await conn.fetchval(calls)
                    rows = await conn.fetch(
                        f"SELECT i, outcome, seq FROM {function}($1, $2, $3, $4, $5, $6)",
                        [c for c, _, _ in batch],
                        [m for _, m, _ in batch],
                        ["member"] * len(batch),
                        ["Sam"] * len(batch),
                        [x for _, _, x in batch],
                        ["body " + x for _, _, x in batch],
                    )
                    careful_calls.append(await conn.fetchval(calls) - before)
                outcomes.append(sorted((r["i"], r["outcome"], r["seq"]) for r in rows))
        stored = [
            [(m.seq, m.client_msg_id) for m in await conversations.messages_after(db, conv, 0)]
            for conv in (conv_a, conv_b)
        ]
        return outcomes, stored, careful_calls

    a1, b1 = await _conversation(db, "ma1", "sa1"), await _conversation(db, "mb1", "sb1")
    a2, b2 = await _conversation(db, "ma2", "sa2"), await _conversation(db, "mb2", "sb2")
    fast = await run("append_messages", a1.id, b1.id, a1.member_id, b1.member_id)
    careful = await run("append_messages_each", a2.id, b2.id, a2.member_id, b2.member_id)
    assert (
        fast[0]
        == careful[0]
        == [
            [(1, "stored", 1), (2, "stored", 1), (3, "stored", 2)],
            [(1, "duplicate", 1), (2, "stored", 3), (3, "duplicate", 3)],
            [(1, "stored", 2), (2, "not_found", 0), (3, "forbidden", 0)],
        ]
    )
    assert fast[1] == careful[1] == [[(1, "x1"), (2, "x2"), (3, "x3")], [(1, "y1"), (2, "y2")]]
    assert fast[2] == [0, 1, 1], "a clean batch never needs the careful path"


async def test_append_batch_agrees_with_the_careful_path_and_checks_its_numbering(db: Pool) -> None:
    """`append_batch` (migration 0090, what the appender calls) takes the batch numbered
    by its caller: a clean batch answers each conversation's last_seq before it (seq =
    base + place) under one stamp; a batch with a repeat or a refusal answers the careful
    path's outcomes in element order, and so does a batch whose numbering does not fit it
    (never trusted: no conversation can get a gap)."""

    def numbered(batch: Sequence[tuple[str, str, str]]) -> list[object]:
        counts: dict[str, int] = {}
        places = []
        for conv, _, _ in batch:
            counts[conv] = counts.get(conv, 0) + 1
            places.append(counts[conv])
        return [
            [c for c, _, _ in batch],
            [m for _, m, _ in batch],
            ["member"] * len(batch),
            ["Sam"] * len(batch),
            [x for _, _, x in batch],
            ["body " + x for _, _, x in batch],
            places,
            list(counts),
            list(counts.values()),
        ]

    call = "SELECT * FROM append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    a, b = await _conversation(db, "mab1", "sab1"), await _conversation(db, "mab2", "sab2")
    clean = [(a.id, a.member_id, "x1"), (b.id, b.member_id, "y1"), (a.id, a.member_id, "x2")]
    row = await db.fetchrow(call, *numbered(clean))
    assert row is not None and row["outcomes"] is None
    assert dict(zip(row["ids"], row["bases"], strict=True)) == {a.id: 0, b.id: 0}
    stored = await db.fetch(
        "SELECT conversation_id, seq, client_msg_id, sent_at FROM messages"
        " WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id, seq",
        [a.id, b.id],
    )
    assert [(r["conversation_id"], r["seq"], r["client_msg_id"]) for r in stored] == sorted(
        [(a.id, 1, "x1"), (a.id, 2, "x2"), (b.id, 1, "y1")]
    )
    assert {r["sent_at"] for r in stored} == {row["stamp"]}

    mixed = [
        (a.id, a.member_id, "x1"),
        (a.id, a.member_id, "x3"),
        ("nope", b.member_id, "z"),
        (b.id, a.member_id, "w"),
    ]
    row = await db.fetchrow(call, *numbered(mixed))
    assert row is not None and row["bases"] is None
    assert list(zip(row["outcomes"], row["seqs"], strict=True)) == [
        ("duplicate", 1),
        ("stored", 3),
        ("not_found", 0),
        ("forbidden", 0),
    ]

    # A numbering that does not fit the batch is not trusted: the careful path stores it
    # gap-free all the same.
    wrong = numbered([(a.id, a.member_id, "x4"), (a.id, a.member_id, "x5")])
    wrong[6] = [1, 3]  # a place past the conversation's count would leave a seq unused
    row = await db.fetchrow(call, *wrong)
    assert row is not None and row["bases"] is None
    assert list(zip(row["outcomes"], row["seqs"], strict=True)) == [("stored", 4), ("stored", 5)]
    wrong = numbered([(a.id, a.member_id, "x4b"), (a.id, a.member_id, "x5b")])
    wrong[8] = [3]  # a count the batch does not have
    row = await db.fetchrow(call, *wrong)
    assert row is not None and row["bases"] is None
    assert list(zip(row["outcomes"], row["seqs"], strict=True)) == [("stored", 6), ("stored", 7)]
    assert await db.fetchval("SELECT last_seq FROM conversations WHERE id = $1", a.id) == 7
    assert [
        r["seq"]
        for r in await db.fetch("SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq", a.id)
    ] == [1, 2, 3, 4, 5, 6, 7]

    # Migration 0091: no numbering (NULL) means one message per conversation. So it is, the
    # fast path; so it is not (two in one conversation), the careful path, gap-free still.
    unnumbered = numbered([(a.id, a.member_id, "x6"), (b.id, b.member_id, "y2")])[:6] + [None] * 3
    row = await db.fetchrow(call, *unnumbered)
    assert row is not None and dict(zip(row["ids"], row["bases"], strict=True)) == {a.id: 7, b.id: 1}
    shared = numbered([(a.id, a.member_id, "x7"), (a.id, a.member_id, "x8")])[:6] + [None] * 3
    row = await db.fetchrow(call, *shared)
    assert row is not None and row["bases"] is None
    assert list(zip(row["outcomes"], row["seqs"], strict=True)) == [("stored", 9), ("stored", 10)]


async def test_a_batch_that_waited_for_an_end_is_refused_as_ended(db: Pool) -> None:
    """A batch that waits for the lock of a conversation being ended (or handed over)
    checks the row as it is once locked, not as it was when the batch began: the message
    is refused as `ended`, never stored after the end (migration 0091)."""
    conv = await _conversation(db, "m-race", "s-race")
    appender = Appender(db)
    assert (await _send(appender, conv, "before"))[0] is Appended.STORED
    async with db.acquire() as ending:
        tx = ending.transaction()
        await tx.start()
        await ending.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv.id)
        await ending.execute(
            "UPDATE conversations SET state = 'ended', ended_at = now() WHERE id = $1", conv.id
        )
        late = _send(appender, conv, "after")
        for _ in range(100):  # until the batch waits for the row lock
            waiting = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%append_batch%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the batch never waited for the lock"
        await tx.commit()
    outcome, seq, _ = await asyncio.wait_for(late, 10)
    assert (outcome, seq) == (Appended.ENDED, 0)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conv.id) == 1
    await appender.close()


async def test_a_connection_lost_mid_stream_fails_its_batch_and_the_next_goes_on_a_fresh_one(
    db: Pool,
) -> None:
    """The appender holds one connection while it has work. When PostgreSQL drops that
    connection, the batch on it gets the error (nothing acked), and later sends are stored."""
    conv = await _conversation(db, "m-lost", "s-lost")
    appender = Appender(db)
    gate = asyncio.Event()
    held: list[int] = []

    async def note_then_wait(conn: PoolConnection) -> None:
        held.append(conn.get_server_pid())
        await gate.wait()

    _before_each_commit(appender, note_then_wait)
    first = _send(appender, conv, "a")
    for _ in range(500):
        if held:
            break
        await asyncio.sleep(0.01)
    assert await db.fetchval("SELECT pg_terminate_backend($1)", held[0])
    gate.set()
    # What asyncpg raises for a terminated backend depends on when it notices.
    lost = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError)
    with pytest.raises(lost):
        await first
    outcome, seq, _ = await _send(appender, conv, "b")
    assert (outcome, seq) == (Appended.STORED, 1)
    assert held[1] != held[0], "a fresh connection, not the dead one"
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conv.id) == 1


def _before_each_commit(appender: Appender, step: Callable[[PoolConnection], Awaitable[None]]) -> Appender:
    """Run `step` on the connection before each batch is committed."""
    original = appender._commit

    async def commit(conn: PoolConnection, batch: list) -> None:  # type: ignore[type-arg]
        await step(conn)
        await original(conn, batch)

    appender._commit = commit  # type: ignore[method-assign]
    return appender


def _slow_commits(appender: Appender) -> Appender:
    """Commits take 3 ms, as on a busy machine with fsync on (the test server has it off)."""

    async def wait(conn: PoolConnection) -> None:
        await asyncio.sleep(0.003)

    return _before_each_commit(appender, wait)


async def _steady_stream(appender: Appender, conv: conversations.Conversation, n: int) -> None:
    """A send every millisecond or so, none waiting for the last: a busy process."""
    tasks = []
    for i in range(n):
        tasks.append(_send(appender, conv, f"s{i}"))
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)


async def test_under_steady_load_a_commit_lingers_so_more_messages_share_it(db: Pool) -> None:
    eager = _slow_commits(Appender(db, linger_s=0))
    # The stream's rate sits near BUSY_RATE: either wait (the linger, the busy age) is 50 ms,
    # long beside a loaded machine's stretched sleeps and commits.
    lingering = _slow_commits(Appender(db, linger_s=0.05, busy_age_s=0.05))
    await _steady_stream(eager, await _conversation(db, "m-eager", "s-eager"), 80)
    await _steady_stream(lingering, await _conversation(db, "m-linger", "s-linger"), 80)
    assert lingering.batches * 2 < eager.batches, (lingering.batches, eager.batches)


async def test_the_first_message_after_a_quiet_spell_does_not_linger(db: Pool) -> None:
    conv = await _conversation(db, "m-quiet", "s-quiet")
    appender = Appender(db, linger_s=2.0)
    for cmid in ("a", "b"):
        started = asyncio.get_running_loop().time()
        outcome, _, _ = await _send(appender, conv, cmid)
        assert outcome is Appended.STORED
        assert asyncio.get_running_loop().time() - started < 1.0, "a lone message is committed at once"


async def test_a_quiet_moment_keeps_the_worker_and_close_ends_it_at_once(db: Pool) -> None:
    """When the queue empties the worker waits (connection in hand) for the next message
    instead of ending: sends a moment apart need no new task; close() ends the wait at
    once and hands the connection back."""
    conv = await _conversation(db, "m-keep", "s-keep")
    appender = Appender(db)
    for cmid in ("a", "b", "c"):
        assert (await _send(appender, conv, cmid))[0] is Appended.STORED
        await asyncio.sleep(0.05)
    assert appender.workers_started == 1, appender.workers_started
    assert appender.batches == 3
    idle_before = db.get_idle_size()
    started = asyncio.get_running_loop().time()
    await appender.close()
    assert asyncio.get_running_loop().time() - started < 0.5, "close does not wait out the idle wait"
    assert db.get_idle_size() == idle_before + 1, "the connection went back to the pool"


async def _heavy_stream(
    appender: Appender, conv: conversations.Conversation, per_ms: float, seconds: float
) -> None:
    """`per_ms` sends a millisecond for `seconds`, none waiting for the last, paced by the
    clock (a stalled loop catches up), so the rate holds on a loaded machine."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[tuple[Appended, int, object]]] = []
    began = loop.time()
    while (now := loop.time() - began) < seconds:
        due = int(now * 1000 * per_ms)
        tasks += [_send(appender, conv, f"h{n}") for n in range(len(tasks), due)]
        await asyncio.sleep(0.001)
    results = await asyncio.gather(*tasks)
    assert [seq for _, seq, _ in results] == list(range(1, len(tasks) + 1)), "in order, gap-free"


async def test_under_heavy_load_a_commit_leaves_when_its_oldest_message_is_old_enough(db: Pool) -> None:
    """From BUSY_RATE messages a millisecond the next commit waits until its oldest message
    has waited busy_age_s: commits start about busy_age_s apart however fast messages come
    (without the wait they would go back to back, one per round trip)."""
    # 4 a millisecond: well over BUSY_RATE, and a busy age's worth (160) under MAX_BATCH.
    aged = Appender(db, busy_age_s=0.04)
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def note(conn: PoolConnection) -> None:
        starts.append(loop.time())

    _before_each_commit(aged, note)
    await _heavy_stream(aged, await _conversation(db, "m-aged", "s-aged"), 4.0, 0.8)
    assert aged._rate >= BUSY_RATE * 1000, aged._rate
    # The first commits go before the rate is known; after that, one per busy age.
    gaps = sorted(b - a for a, b in itertools.pairwise(starts[2:]))
    assert len(gaps) >= 3, f"{len(starts)} commits: too few to tell"
    assert gaps[len(gaps) // 2] >= 0.03, [round(g * 1000) for g in gaps]


async def test_a_light_load_never_waits_for_the_busy_age(db: Pool) -> None:
    """Under BUSY_RATE the wait is the short linger, however long the busy age: a message
    every 5 ms (0.2 a millisecond) is committed at once or after a millisecond."""
    conv = await _conversation(db, "m-light", "s-light")
    appender = Appender(db, busy_age_s=5.0)
    loop = asyncio.get_running_loop()
    waited: list[float] = []

    async def timed(cmid: str) -> None:
        started = loop.time()
        outcome, _, _ = await _send(appender, conv, cmid)
        assert outcome is Appended.STORED
        waited.append(loop.time() - started)

    tasks = []
    for i in range(30):
        tasks.append(asyncio.ensure_future(timed(f"l{i}")))
        await asyncio.sleep(0.005)
    await asyncio.gather(*tasks)
    assert appender._rate < BUSY_RATE * 1000, appender._rate
    assert max(waited) < 2.5, f"a light load waited {max(waited):.2f} s: the busy age was applied"


async def test_after_close_a_submit_fails_at_once_as_storage_unavailable(db: Pool) -> None:
    conv = await _conversation(db, "m-closed", "s-closed")
    appender = Appender(db)
    assert (await _send(appender, conv, "before"))[0] is Appended.STORED
    await appender.close()
    with pytest.raises(ConnectionError):  # an OSError: the client is told `unavailable`
        await asyncio.wait_for(_send(appender, conv, "after"), 1)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conv.id) == 1


async def test_a_cancelled_appender_fails_every_waiting_caller(db: Pool) -> None:
    """Nothing may wait forever on an appender that is gone (a socket's next frame waits
    for its sends): the batch being committed and everything queued behind it fail."""
    conv = await _conversation(db, "m-cancel", "s-cancel")
    gate = asyncio.Event()

    async def stuck(conn: PoolConnection) -> None:
        await gate.wait()

    appender = _before_each_commit(Appender(db), stuck)
    first = _send(appender, conv, "first")
    await asyncio.sleep(0.05)  # the first batch is now stuck in its commit
    queued = [_send(appender, conv, f"q{i}") for i in range(3)]
    await asyncio.sleep(0)
    assert appender._worker is not None
    appender._worker.cancel()
    results = await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 2)
    assert all(isinstance(r, ConnectionError) for r in results), results
