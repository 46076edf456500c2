"""append_many's statement against real PostgreSQL: the text columns travel joined by a
separator and are split again in the statement; texts that would not split back the same
(the separator inside one, or a batch of one empty text) travel as arrays. Either way
every text is stored exactly as sent."""

from __future__ import annotations

from dataclasses import dataclass

from chat.store import conversations
from chat.store.append_batch import _SEP, append_many
from chat.store.conversations import Appended
from tests.chat.conftest import Pool
from tests.chat.test_store import _conversation


@dataclass
class _Pending:
    conversation_id: str
    sender_id: str
    sender_role: str
    sender_name: str
    client_msg_id: str
    body: str


def _pending(conv: conversations.Conversation, cmid: str, body: str, name: str = "Sam") -> _Pending:
    return _Pending(conv.id, conv.member_id, "member", name, cmid, body)


async def _stored(db: Pool, conv: conversations.Conversation) -> list[tuple[int, str, str, str]]:
    return [
        (m.seq, m.sender_name, m.client_msg_id, m.body)
        for m in await conversations.messages_after(db, conv.id, 0)
    ]


async def test_a_batch_stores_every_text_exactly_with_empty_and_unicode_ones(db: Pool) -> None:
    convs = [await _conversation(db, f"m{i}", f"s{i}") for i in range(3)]
    texts = ['hello, "quoted" {braced} \\ back', "ünïcödé 🙂 , ;", " "]
    batch = [_pending(c, f"c{i}", texts[i], name="" if i == 1 else "Sam") for i, c in enumerate(convs)]
    results = await append_many(db, batch)
    assert [r[:2] for r in results] == [(Appended.STORED, 1)] * 3
    for i, conv in enumerate(convs):
        assert await _stored(db, conv) == [(1, "" if i == 1 else "Sam", f"c{i}", texts[i])]


async def test_a_text_holding_the_separator_is_stored_whole(db: Pool) -> None:
    convs = [await _conversation(db, f"m{i}", f"s{i}") for i in range(2)]
    body = f"one{_SEP}two{_SEP}"
    batch = [_pending(convs[0], "a", body), _pending(convs[1], "b", "plain")]
    results = await append_many(db, batch)
    assert [r[:2] for r in results] == [(Appended.STORED, 1), (Appended.STORED, 1)]
    assert await _stored(db, convs[0]) == [(1, "Sam", "a", body)]
    assert await _stored(db, convs[1]) == [(1, "Sam", "b", "plain")]


async def test_a_batch_of_one_with_an_empty_text_is_stored(db: Pool) -> None:
    conv = await _conversation(db)
    results = await append_many(db, [_pending(conv, "only", "hi", name="")])
    assert results[0][:2] == (Appended.STORED, 1)
    assert await _stored(db, conv) == [(1, "", "only", "hi")]


async def test_numbered_batches_and_repeats_still_come_back_per_element(db: Pool) -> None:
    conv = await _conversation(db)
    first = await append_many(db, [_pending(conv, "x", "one"), _pending(conv, "y", "two")])
    assert [r[:2] for r in first] == [(Appended.STORED, 1), (Appended.STORED, 2)]
    again = await append_many(db, [_pending(conv, "x", "one again"), _pending(conv, "z", "three")])
    assert [r[:2] for r in again] == [(Appended.DUPLICATE, 1), (Appended.STORED, 3)]
    assert await _stored(db, conv) == [
        (1, "Sam", "x", "one"),
        (2, "Sam", "y", "two"),
        (3, "Sam", "z", "three"),
    ]
