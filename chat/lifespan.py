"""`lifespan`: everything one `web` process holds, opened in order at start and closed in
order at exit (PostgreSQL's pool, Redis's client and bus, the hub, presence, admission, the
matchmaker and the background jobs, which themselves live in chat/upkeep/), and the bus's
rings dispatched to whoever listens on each channel. chat/app.py hands it to Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from redis.asyncio.cluster import RedisCluster
from starlette.applications import Starlette

from chat import config, handoff, redisconn, ticks
from chat.admission import Admission
from chat.bus import Bus
from chat.bus_cluster import ClusterBus
from chat.bus_redis import RedisBus
from chat.delivery import send
from chat.delivery.hub import POKE_CHANNEL, Hub
from chat.matchmaker import Matchmaker
from chat.metrics import METRICS
from chat.presence_redis import RedisPresence
from chat.privacy import forgetting
from chat.process_lease import ProcessLease
from chat.redis_keys import namer
from chat.revocations import CHANNEL as REVOCATIONS_CHANNEL
from chat.revocations import Revocations
from chat.safety import risk_watch
from chat.safety.monitoring import CHANNEL as MONITORS_CHANNEL
from chat.seal import Sealer, seal_key
from chat.services import QUEUE_WATCHED, RESTATE_STATS, Services
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
from chat.web import stats

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
    name = namer(settings)
    # One lease for the process: presence and the socket cap count its sockets under it.
    lease = ProcessLease(client, settings.presence_ttl_s)
    hub = Hub(bus, name, Sealer(seal_key(settings.identity_hmac_key)))
    services = Services(
        settings=settings,
        db=db,
        redis=client,
        bus=bus,
        hub=hub,
        presence=RedisPresence(client, settings.presence_ttl_s, name, lease),
        appender=Appender(db),
        admission=Admission(settings, Revocations(db, bus, settings), SocketCap(client, settings, lease)),
    )
    matchmaker = Matchmaker(services)
    services.wake_matchmaker = matchmaker.poke
    services.restate_matchmaker_stats = matchmaker.restate_stats
    services.queue_watched_here = matchmaker.queue_watched
    services.queue_position = matchmaker.queue_position
    app.state.services = services
    history = stats.StatsHistory()
    app.state.stats_history = history

    def on_bus(channel: str, data: bytes) -> None:
        if channel == POKE_CHANNEL:
            if data == RESTATE_STATS:
                matchmaker.restate_stats()
            elif data == QUEUE_WATCHED:
                matchmaker.queue_watched()
            else:
                matchmaker.poke()
        elif channel == REVOCATIONS_CHANNEL:
            services.admission.revocations.on_bus(data)
        elif channel == MONITORS_CHANNEL:
            monitors_changed.set()
        elif channel == handoff.PARTICIPANTS_CHANNEL:
            handoff.on_bus(services, data)
        elif channel == forgetting.CHANNEL:
            forgetting.on_bus(services, data)
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
        lease.suspect()  # a failover may have lost the last writes: presence and caps rewrite
        await heartbeat_once(services)
        # The leader stops building the queue once a publish of it reached no process
        # (chat/delivery/watchers.py), and one made while the watchers' processes were
        # away did: it must hear the queue is watched again, or they wait for its 10 s
        # resend. Here: send it once more (its answer says whether anyone listens); a
        # process with watchers tells the leader, wherever it is.
        if hub.queue_watchers:
            await services.queue_watched()
        else:
            matchmaker.queue_watched()
        # The same for queue_stats, which the leader stops building while nobody listens.
        if hub.stats_watchers:
            await services.restate_stats()

    monitors_changed = asyncio.Event()
    await bus.start(on_bus, on_reconnect)
    await bus.subscribe(MONITORS_CHANNEL)
    await bus.subscribe(handoff.PARTICIPANTS_CHANNEL)
    await bus.subscribe(forgetting.CHANNEL)
    await services.admission.start()
    matchmaker.start()
    tasks = [
        asyncio.create_task(heartbeats(services), name="presence-heartbeats"),
        asyncio.create_task(history.run(services), name="stats-history"),
        asyncio.create_task(ReconnectGrace(services).run(), name="reconnect-grace"),
        asyncio.create_task(MemberGrace(services).run(), name="member-grace"),
        asyncio.create_task(services.monitors.run(db, monitors_changed), name="monitor-mirror"),
        asyncio.create_task(retention.run_forever(settings), name="retention-sweep"),
    ]
    if not ticks.ticking(asyncio.get_running_loop()):
        # Served other than by chat/serving.py: no tick reads the loop's lag, a timer does.
        tasks.append(asyncio.create_task(watch_loop_lag(), name="loop-lag"))
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
