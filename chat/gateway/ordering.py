"""One socket's gap-free order: per conversation, which messages it has been sent, which
arrived ahead of a gap (held), and which conversations it has been told ended.

Pure bookkeeping with no I/O: chat/gateway/session.py asks `plan()` what sending a frame
now puts on the wire, and calls `releasable()` after filling a gap from PostgreSQL. The only
timer is the gap wait: a conversation that starts holding messages calls `on_gap` after
GAP_WAIT_S unless the gap has closed by then (the session then reads the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

# How long a message ahead of a gap waits for the missing ones to ring before they are read
# from PostgreSQL.
GAP_WAIT_S = 0.25
# In a `conversation_ended` frame: its specialist handed the conversation on.
_TRANSFERRED = b'"reason":"transferred"'


# Not `frozen`: a frozen dataclass sets each field through object.__setattr__, and an
# Outbound is built several times per message (ack, own copy, each recipient, each ring
# received): 0.61 -> 0.14 µs each. Nothing changes one after it is built.
@dataclass(slots=True)
class Outbound:
    data: bytes
    conversation_id: str | None = None
    seq: int | None = None  # set on `message` frames only
    starts_conversation: bool = False  # a `conversation_started`: its seq line begins at 0
    ends_conversation: bool = False  # a `conversation_ended`


class Changes:
    """A count that moves whenever any socket of this process changes what it knows (a key
    or a seq of its `seen`, its `ended`, its `handed_on`) and whenever a socket attaches to
    or leaves the hub: while it has not moved, the delivery repair asks PostgreSQL the same
    question as the round before without walking every socket to build it again
    (chat/upkeep/repair.py). So every writer of those moves it: the methods of `Ordering`
    below (`Session.know` and `Session.forget` for the handlers), and chat/delivery/hub.py's
    attach and detach. tests/chat/test_repair.py fails if any other module writes them."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


CHANGES = Changes()


class Ordering:
    def __init__(self, on_gap: Callable[[str], None]) -> None:
        # Highest seq this socket has been sent, per conversation it knows about.
        self.seen: dict[str, int] = {}
        # Messages that arrived ahead of a gap, by conversation and seq (see hold).
        self.held: dict[str, dict[int, Outbound]] = {}
        # Conversations this socket has been told ended.
        self.ended: set[str] = set()
        # ... of those, the ones handed on to another specialist (PRODUCT.md §9): nothing of
        # them reaches this socket after that `conversation_ended`.
        self.handed_on: set[str] = set()
        self._on_gap = on_gap

    def plan(self, item: Outbound) -> list[bytes]:
        """What sending `item` now puts on the wire, in order, with the bookkeeping done:
        nothing (a repeat, or held ahead of a gap), the frame, or the frame and the held
        messages that now follow it. Needs no await; the caller sends the result."""
        conv = item.conversation_id
        if item.starts_conversation and conv is not None:
            CHANGES.count += 1
            if conv in self.handed_on:
                # Handed back to this specialist (PRODUCT.md §9): it starts again for them,
                # its seq line from 0 (what they had is sent again; the page drops repeats).
                self.handed_on.discard(conv)
                self.ended.discard(conv)
                self.seen.pop(conv, None)
            if conv in self.seen:
                return []  # told already (the doorbell and a repair can both bring it)
            self.seen[conv] = 0
        if item.ends_conversation and conv is not None:
            if conv in self.ended:
                return []
            CHANGES.count += 1
            self.ended.add(conv)
            # Ends are rare: a look at the frame costs nothing on the message path.
            if _TRANSFERRED in item.data:
                self.handed_on.add(conv)
                self.held.pop(conv, None)
        if self.handed_on and conv in self.handed_on and not item.ends_conversation:
            # Handed on: not its messages, nor its `typing` (the peer's process may still
            # have had the old pair cached when it relayed it), nor its risk or notes.
            return []
        if item.seq is not None and conv is not None:
            seen = self.seen.get(conv, 0)
            if item.seq <= seen:
                return []  # already sent: a duplicate from the bus or a catch-up
            if item.seq > seen + 1:
                self.hold(conv, item)
                return []
            self.seen[conv] = item.seq
            CHANGES.count += 1
            if conv in self.held:
                return [item.data, *self.releasable(conv)]
        return [item.data]

    def know(self, conversation_id: str, seq: int) -> None:
        """This socket has been sent everything of the conversation up to `seq` (a
        `welcome`, a catch-up, a supervisor's watch)."""
        self.seen[conversation_id] = seq
        CHANGES.count += 1

    def forget(self, conversation_id: str) -> None:
        """Nothing more of the conversation is for this socket (a supervisor's unwatch)."""
        self.seen.pop(conversation_id, None)
        CHANGES.count += 1

    def hold(self, conversation_id: str, item: Outbound) -> None:
        """A message ahead of a gap. Under load the two participants' processes ring in
        either order, so the missing ones usually arrive within milliseconds: wait up to
        GAP_WAIT_S before reading them from PostgreSQL. (Reading at once turned every
        reordering into a query; at 4,000 msgs/s that fed on itself.)"""
        held = self.held.get(conversation_id)
        if held is None:
            held = self.held[conversation_id] = {}
            asyncio.get_running_loop().call_later(GAP_WAIT_S, self._gap_timeout, conversation_id)
        held[item.seq or 0] = item

    def _gap_timeout(self, conversation_id: str) -> None:
        if conversation_id in self.held:
            self._on_gap(conversation_id)

    def releasable(self, conversation_id: str) -> list[bytes]:
        """Held messages that now follow on, marked sent; the caller sends them in order."""
        held = self.held.get(conversation_id)
        if held is None:
            return []
        out = []
        seen = self.seen.get(conversation_id, 0)
        while (item := held.pop(seen + 1, None)) is not None:
            out.append(item.data)
            seen += 1
        self.seen[conversation_id] = seen
        CHANGES.count += 1
        for stale in [s for s in held if s <= seen]:
            del held[stale]
        if not held:
            del self.held[conversation_id]
        return out
