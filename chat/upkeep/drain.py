"""Shutdown: close this process's sockets in batches with jitter (on SIGTERM before uvicorn
does, so clients do not all reconnect at once), and close the backends within a bound."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import asyncpg

from chat.redisconn import RedisClient
from chat.services import Services
from protocol.codes import CloseCode

log = logging.getLogger("peerchat.app")


async def close_all(services: Services, batch: int = 200) -> None:
    """Close every socket with 1012 in batches with jitter, so clients do not all reconnect
    to the remaining processes in the same instant."""
    sessions = services.hub.all_sessions()
    random.shuffle(sessions)
    for start in range(0, len(sessions), batch):
        for session in sessions[start : start + batch]:
            session.close_soon(CloseCode.SERVER_RESTARTING, "server restarting")
        await asyncio.sleep(random.uniform(0.02, 0.1))
    deadline = time.monotonic() + 5
    while services.hub.all_sessions() and time.monotonic() < deadline:  # noqa: ASYNC110 - sockets end on their own
        await asyncio.sleep(0.05)


DRAIN_MIN_S = 1.0  # the shortest drain: /readyz says `draining` at least this long


def drain_before_exit(services: Services) -> Callable[[], None]:
    """On SIGTERM, close our sockets ourselves (1012, in batches with jitter) before handing
    the signal to uvicorn.

    Left alone, uvicorn's shutdown writes 1012 to every socket in the same instant and only
    then runs the lifespan's shutdown, so every client of this process would reconnect to
    the others at once. Here: mark the process draining (/readyz 503, new sockets refused
    with 1012), close in batches, wait for the sockets' in-flight frames to finish, then call
    uvicorn's own handler. A second SIGTERM goes straight to uvicorn. Returns a function
    that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals belong to the main thread (e.g. under a test client)
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return lambda: None  # not under uvicorn's signal capture: nothing to hand over to
    loop = asyncio.get_running_loop()
    started: list[asyncio.Task[None]] = []

    async def drain_then_exit(sig: int, frame: FrameType | None) -> None:
        began = time.monotonic()
        try:
            log.info("SIGTERM: draining %d sockets", len(services.hub.all_sessions()))
            services.draining = True
            await asyncio.wait_for(close_all(services), 8)
            # Sends still being committed hold their sockets' handlers open, and uvicorn
            # waits for those handlers next: the commits get their bound (CLOSE_S) now,
            # not after that wait too.
            await services.appender.close()
            # Keep answering /readyz 503 a moment even when the sockets went quickly, so a
            # load balancer's probe can see the drain before the listener disappears.
            await asyncio.sleep(max(0.0, DRAIN_MIN_S - (time.monotonic() - began)))
        except Exception:
            log.exception("draining failed; uvicorn closes what is left")
        finally:
            previous(sig, frame)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if started:
            previous(sig, frame)
            return

        def begin() -> None:
            started.append(loop.create_task(drain_then_exit(sig, frame), name="drain"))

        loop.call_soon_threadsafe(begin)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return restore


BACKEND_CLOSE_S = 3.0


async def close_backends(client: RedisClient, db: asyncpg.Pool[asyncpg.Record]) -> None:
    """Close the Redis client and the PostgreSQL pool, together, within BACKEND_CLOSE_S. A
    graceful close waits for the server's answer, and a hung server (SIGSTOP, a partition,
    a stuck disk) never answers: the process must still exit when told to."""

    async def close_redis() -> None:
        try:
            await asyncio.wait_for(client.aclose(), BACKEND_CLOSE_S)
        except Exception as exc:
            log.warning("Redis client not closed cleanly: %s", type(exc).__name__)

    async def close_pool() -> None:
        try:
            await asyncio.wait_for(db.close(), BACKEND_CLOSE_S)
        except Exception as exc:
            log.warning(
                "PostgreSQL pool not closed cleanly (%s); dropping its connections", type(exc).__name__
            )
            db.terminate()

    await asyncio.gather(close_redis(), close_pool())
