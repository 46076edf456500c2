"""One call of `append_batch()` (migrations 0090, 0091) for a group commit's batch: the
statement's shape and the reading of its one row, apart from the appender's scheduling
(chat/store/appender.py: the queue, the linger, the callers' futures)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chat.store.conversations import Appended
from chat.store.db import Db

# Appended(text) goes through EnumMeta.__call__ (about 1 µs); a dict lookup does not.
_OUTCOMES = {a.value: a for a in Appended}

Result = tuple[Appended, int, datetime]

# The six text columns go as one text each, joined by a unit separator, and
# string_to_array() in the statement makes the arrays again. asyncpg encodes a text[]
# element by element, with two isinstance checks against collections.abc per element
# (its array shape check): 12 Python-level ABC calls a message, 2.6 % of a web process's
# CPU at the goal load (bench/cpusampler.py). Joined, the web process's CPU per batch
# fell 149 -> 126 us (8 messages) and 323 -> 283 us (16), PostgreSQL's not at all
# (463 -> 454, 953 -> 942 us; /proc schedstat of both, batches alternated, 1,500 each).
# A column whose text holds the separator itself (a body may), or a batch of one with an
# empty text (which would split into no element), takes the arrays as before.
_SEP = "\x1f"
_SELECT = "SELECT ids, bases, stamp, outcomes, seqs, sent_ats FROM append_batch("
_JOINED = _SELECT + ", ".join(f"string_to_array(${i}, E'\\x1f')" for i in range(1, 7)) + ", $7, $8, $9)"
_ARRAYS = _SELECT + "$1, $2, $3, $4, $5, $6, $7, $8, $9)"


class Pending(Protocol):
    """A message waiting in the batch, as the appender holds it."""

    conversation_id: str
    sender_id: str
    sender_role: str
    sender_name: str
    client_msg_id: str
    body: str


async def append_many(conn: Db, batch: Sequence[Pending]) -> list[Result]:
    """Store `batch` in one statement, one transaction; each message's outcome, seq and
    sent_at, in the batch's order (so a socket's acks and a conversation's fan-out follow
    the order of the sends). Raises what PostgreSQL raises: the caller decides whether to
    retry one by one."""
    # Each message's place among its conversation's messages here, and each conversation's
    # count. Nearly every batch has one message per conversation: then the numbering is
    # left out (NULL), as encoding it cost more than it saved.
    counts: dict[str, int] = {}
    places: list[int] = []
    for b in batch:
        k = counts.get(b.conversation_id, 0) + 1
        counts[b.conversation_id] = k
        places.append(k)
    numbered = len(counts) < len(batch)
    columns = (
        [b.conversation_id for b in batch],
        [b.sender_id for b in batch],
        [b.sender_role for b in batch],
        [b.sender_name for b in batch],
        [b.client_msg_id for b in batch],
        [b.body for b in batch],
    )
    joined = [_SEP.join(column) for column in columns]
    seps = len(batch) - 1
    fits = all(text.count(_SEP) == seps for text in joined) and (seps > 0 or all(joined))
    row = await conn.fetchrow(
        _JOINED if fits else _ARRAYS,
        *(joined if fits else columns),
        places if numbered else None,
        list(counts) if numbered else None,
        list(counts.values()) if numbered else None,
    )
    assert row is not None
    if row["bases"] is not None:
        # The clean batch, all stored under one stamp: seq = the conversation's last_seq
        # before the batch + the message's place in it.
        bases = dict(zip(row["ids"], row["bases"], strict=True))
        stamp = row["stamp"]
        stored = Appended.STORED
        return [(stored, bases[b.conversation_id] + k, stamp) for b, k in zip(batch, places, strict=True)]
    # A repeat or a refusal in it: per-element outcomes.
    return [
        (_OUTCOMES[outcome], seq, sent_at)
        for outcome, seq, sent_at in zip(row["outcomes"], row["seqs"], row["sent_ats"], strict=True)
    ]
