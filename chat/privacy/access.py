"""Who may read a conversation's history, and until when (PRODUCT.md §10). Pure: no I/O,
the clock and the windows passed in, so every read path asks the same question the same
way and the answer is computed from the stored times at every check (nothing cached).

Call `may_read` from every path that hands out stored messages: the socket's `history`,
`resume` in `hello`, HTTP `GET /api/conversations/{id}/messages`, and the export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from chat.config import Settings
from matching.lifecycle import ConversationState


@dataclass(frozen=True, slots=True)
class Windows:
    """`retention_days`: how long after its end a conversation keeps its content (the
    member's window); `specialist_access_h`: how long after its end its specialist may
    still read it."""

    retention_days: float
    specialist_access_h: float


def may_read(role: str, state: str, ended_at: datetime | None, now: datetime, windows: Windows) -> bool:
    """Whether a participant in `role` may read a conversation in `state` that ended at
    `ended_at` (None while active). The caller has already checked that they take part in
    it; a supervisor's read is governed by the audit (a reason), not by these windows."""
    if role == "supervisor":
        return True
    if state == ConversationState.ACTIVE or ended_at is None:
        return True
    if role == "specialist":
        return now - ended_at <= timedelta(hours=windows.specialist_access_h)
    if role == "member":
        return now - ended_at <= timedelta(days=windows.retention_days)
    return False


class Ends(Protocol):
    """What `may_read_conversation` needs of a stored conversation."""

    @property
    def state(self) -> str: ...
    @property
    def ended_at(self) -> datetime | None: ...


def may_read_conversation(role: str, conversation: Ends, now: datetime, windows: Windows) -> bool:
    return may_read(role, conversation.state, conversation.ended_at, now, windows)


def windows_of(settings: Settings) -> Windows:
    return Windows(retention_days=settings.retention_days, specialist_access_h=settings.specialist_access_h)
