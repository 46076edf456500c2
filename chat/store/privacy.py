"""SQL of the privacy lifecycle (PRODUCT.md §10): the retention sweep's batches and a
member's erasure (the reads behind their export are chat/store/export.py). docs/privacy.md
is the data map.

A conversation's content is removed by the statements in CONTENT, each taking the
conversation ids as $1; a member's rows that belong to no conversation by those in
MEMBER_ROWS, each taking the member's id as $1. A new table that holds content or names a
member is one more line in one of them (and a row in the data map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chat.store.db import Db
from chat.store.queue import IN_LINE, lock_member
from chat.store.states import CONVERSATION_ACTIVE

# A connection (not a pool): these functions open transactions or cursors on it.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# What a conversation holds that is not statistics. Runs inside the caller's transaction.
CONTENT: tuple[str, ...] = (
    "DELETE FROM messages WHERE conversation_id = ANY($1::text[])",
    "UPDATE feedback SET comment = NULL, member_id = '' WHERE conversation_id = ANY($1::text[])",
    """UPDATE requests SET note = NULL, member_id = '', member_alias = '', swept_at = now()
       WHERE id IN (SELECT request_id FROM conversations WHERE id = ANY($1::text[]))""",
    # A cold transfer's queue entry (§9) names the member too.
    """UPDATE requests SET member_id = '', member_alias = '', swept_at = now()
       WHERE transfer_of = ANY($1::text[])""",
    # A specialist's flag note (PRODUCT.md §8); the alert keeps its kind, level and times.
    "UPDATE alerts SET note = NULL WHERE conversation_id = ANY($1::text[]) AND note IS NOT NULL",
    # A specialist's wrap-up note (PRODUCT.md §8); outcome and risk level stay as statistics.
    "UPDATE wrap_ups SET note = NULL WHERE conversation_id = ANY($1::text[]) AND note IS NOT NULL",
    # Staff notes and whispers (PRODUCT.md §9, §8): staff content about the conversation.
    "DELETE FROM staff_notes WHERE conversation_id = ANY($1::text[])",
    # What a specialist wrote when blocking, what a member wrote when reporting (§9).
    """DELETE FROM blocks
       WHERE conversation_id = ANY($1::text[]) AND (lifted_at IS NOT NULL OR until <= now())""",
    "UPDATE blocks SET reason = NULL WHERE conversation_id = ANY($1::text[]) AND reason IS NOT NULL",
    """UPDATE reports SET reason = NULL, details = NULL
       WHERE conversation_id = ANY($1::text[]) AND (reason IS NOT NULL OR details IS NOT NULL)""",
)
# What names a member outside their conversations (requests that never became one,
# feedback left behind, the mark of a member who went away). Runs inside the erasure's
# transaction; LEFTOVERS (rows their closing sockets may write after it) run again later.
LEFTOVERS: tuple[str, ...] = ("DELETE FROM members_away WHERE member_id = $1",)
MEMBER_ROWS: tuple[str, ...] = (
    """UPDATE requests SET note = NULL, member_id = '', member_alias = '', swept_at = now(),
           closed_at = coalesce(closed_at, now())
       WHERE member_id = $1""",
    "UPDATE feedback SET comment = NULL, member_id = '' WHERE member_id = $1",
    # Blocks, reports and suspensions name the member (§9): they go with them.
    "DELETE FROM blocks WHERE member_id = $1",
    "DELETE FROM reports WHERE member_id = $1",
    "DELETE FROM suspensions WHERE member_id = $1",
)
_SWEPT = """UPDATE conversations SET member_id = '', member_alias = '', swept_at = now()
            WHERE id = ANY($1::text[])"""


def _rows(status: str) -> int:
    """The row count of a command tag such as `DELETE 42`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Swept:
    conversations: int = 0
    messages: int = 0
    requests: int = 0

    def __add__(self, other: Swept) -> Swept:
        return Swept(
            self.conversations + other.conversations,
            self.messages + other.messages,
            self.requests + other.requests,
        )

    @property
    def empty(self) -> bool:
        return not (self.conversations or self.messages or self.requests)


async def _scrub(conn: Db, conversation_ids: list[str]) -> int:
    """Remove the content of these conversations and mark them swept; returns the messages
    removed. Call inside a transaction that holds their rows locked."""
    messages = 0
    for statement in CONTENT:
        status = await conn.execute(statement, conversation_ids)
        if statement.startswith("DELETE FROM messages"):
            messages = _rows(status)
    await conn.execute(_SWEPT, conversation_ids)
    return messages


# A sweep transaction never waits long behind live traffic: if a row it wants is locked
# (a late `send` into an ended conversation, a feedback being saved), it gives up and the
# next batch or run takes it.
_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"
_CANDIDATES = 200


