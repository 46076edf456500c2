"""Filling a socket's gap from PostgreSQL: the only reads on a socket's way out.

The writer of chat/gateway/session.py calls `fill` when a conversation's messages are held
ahead of a gap that the bus did not close in time, before anything else about a
conversation with messages held, and for a `CatchUp` (a resume, a repair, a bus
reconnect). What it sends goes through the same bookkeeping (chat/gateway/ordering.py), so
a message read here and rung meanwhile is sent once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chat.gateway.ordering import Ordering

# Reads stored messages after a seq, as encoded `message` frames with their seq.
Backfill = Callable[[str, int, int], Awaitable[list[tuple[int, bytes]]]]
# Send one encoded text frame, waiting for room if the socket's buffer is full.
SendText = Callable[[bytes], Awaitable[None]]
PAGE = 200  # messages per read


class CatchUpFailed(Exception):
    """Reading missed messages from PostgreSQL failed; the message names the error type."""


async def fill(order: Ordering, backfill: Backfill, send_text: SendText, conversation_id: str) -> None:
    """Read what is missing from PostgreSQL: up to the last held message if any are
    held (then send those), else everything after what this socket has seen."""
    if conversation_id in order.handed_on:
        return  # handed on to another specialist: nothing more of it for this socket
    held = order.held.get(conversation_id)
    await _catch_up(order, backfill, send_text, conversation_id, max(held) - 1 if held else None)
    for data in order.releasable(conversation_id):
        await send_text(data)


async def _catch_up(
    order: Ordering, backfill: Backfill, send_text: SendText, conversation_id: str, upto: int | None
) -> None:
    seen = order.seen.get(conversation_id, 0)
    while upto is None or seen < upto:
        try:
            batch = await backfill(conversation_id, seen, PAGE if upto is None else min(PAGE, upto - seen))
        except Exception as exc:
            raise CatchUpFailed(type(exc).__name__) from exc
        if not batch:
            break
        for seq, data in batch:
            if seq <= seen:
                continue
            await send_text(data)
            seen = seq
        order.know(conversation_id, seen)
        if len(batch) < PAGE and upto is None:
            break
