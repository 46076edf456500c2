"""The appender's `then`: the send pipeline's completion (its ack and fan-out), called by
the committing task as each future resolves, once, in submission order, whatever the
outcome; a `then` that fails does not hold back the others."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chat.store.appender import Appender, Done
from chat.store.conversations import Appended, Conversation
from tests.chat.conftest import Pool
from tests.chat.test_store import _conversation


class Calls:
    def __init__(self) -> None:
        self.order: list[str] = []
        self.futures: dict[str, Done] = {}
        self.tasks: dict[str, str | None] = {}

    def then(self, name: str, *, fail: bool = False) -> object:
        def called(done: Done) -> None:
            assert done.done(), "called once the future is resolved"
            assert name not in self.futures, "called once"
            self.order.append(name)
            self.futures[name] = done
            task = asyncio.current_task()
            self.tasks[name] = None if task is None else task.get_name()
            if fail:
                raise RuntimeError("a completion that fails")

        return called

    def callback(self, name: str) -> object:
        return lambda _done: self.order.append(f"{name}:callback")


def _submit(
    appender: Appender, conv: Conversation, calls: Calls, cmid: str, body: str = "hi", **kw: bool
) -> Done:
    then = calls.then(cmid, **kw)
    assert callable(then)
    done = appender.submit(
        then,
        conversation_id=conv.id,
        sender_id=conv.member_id,
        sender_role="member",
        sender_name="Sam",
        client_msg_id=cmid,
        body=body,
    )
    callback = calls.callback(cmid)
    assert callable(callback)
    done.add_done_callback(callback)
    return done


async def test_then_runs_once_per_message_in_order_before_the_futures_callbacks(db: Pool) -> None:
    convs = [await _conversation(db, f"m{i}", f"s{i}") for i in range(3)]
    appender = Appender(db)
    calls = Calls()
    futures = [_submit(appender, c, calls, f"c{n}-{i}") for n in range(4) for i, c in enumerate(convs)]
    await asyncio.gather(*futures)
    names = [f"c{n}-{i}" for n in range(4) for i in range(3)]
    thens = [name for name in calls.order if ":" not in name]
    assert thens == names, "in submission order, each once"
    for name in names:
        assert calls.order.index(name) < calls.order.index(f"{name}:callback")
        # The committing task calls it (a done-callback would run in no task).
        assert calls.tasks[name] == "message-appender"
    assert all(calls.futures[n].result()[0] is Appended.STORED for n in names)


async def test_a_refused_element_and_a_failing_then_hold_back_no_other(db: Pool) -> None:
    conv = await _conversation(db)
    appender = Appender(db)
    calls = Calls()
    good = _submit(appender, conv, calls, "good", "fine", fail=True)
    bad = _submit(appender, conv, calls, "bad", "\x00 PostgreSQL cannot store NUL")
    later = _submit(appender, conv, calls, "later", "also fine")
    assert (await good)[0] is Appended.STORED
    with pytest.raises(asyncpg.PostgresError):
        await bad
    assert (await later)[1] == 2
    assert [n for n in calls.order if ":" not in n] == ["good", "bad", "later"]
    assert isinstance(calls.futures["bad"].exception(), asyncpg.PostgresError)


async def test_after_close_then_still_hears_of_the_refusal(db: Pool) -> None:
    conv = await _conversation(db, "m-closed", "s-closed")
    appender = Appender(db)
    await appender.close()
    calls = Calls()
    done = _submit(appender, conv, calls, "after")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(done, 1)
    await asyncio.sleep(0)
    assert calls.order[0] == "after"
    assert isinstance(calls.futures["after"].exception(), ConnectionError)
