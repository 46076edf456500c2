"""A monitor's delivery name (chat/safety/monitoring.py) is one no token can carry.

Review finding 11: watchers were the person ("supervisor", "monitor:<socket id>"), a pair a
supervisor token with that `sub` could also be, and so share the watcher's deliveries."""

from __future__ import annotations

import pytest

from chat.config import Settings
from chat.gateway.session import Session
from chat.safety.monitoring import watcher_of
from chat.tokens import TokenRejected, mint, verify

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="s" * 32)


async def _nothing(*_: object) -> None:
    return None


async def _no_backfill(conversation_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
    return []


def test_no_token_is_the_watcher_of_a_socket() -> None:
    session = Session(
        user_id="sup-1",
        role="supervisor",
        name="Lee",
        send_text=_nothing,
        close_socket=_nothing,
        backfill=_no_backfill,
        max_queue=10,
    )
    watcher = watcher_of(session)
    assert watcher.role == "supervisor" and session.id in watcher.id
    with pytest.raises(TokenRejected):
        verify(mint(SETTINGS, sub=watcher.id, role="supervisor"), SETTINGS)
