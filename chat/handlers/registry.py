"""Which role may send which frame, the handler for each, and how a handler's failure
becomes an `error` frame.

Every handler is authorised against PostgreSQL's view of the conversation or request,
never against what the client claims. A handler refuses with `Refuse(code, message)`; a
database outage becomes `unavailable` (nothing was stored, retry); anything unexpected is
logged here and becomes `internal` for the client, and the socket stays open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from chat.gateway.session import Session
from chat.metrics import METRICS
from chat.services import Services
from chat.store.db import STORAGE_DOWN
from protocol import frames as f
from protocol.codes import ErrorCode

# The name predates the split of chat/dispatch.py; dashboards and tests filter on it.
log = logging.getLogger("peerchat.dispatch")

# Storage unreachable, or (rarely, given the lock order) a transaction PostgreSQL rolled
# back whole to break a deadlock: either way nothing was stored and a retry is safe.
STORAGE_DOWN_OR_RACE: tuple[type[BaseException], ...] = (
    *STORAGE_DOWN,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


class Refuse(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error(code: ErrorCode, message: str, ref: str | None) -> f.Error:
    METRICS.errors.labels(code.value).inc()
    return f.Error(code=code, message=message, ref=ref)


Handler = Callable[[Services, Session, Any], Awaitable[None]]
# Which role may send which frame; anything else is `forbidden`.
ROLES: dict[type[f.Frame], frozenset[str]] = {}
HANDLERS: dict[type[f.Frame], Handler] = {}


def handles(frame_type: type[f.Frame], *roles: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[frame_type] = fn
        ROLES[frame_type] = frozenset(roles)
        return fn

    return register


def may_send(role: str, frame_type: type[f.Frame]) -> bool:
    return role in ROLES.get(frame_type, frozenset())


def failure(kind: type[f.Frame], exc: Exception, ref: str | None) -> f.Error:
    """The `error` reply for a handler that raised."""
    if isinstance(exc, Refuse):
        return error(exc.code, exc.message, ref)
    tag = kind.__struct_config__.tag
    if isinstance(exc, STORAGE_DOWN_OR_RACE):
        log.warning("%s unavailable: %s", tag, type(exc).__name__)
        return error(ErrorCode.UNAVAILABLE, "storage unavailable; nothing was stored, retry", ref)
    if isinstance(exc, asyncpg.PostgresError):
        # Its text can carry the row it refused (DETAIL: Failing row contains ...): a
        # message body must never reach the log.
        log.error("handler for %s failed: %s (SQLSTATE %s)", tag, type(exc).__name__, exc.sqlstate)
    else:
        log.error("handler for %s failed", tag, exc_info=exc)
    return error(ErrorCode.INTERNAL, "something went wrong on our side; retry", ref)
