"""What the delivery repair asks PostgreSQL (chat/upkeep/repair.py): which conversations a
socket here is behind on, and which started lately. Both are asked every round of every
process, so both are shaped to cost nothing when nothing was lost."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from chat.store.conversations import Conversation
from chat.store.db import Db
from chat.store.states import CONVERSATION_ACTIVE
from protocol.ids import ConversationId, UserId

_CONV = Conversation.columns()
# A conversation's (id, member id, specialist id): `recently_started`'s rows.
Pair = tuple[ConversationId, UserId, UserId]


def _array_literal(values: Collection[str]) -> str:
    """PostgreSQL's text form of a text array, for a parameter cast `$n::text::text[]`.

    asyncpg encodes a list parameter element by element, with two or three `isinstance`
    checks against abstract classes each (Python calls): for the delivery repair's ~2,000
    ids and seqs every round that was most of `behind`'s cost. Joined here it is one C-level
    call; PostgreSQL parses the text as cheaply as the binary form. Every element is quoted
    (so `NULL` stays a string), and the rare one holding a quote or backslash escaped."""
    if not values:
        return "{}"
    body = '","'.join(values)
    if "\\" in body or body.count('"') != 2 * (len(values) - 1):
        body = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + body + '"}'


# `behind`'s question as its five parameters (PostgreSQL array text): made once, it can be
# asked again while nothing it was made from changed (chat/upkeep/repair.py).
BehindQuestion = tuple[str, str, str, str, str]


def behind_question(
    seen: Mapping[str, int],
    *,
    told_ended: Collection[str] = (),
    believed: Mapping[str, Collection[str]] | None = None,
) -> BehindQuestion:
    """`behind`'s arguments, ready to send (see `behind`)."""
    believed = believed or {}
    return (
        _array_literal(seen.keys()),
        "{" + ",".join(map(str, seen.values())) + "}",
        _array_literal(told_ended),
        _array_literal([i for i, who in believed.items() for _ in who]),
        _array_literal([b for who in believed.values() for b in who]),
    )


async def behind(
    db: Db,
    seen: Mapping[str, int],
    *,
    told_ended: Collection[str] = (),
    believed: Mapping[str, Collection[str]] | None = None,
) -> list[Conversation]:
    """Of these conversations (`seen`: conversation → the lowest seq a socket here was
    sent), those whose last seq is past it, or that ended while some socket here was not
    told (all but `told_ended`), or that a specialist here still believes they hold
    (`believed`: conversation → those specialists) while someone else does (handed on while
    their socket missed the end): the delivery repair's question (chat/upkeep/repair.py).
    Each conversation comes back once. When nothing was lost it returns no rows, so a quiet
    process decodes nothing.

    The arrays go as text (see `_array_literal`): at 2,000 idle sockets a process asks this
    about ~1,500 conversations every 10 s."""
    return await ask_behind(db, behind_question(seen, told_ended=told_ended, believed=believed))


async def ask_behind(db: Db, question: BehindQuestion) -> list[Conversation]:
    """`behind`, with its question made beforehand by `behind_question`."""
    rows = await db.fetch(
        f"""SELECT {_CONV}
              FROM unnest($1::text::text[], $2::text::bigint[]) AS k(id, seen)
              JOIN conversations USING (id)
             WHERE last_seq > k.seen OR (ended_at IS NOT NULL AND id <> ALL($3::text::text[]))
            UNION
            SELECT {_CONV}
              FROM unnest($4::text::text[], $5::text::text[]) AS b(id, believed)
              JOIN conversations USING (id)
             WHERE ended_at IS NULL AND specialist_id <> b.believed""",
        *question,
    )
    return [Conversation.of(r) for r in rows]


async def recently_started(db: Db, *, between_s: tuple[float, float]) -> list[Pair]:
    """Active conversations that started between `between_s[1]` and `between_s[0]` seconds ago
    (say 300 and 5), as (id, member id, specialist id): cheap on the partial index, whatever
    the number of sockets asking, and only the three ids decoded (the start repair reads
    the whole conversation only for one some socket does not know, with `get_many`).

    (An earlier form matched every connected user's id with `= ANY(...)`: with 4,000 sockets
    that scan kept a PostgreSQL core busy every few seconds.)"""
    newest, oldest = between_s
    rows = await db.fetch(
        f"""SELECT id, member_id, specialist_id FROM conversations
            WHERE state = {CONVERSATION_ACTIVE}
              AND started_at > now() - make_interval(secs => $2)
              AND started_at < now() - make_interval(secs => $1)""",
        newest,
        oldest,
    )
    return [(r[0], r[1], r[2]) for r in rows]
