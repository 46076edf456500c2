"""`peer_status`: a participant's last socket came or went; the other side is told. For a
member, the member grace (chat/upkeep/member_grace.py) also learns of it here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import asyncpg
from redis.exceptions import RedisError

from chat.gateway.session import Session
from chat.people import Person, specialist
from chat.services import Services
from chat.store import conversations, members
from chat.store.db import Db
from matching.lifecycle import ConversationState
from protocol import frames as f

log = logging.getLogger("peerchat.dispatch")


async def peer_connected(services: Services, session: Session) -> None:
    if session.role == "member":
        await _record(members.member_returned, services, session.user_id)
    await _tell_peers(services, session, "connected")


async def peer_disconnected(services: Services, session: Session) -> None:
    """Call when the user's last live socket anywhere closed."""
    if session.role == "member":
        # Their grace (PEERCHAT_MEMBER_GRACE_S) counts from now.
        await _record(members.member_left, services, session.user_id)
    await _tell_peers(services, session, "reconnecting")


async def specialist_back(services: Services, specialist_id: str) -> None:
    """A specialist whose members were told `reconnecting` by a sweep (their process had
    stalled or lost Redis past the presence TTL, chat/upkeep/grace.py) counts again, on the
    socket they never closed: their members are told `connected` (nothing else would)."""
    await _tell(services, specialist(specialist_id), "connected")


async def _record(change: Callable[[Db, str], Awaitable[None]], services: Services, member_id: str) -> None:
    try:
        await change(services.db, member_id)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # A departure not written here is marked by the member grace sweep a little later.
        log.info("could not record a member coming or going: %s", type(exc).__name__)


async def _tell_peers(
    services: Services, session: Session, status: Literal["connected", "reconnecting"]
) -> None:
    if session.role == "supervisor":
        return
    await _tell(services, session.person, status)


async def _tell(services: Services, person: Person, status: Literal["connected", "reconnecting"]) -> None:
    try:
        mine = await conversations.of_person(services.db, person)
        for conv in mine:
            if conv.state == ConversationState.ACTIVE:
                peer = conv.peer_of(person)
                services.hub.to_user(
                    peer,
                    f.PeerStatus(conversation_id=conv.id, status=status),
                )
    except (OSError, asyncpg.PostgresError, RedisError) as exc:
        log.info("could not tell peers: %s", type(exc).__name__)
