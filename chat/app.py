"""`create_app()`: the Starlette application, its routes, and the lifespan that opens and
closes everything one `web` process holds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import asyncpg
import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat import config, dispatch, http_api, views, welcome
from chat.bus_redis import RedisBus
from chat.gateway import websocket_endpoint
from chat.grace import ReconnectGrace
from chat.hub import POKE_CHANNEL, Hub
from chat.matchmaker import Matchmaker
from chat.metrics import METRICS
from chat.presence_redis import RedisPresence
from chat.redis_keys import identity_key
from chat.seal import Sealer, seal_key
from chat.services import Services
from chat.session import CatchUp, Outbound
from chat.store import conversations
from chat.store.appender import Appender
from chat.store.db import open_pool
from protocol import frames as f
from protocol.codec import encode
from protocol.codes import CloseCode

log = logging.getLogger("peerchat.app")
STATIC = Path(__file__).parent / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Every HTTP response carries a strict CSP; pages hold health information, so no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(name: str, dev_only: bool = False) -> Route:
    async def page(request: Request) -> Response:
        if dev_only and not request.app.state.services.settings.dev:
            return Response("not found", status_code=404)
        return FileResponse(STATIC / f"{name}.html", media_type="text/html")

    return Route(f"/{name}", page, methods=["GET"])


async def _index(request: Request) -> Response:
    return RedirectResponse("/login" if request.app.state.services.settings.dev else "/member")


async def _connect_db(url: str, attempts: int = 60) -> asyncpg.Pool[asyncpg.Record]:
    for attempt in range(attempts):
        try:
            return await open_pool(url)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if attempt == attempts - 1:
                raise
            log.warning("PostgreSQL not reachable (%s); retrying", type(exc).__name__)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings = app.state.settings
    db = await _connect_db(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    bus = RedisBus(settings.redis_url)
    name = functools.partial(identity_key, settings)
    hub = Hub(bus, name, Sealer(seal_key(settings.identity_hmac_key)))
    services = Services(
        settings=settings,
        db=db,
        redis=client,
        bus=bus,
        hub=hub,
        presence=RedisPresence(client, settings.presence_ttl_s, name),
        appender=Appender(db),
    )
    services.matchmaker = Matchmaker(services)
    app.state.services = services
    history = http_api.StatsHistory()
    app.state.stats_history = history

    def on_bus(channel: str, data: bytes) -> None:
        if channel == POKE_CHANNEL:
            if services.matchmaker is not None:
                services.matchmaker.poke()
        else:
            hub.on_bus(channel, data)

    async def on_reconnect() -> None:
        METRICS.bus_reconnects.inc()
        hub.bus_reconnected()
        hub.catch_up_everyone()
        await _heartbeat_once(services)
        if services.matchmaker is not None:
            services.matchmaker.poke()

    await bus.start(on_bus, on_reconnect)
    services.matchmaker.start()
    tasks = [
        asyncio.create_task(_heartbeats(services), name="presence-heartbeats"),
        asyncio.create_task(history.run(services), name="stats-history"),
        asyncio.create_task(ReconnectGrace(services).run(), name="reconnect-grace"),
        asyncio.create_task(_watch_loop_lag(), name="loop-lag"),
    ]
    restore_signals = _drain_before_exit(services)
    try:
        yield
    finally:
        restore_signals()
        services.draining = True
        await _close_all(services)
        for task in tasks:
            task.cancel()
        await services.matchmaker.stop()
        # Sends still being committed ring their fan-out when they commit: the bus must
        # still be there.
        await services.appender.close()
        await dispatch.settle()
        await bus.close()
        await _close_backends(client, db)


BACKEND_CLOSE_S = 3.0


async def _close_backends(client: redis.Redis, db: asyncpg.Pool[asyncpg.Record]) -> None:
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


async def _heartbeat_once(services: Services) -> None:
    leases = [(s.user_id, s.role, s.id) for s in services.hub.all_sessions()]
    await services.presence.heartbeat(leases, time.time())


async def _repair_once(services: Services) -> None:
    """Anti-entropy: compare what each socket was sent with PostgreSQL's last seq, and with
    whether the conversation has ended."""
    watched = services.hub.watched_conversations()
    repaired = 0
    if watched:
        found = await conversations.get_many(services.db, list(watched))
        repaired += services.hub.repair({c.id: c.last_seq for c in found})
        settled = datetime.now(UTC) - timedelta(seconds=5)  # the doorbell had its chance
        repaired += _repair_ends(
            services, [c for c in found if c.ended_at is not None and c.ended_at < settled]
        )
    repaired += await _repair_starts(services)
    if repaired:
        METRICS.repairs.inc(repaired)


def _repair_ends(services: Services, ended: list[conversations.Conversation]) -> int:
    """A `conversation_ended` rung while Redis was down never reached sockets on other
    processes: the member would go on typing into a closed conversation."""
    told = 0
    for conv in ended:
        for person in conv.participants:
            for session in list(services.hub.sessions_of(person)):
                if conv.id in session.seen and conv.id not in session.ended:
                    session.deliver(CatchUp(conv.id))
                    session.deliver(welcome.ended_outbound(conv))
                    told += 1
    return told


async def _repair_starts(services: Services) -> int:
    """A `conversation_started` rung while Redis was down never reached the other
    participant's sockets on other processes: the member would wait on, not knowing they
    had been matched. Tell any socket of a participant that does not know the conversation
    (started over 5 s ago, so the doorbell had its chance; and within five minutes, as
    older ones were either repaired by an earlier round or in the socket's `welcome`), then
    catch it up."""
    if not services.hub.sessions:
        return 0
    started = await conversations.recently_started(services.db, between_s=(5, 300))
    told = 0
    for conv in started:
        frame = encode(f.ConversationStarted(conversation=views.conversation_info(conv)))
        for person in conv.participants:
            for session in list(services.hub.sessions_of(person)):
                if conv.id not in session.seen:
                    session.deliver(Outbound(frame, conv.id, None, True))
                    session.deliver(CatchUp(conv.id))
                    told += 1
    return told


async def _heartbeats(services: Services) -> None:
    """Every TTL/3: renew this process's presence leases, and repair delivery gaps."""
    while True:
        await asyncio.sleep(services.settings.presence_ttl_s / 3)
        try:
            await _heartbeat_once(services)
        except Exception as exc:
            log.warning("presence heartbeat failed: %s", type(exc).__name__)
        try:
            await _repair_once(services)
        except Exception as exc:
            log.warning("delivery repair skipped: %s", type(exc).__name__)


LAG_INTERVAL_S = 0.1


async def _watch_loop_lag() -> None:
    """How late a timer fires is how long every socket of this process waited behind other
    work (a stall in the loop is latency for all of them). Observed into
    `peerchat_event_loop_lag_seconds`; a stall over 250 ms is also logged."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_INTERVAL_S
        await asyncio.sleep(LAG_INTERVAL_S)
        lag = max(0.0, loop.time() - due)
        METRICS.loop_lag.observe(lag)
        if lag > 0.25:
            log.warning("event loop stalled %.0f ms", lag * 1000)


async def _close_all(services: Services, batch: int = 200) -> None:
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


def _drain_before_exit(services: Services) -> Callable[[], None]:
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
            await asyncio.wait_for(_close_all(services), 8)
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


def create_app(settings: config.Settings | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", _index),
            Route("/healthz", http_api.healthz),
            Route("/readyz", http_api.readyz),
            Route("/metrics", http_api.metrics),
            Route("/api/specialists", http_api.list_specialists, methods=["GET"]),
            Route("/api/specialists/me", http_api.my_profile, methods=["GET"]),
            Route("/api/specialists/{specialist_id}", http_api.put_specialist, methods=["PUT"]),
            Route("/api/stats", http_api.stats, methods=["GET"]),
            Route("/api/stats/history", http_api.stats_history, methods=["GET"]),
            Route(
                "/api/conversations/{conversation_id}/messages",
                http_api.conversation_messages,
                methods=["GET"],
            ),
            Route("/api/audit", http_api.audit_log, methods=["GET"]),
            Route("/api/crisis-resources", http_api.crisis_resources, methods=["GET"]),
            Route("/dev/token", http_api.dev_token, methods=["POST"]),
            _page("member"),
            _page("specialist"),
            _page("supervisor"),
            _page("login", dev_only=True),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={http_api.HttpRefusal: _refusal},  # type: ignore[dict-item]
        lifespan=lifespan,
    )
    app.state.settings = settings or config.from_env()
    return app


async def _refusal(request: Request, exc: http_api.HttpRefusal) -> Response:
    return exc.response


def asgi() -> Starlette:
    """The factory uvicorn serves (`uvicorn --factory chat.app:asgi`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app()
    # Everything imported so far lives as long as the process: move it out of the collector's
    # sight, and collect the young generation less often. A profile under load showed 19 % of
    # a web process in the collector; this took 12 % off its CPU per message (performance.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return app