async def sweep_conversations(conn: Conn, retention_s: float, max_messages: int) -> Swept:
    """One batch, one transaction: the oldest conversations ended more than `retention_s`
    ago and not yet swept, as many as hold at most `max_messages` messages between them
    (always at least one, however long it is)."""
    due = await conn.fetch(
        """SELECT id, last_seq FROM conversations
            WHERE state = 'ended' AND swept_at IS NULL AND ended_at < now() - make_interval(secs => $1)
            ORDER BY ended_at LIMIT $2""",
        retention_s,
        _CANDIDATES,
    )
    picked: list[str] = []
    total = 0
    for row in due:
        if picked and total + row["last_seq"] > max_messages:
            break
        picked.append(row["id"])
        total += row["last_seq"]
    if not picked:
        return Swept()
    async with conn.transaction():
        await conn.execute(_LOCK_TIMEOUT)
        locked = await conn.fetch(
            """SELECT id FROM conversations
                WHERE id = ANY($1::text[]) AND state = 'ended' AND swept_at IS NULL
                  AND ended_at < now() - make_interval(secs => $2)
                FOR UPDATE SKIP LOCKED""",
            picked,
            retention_s,
        )
        ids = [r["id"] for r in locked]
        if not ids:
            return Swept()
        messages = await _scrub(conn, ids)
    return Swept(conversations=len(ids), messages=messages)


async def sweep_requests(conn: Conn, retention_s: float, limit: int = 500) -> Swept:
    """One batch of cancelled requests (never a conversation) closed more than
    `retention_s` ago: their note, member id and alias go."""
    async with conn.transaction():
        await conn.execute(_LOCK_TIMEOUT)
        status = await conn.execute(
            """UPDATE requests r SET note = NULL, member_id = '', member_alias = '', swept_at = now()
                 FROM (SELECT id FROM requests
                        WHERE state = 'cancelled' AND swept_at IS NULL
                          AND closed_at < now() - make_interval(secs => $1)
                        ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
                WHERE r.id = due.id""",
            retention_s,
            limit,
        )
    return Swept(requests=_rows(status))


async def backlog(db: Db, retention_s: float) -> int:
    """Conversations and requests past retention whose content is still there."""
    return int(
        await db.fetchval(
            """SELECT (SELECT count(*) FROM conversations
                        WHERE state = 'ended' AND swept_at IS NULL
                          AND ended_at < now() - make_interval(secs => $1))
                    + (SELECT count(*) FROM requests
                        WHERE state = 'cancelled' AND swept_at IS NULL
                          AND closed_at < now() - make_interval(secs => $1))""",
            retention_s,
        )
        or 0
    )


# --------------------------------------------------------------------------- erasure


@dataclass(frozen=True, slots=True)
class Erasure:
    """What `erase_member` found: nothing at all makes a second erasure a no-op. `busy`:
    an open request or an active conversation appeared meanwhile; end it and call again."""

    rows: int  # conversations, requests and feedback rows that named the member
    messages: int
    busy: bool = False

    @property
    def empty(self) -> bool:
        return not (self.rows or self.messages)


async def erase_member(
    conn: Conn, member_id: str, audit_reason: str, *, erased_sub: str, max_token_ttl_s: float
) -> Erasure:
    """Remove, in one transaction, everything stored that names the member or holds what
    they wrote or was written to them; record the erasure in the audit log without naming
    them. The caller first cancels their open request and ends their active conversations
    through the paths that tell the other side; if one is still open here (a race with
    another device), nothing is changed and `busy` is returned.

    The member's revocations stay (removing them would let their older tokens in again) but
    stop naming them: `sub` becomes `erased_sub`, the keyed HMAC the revocation mirror
    compares (chat/revocations.py), and the free-text reason goes; a row too old to refuse
    any living token is deleted."""
    async with conn.transaction():
        # No request of theirs can be created between the count below and the updates
        # (create_request takes the same lock): it would be scrubbed and left waiting.
        # A conversation only comes from a request in line, which the count sees.
        await lock_member(conn, member_id)
        open_ = await conn.fetchval(
            f"""SELECT (SELECT count(*) FROM conversations
                        WHERE member_id = $1 AND state = {CONVERSATION_ACTIVE})
                    + (SELECT count(*) FROM requests WHERE member_id = $1 AND state IN {IN_LINE})""",
            member_id,
        )
        if open_:
            return Erasure(0, 0, busy=True)
        rows = await conn.fetch("SELECT id FROM conversations WHERE member_id = $1 FOR UPDATE", member_id)
        ids = [r["id"] for r in rows]
        messages = await _scrub(conn, ids) if ids else 0
        touched = len(ids)
        for statement in MEMBER_ROWS:
            touched += _rows(await conn.execute(statement, member_id))
        # Not counted: a closing socket may write these after a first erasure, and a second
        # erasure must still be a no-op.
        for statement in LEFTOVERS:
            await conn.execute(statement, member_id)
        # Not counted either: erasing a revoked member who never chatted is no row of theirs.
        await conn.execute(
            """DELETE FROM revocations WHERE role = 'member' AND sub = $1
                 AND revoked_at < now() - make_interval(secs => $2)""",
            member_id,
            max_token_ttl_s + 60,
        )
        await conn.execute(
            "UPDATE revocations SET sub = $2, reason = '' WHERE role = 'member' AND sub = $1",
            member_id,
            erased_sub,
        )
        if touched:
            await conn.execute(
                """INSERT INTO audit_log (actor_id, actor_role, actor_name, action, conversation_id, reason)
                   VALUES ('', 'member', 'a member', 'erase', NULL, $1)""",
                audit_reason,
            )
    return Erasure(rows=touched, messages=messages)


async def forget_leftovers(db: Db, member_id: str) -> None:
    """What the member's sockets write as they close (`members_away`), which may land after
    the erasure's transaction: run again once they are surely closed."""
    for statement in LEFTOVERS:
        await db.execute(statement, member_id)
