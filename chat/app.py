"""`create_app()`: the Starlette application, its routes, and the lifespan that opens and
closes everything one `web` process holds (the jobs themselves live in chat/upkeep/)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
from collections.abc import AsyncIterator

import asyncpg
from redis.asyncio.cluster import RedisCluster
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from chat import config, handoff, logs, redisconn
from chat.admission import Admission
from chat.bus import Bus
from chat.bus_cluster import ClusterBus
from chat.bus_redis import RedisBus
from chat.delivery import send
from chat.delivery.hub import POKE_CHANNEL, Hub
from chat.gateway.endpoint import websocket_endpoint
from chat.matchmaker import Matchmaker
from chat.metrics import METRICS
from chat.presence_redis import RedisPresence
from chat.redis_keys import identity_key
from chat.revocations import CHANNEL as REVOCATIONS_CHANNEL
from chat.revocations import Revocations
from chat.safety import risk_watch
from chat.safety.monitoring import CHANNEL as MONITORS_CHANNEL
from chat.seal import Sealer, seal_key
from chat.services import RESTATE_STATS, Services
from chat.socket_cap import SocketCap
from chat.store import wrap_up
from chat.store.appender import Appender
from chat.store.db import open_pool
from chat.upkeep import retention
from chat.upkeep.drain import close_all, close_backends, drain_before_exit
from chat.upkeep.grace import ReconnectGrace
from chat.upkeep.heartbeat import heartbeat_once, heartbeats
from chat.upkeep.loop_lag import watch_loop_lag
from chat.upkeep.member_grace import MemberGrace
from chat.web import (
    audit,
    boundaries,
    conversations,
    crisis,
    dev,
    feedback,
    health,
    languages,
    me,
    revocations,
    specialists,
    stats,
    transcripts,
    transfers,
)
from chat.web.common import HttpRefusal
from chat.web.pages import STATIC, index, page
from chat.web.ratelimit import SupervisorRateLimit
from chat.web.security_headers import SecurityHeaders

log = logging.getLogger("peerchat.app")


async def _connect_db(
    url: str, attempts: int = 60, *, behind_pooler: bool = False
) -> asyncpg.Pool[asyncpg.Record]:
    for attempt in range(attempts):
        try:
            return await open_pool(url, behind_pooler=behind_pooler)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if attempt == attempts - 1:
                raise
            log.warning("PostgreSQL not reachable (%s); retrying", type(exc).__name__)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings = app.state.settings
    wrap_up.configure(settings.wrap_up_s, settings.wrap_up_urgent_s)
    db = await _connect_db(settings.database_url, behind_pooler=settings.behind_pooler)
    topology = redisconn.parse(settings.redis_url)
    client = redisconn.client(topology)
    bus = _bus(topology, client, settings)
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
        admission=Admission(settings, Revocations(db, bus, settings), SocketCap(client, settings)),
    )
    matchmaker = Matchmaker(services)
    services.wake_matchmaker = matchmaker.poke
    services.restate_matchmaker_stats = matchmaker.restate_stats
    services.queue_position = matchmaker.queue_position
    app.state.services = services
    history = stats.StatsHistory()
    app.state.stats_history = history

    def on_bus(channel: str, data: bytes) -> None:
        if channel == POKE_CHANNEL:
            if data == RESTATE_STATS:
                matchmaker.restate_stats()
            else:
                matchmaker.poke()
        elif channel == REVOCATIONS_CHANNEL:
            services.admission.revocations.on_bus(data)
        elif channel == MONITORS_CHANNEL:
            monitors_changed.set()
        elif channel == handoff.PARTICIPANTS_CHANNEL:
            handoff.on_bus(services, data)
        else:
            hub.on_bus(channel, data)

    async def on_reconnect(only: frozenset[str] | None = None) -> None:
        # `only`: a cluster bus brought back some partitions; the people on others lost
        # nothing. The rest is cheap and done whatever was touched.
        METRICS.bus_reconnects.inc()
        hub.bus_reconnected(only)
        hub.catch_up_everyone(only)
        services.admission.revocations.on_bus(b"")  # rings may have been lost meanwhile
        services.participants.clear()  # ... a transfer's among them (chat/handoff.py)
        await heartbeat_once(services)
        matchmaker.poke()

    monitors_changed = asyncio.Event()
    await bus.start(on_bus, on_reconnect)
    await bus.subscribe(MONITORS_CHANNEL)
    await bus.subscribe(handoff.PARTICIPANTS_CHANNEL)
    await services.admission.start()
    matchmaker.start()
    tasks = [
        asyncio.create_task(heartbeats(services), name="presence-heartbeats"),
        asyncio.create_task(history.run(services), name="stats-history"),
        asyncio.create_task(ReconnectGrace(services).run(), name="reconnect-grace"),
        asyncio.create_task(MemberGrace(services).run(), name="member-grace"),
        asyncio.create_task(watch_loop_lag(), name="loop-lag"),
        asyncio.create_task(services.monitors.run(db, monitors_changed), name="monitor-mirror"),
        asyncio.create_task(retention.run_forever(settings), name="retention-sweep"),
    ]
    restore_signals = drain_before_exit(services)
    try:
        yield
    finally:
        restore_signals()
        services.draining = True
        await close_all(services)
        for task in tasks:
            task.cancel()
        await matchmaker.stop()
        await services.admission.stop()
        # Sends still being committed ring their fan-out when they commit: the bus must
        # still be there.
        await services.appender.close()
        await send.settle()
        await risk_watch.settle()
        await bus.close()
        await close_backends(client, db)


def _bus(topology: redisconn.RedisTopology, client: redisconn.RedisClient, settings: config.Settings) -> Bus:
    """One Redis: the bare RESP bus (its fast path). Sentinel: the same, asking the sentinels
    where the master is before each connect. Cluster: sharded pub/sub over partitions."""
    if topology.kind == "cluster":
        assert isinstance(client, RedisCluster)
        bus = ClusterBus(topology, client, settings.bus_partitions)
        METRICS.rings_published.set_function(lambda: bus.rings_published)
        METRICS.rings_heard.set_function(lambda: bus.rings_heard)
        METRICS.rings_for_others.set_function(lambda: bus.rings_for_others)
        METRICS.partitions_heard.set_function(lambda: len(bus.subscribed_partitions()))
        return bus
    if topology.kind == "sentinel":
        return RedisBus(resolve=redisconn.MasterResolver(topology))
    return RedisBus(topology.url)


class PeerchatApp(Starlette):
    """Starlette, with `/ws` served without the middleware stack: a socket's ASGI call lasts
    as long as the socket, and each layer it passes through (the error and exception
    middleware, the security headers and rate limit, which let websockets through untouched,
    the router and the route's wrappers) stays parked in it, about 5 KiB of coroutine frames
    per idle socket (issue 20). The endpoint catches what it raises itself; what a route
    would add for a websocket (WebSocketException handlers) it does not use. Any other path,
    and `/ws` under a root path, goes through the stack as before."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self
            await websocket_endpoint(WebSocket(scope, receive=receive, send=send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: config.Settings | None = None) -> Starlette:
    settings = settings or config.from_env()
    app = PeerchatApp(
        routes=[
            Route("/", index),
            Route("/healthz", health.healthz),
            Route("/readyz", health.readyz),
            Route("/metrics", health.metrics),
            Route("/api/specialists", specialists.list_specialists, methods=["GET"]),
            Route("/api/specialists/me", specialists.my_profile, methods=["GET"]),
            Route("/api/specialists/{specialist_id}", specialists.put_specialist, methods=["PUT"]),
            Route(
                "/api/specialists/{specialist_id}/status", specialists.put_specialist_status, methods=["PUT"]
            ),
            Route("/api/stats", stats.stats, methods=["GET"]),
            Route("/api/stats/history", stats.stats_history, methods=["GET"]),
            Route(
                "/api/conversations/{conversation_id}/messages",
                transcripts.conversation_messages,
                methods=["GET"],
            ),
            Route(
                "/api/conversations/{conversation_id}/transfer-targets",
                transfers.transfer_targets,
                methods=["GET"],
            ),
            Route("/api/audit", audit.audit_log, methods=["GET"]),
            Route("/api/conversations", conversations.list_conversations, methods=["GET"]),
            Route("/api/audit.csv", audit.audit_csv, methods=["GET"]),
            Route("/api/feedback", feedback.feedback_by_week, methods=["GET"]),
            Route("/api/revocations", revocations.post_revocation, methods=["POST"]),
            Route("/api/blocks", boundaries.list_blocks, methods=["GET"]),
            Route("/api/blocks/{block_id}", boundaries.lift_block, methods=["DELETE"]),
            Route("/api/reports", boundaries.list_reports, methods=["GET"]),
            Route(
                "/api/members/{member_id}/suspension",
                boundaries.put_suspension,
                methods=["PUT"],
            ),
            Route(
                "/api/members/{member_id}/suspension",
                boundaries.delete_suspension,
                methods=["DELETE"],
            ),
            Route("/api/me/export", me.export_me, methods=["GET"]),
            Route("/api/me", me.erase_me, methods=["DELETE"]),
            Route("/api/languages", languages.languages, methods=["GET"]),
            Route("/api/crisis-resources", crisis.crisis_resources, methods=["GET"]),
            page("member"),
            page("specialist"),
            page("supervisor"),
            # The dev routes exist only in dev mode: `peerchat serve` has no such routes at all.
            *(
                [Route("/dev/token", dev.dev_token, methods=["POST"]), page("login", dev_only=True)]
                if settings.dev
                else []
            ),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        # Outermost first: a 429 from the rate limit carries the security headers too.
        middleware=[Middleware(SecurityHeaders), Middleware(SupervisorRateLimit)],
        exception_handlers={HttpRefusal: _refusal},  # type: ignore[dict-item]
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


async def _refusal(request: Request, exc: HttpRefusal) -> Response:
    return exc.response


def asgi() -> Starlette:
    """The factory `peerchat serve` runs (`uvicorn --factory chat.app:asgi`). Never dev mode:
    `/login` and `/dev/token` answer 404 whatever PEERCHAT_DEV says (PRODUCT.md §3), though a
    malformed PEERCHAT_DEV still stops the process (config.from_env)."""
    return _served(dataclasses.replace(config.from_env(), dev=False))


def asgi_dev() -> Starlette:
    """The factory `peerchat dev` runs: dev mode as PEERCHAT_DEV says."""
    return _served(config.from_env())


def _served(settings: config.Settings) -> Starlette:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logs.install()
    app = create_app(settings)
    # Everything imported so far lives as long as the process: move it out of the collector's
    # sight, and collect the young generation less often. A profile under load showed 19 % of
    # a web process in the collector; this took 12 % off its CPU per message (performance.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return app
