"""`peer_status`: a participant's last socket came or went; the other side is told."""

from __future__ import annotations

import logging
from typing import Literal

import asyncpg
from redis.exceptions import RedisError

from chat.gateway.session import Session
from chat.services import Services
from chat.store import conversations
from protocol import frames as f

log = logging.getLogger("peerchat.dispatch")


async def peer_connected(services: Services, session: Session) -> None:
    await _tell_peers(services, session, "connected")


async def peer_disconnected(services: Services, session: Session) -> None:
    await _tell_peers(services, session, "reconnecting")


async def _tell_peers(
    services: Services, session: Session, status: Literal["connected", "reconnecting"]
) -> None:
    if session.role == "supervisor":
        return
    try:
        mine = await conversations.of_person(services.db, session.person)
        for conv in mine:
            if conv.state == "active":
                peer = conv.peer_of(session.person)
                services.hub.to_user(
                    peer,
                    f.PeerStatus(conversation_id=conv.id, status=status),
                )
    except (OSError, asyncpg.PostgresError, RedisError) as exc:
        log.info("could not tell peers: %s", type(exc).__name__)
