"""The `peerchat` command: `dev`, `serve`, `migrate`, `token`."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg

from chat import config
from chat.store import profiles
from chat.store.migrate import migrate
from chat.tokens import Role, mint

DEMO_SPECIALISTS = [
    ("spec-rosa", "Rosa", ["alcohol", "grief", "family"], ["en", "es"], 3),
    ("spec-sam", "Sam", ["opioids", "crisis", "employment"], ["en"], 2),
    ("spec-amara", "Amara", ["anxiety", "depression", "crisis"], ["en", "fr"], 3),
    ("spec-jonas", "Jonas", ["alcohol", "anxiety"], ["de", "en"], 2),
]


def event_loop() -> str:
    """uvloop, a dependency (pyproject.toml), whenever it is installed: with the message
    path's own Python cut down, the asyncio loop's (its transports' reads and writes, its
    callbacks) had become a quarter of a web process's time, and uvloop took 8-13 % off
    the web CPU per delivered message, side by side with asyncio under the same load
    (docs/performance.md, round 9; rounds 2-3 had measured no gain, when our own code was
    most of the time). Plain asyncio where it is not installed (a checkout not yet
    reinstalled): chat/ is written for either, and the in-process tests run asyncio."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def uvicorn_options(port: int, host: str | None = None) -> dict[str, Any]:
    """Shared by `serve`, `dev` and the tests, so every path serves the same way. `host`:
    an explicit choice (`--host`), else PEERCHAT_HOST, else every interface."""
    return {
        "host": host or os.environ.get("PEERCHAT_HOST") or "0.0.0.0",
        "port": port,
        "loop": event_loop(),
        # uvicorn's websockets sans-I/O protocol with direct sends (chat/gateway/wsproto.py).
        "ws": "chat.gateway.wsproto:DirectWebSocketProtocol",
        # PRODUCT.md §5: a frame over 64 KiB closes the socket with 1009.
        "ws_max_size": 64 * 1024,
        # Per-message deflate costs tens of KiB per socket; chat frames are small (see
        # docs/performance.md for the measurement).
        "ws_per_message_deflate": False,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "timeout_graceful_shutdown": 10,
        "lifespan": "on",
        "log_level": os.environ.get("PEERCHAT_LOG_LEVEL", "info"),
        # URLs can carry conversation ids and reasons; keep them out of logs. uvicorn still
        # writes WebSocket request lines through its error logger: chat/logs.py scrubs those.
        "access_log": False,
    }


def serve(port: int | None = None) -> None:
    """Production: `chat.app:asgi`, which never serves the dev routes (PRODUCT.md §3)."""
    from chat import serving

    config.from_env()  # fail fast, with a readable message, on a bad environment
    serving.run("chat.app:asgi", factory=True, **uvicorn_options(port or int(os.environ.get("PORT", "8000"))))


async def run_migrations(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def sweep_retention(url: str, retention_days: float, batch_messages: int) -> str:
    """The `release` step's retention sweep (chat/upkeep/retention.py), after the migrations."""
    from chat.upkeep import retention

    conn = await asyncpg.connect(url)
    try:
        swept = await retention.sweep(conn, retention_days, batch_messages)
    finally:
        await conn.close()
    if swept is None:
        return "retention sweep: another process is sweeping; skipped"
    return (
        f"retention sweep: {swept.conversations} conversations, {swept.messages} messages,"
        f" {swept.requests} requests swept"
    )


async def seed(url: str) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        for sid, name, tags, languages, max_chats in DEMO_SPECIALISTS:
            if await profiles.get(pool, sid) is None:
                await profiles.put(pool, sid, name=name, tags=tags, languages=languages, max_chats=max_chats)
    finally:
        await pool.close()


class Stopped(Exception):
    """SIGTERM or SIGHUP reached `peerchat dev`: unwind, so the embedded servers stop."""


def _stop_on_signals() -> None:
    """`make run` must leave no child behind on SIGINT or SIGTERM (issue 14). SIGINT raises
    KeyboardInterrupt by itself; SIGTERM's default action ends the process on the spot,
    skipping every `finally`, and uvicorn, which handles SIGTERM while it serves, raises it
    again once it has shut down. Either way the embedded PostgreSQL and Redis (in sessions
    of their own, so a Ctrl-C does not hit them before we stop them in order) were left
    running. Here SIGTERM and SIGHUP unwind like SIGINT does."""

    def stop(sig: int, frame: object) -> None:
        raise Stopped(signal.Signals(sig).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def dev(port: int, host: str = "127.0.0.1", seed_demo: bool = True) -> None:
    """Embedded servers (when their URLs are unset), migrate, seed, serve with dev mode on,
    listening on 127.0.0.1 unless told otherwise: the dev routes mint any token for anyone
    who can reach them."""
    from chat.devservers import PostgresServer, RedisServer

    _stop_on_signals()
    data = Path(os.environ.get("PEERCHAT_DEV_DATA", ".devdata")).resolve()
    servers: list[PostgresServer | RedisServer] = []
    try:
        if not os.environ.get("DATABASE_URL"):
            data.mkdir(parents=True, exist_ok=True)
            pg = PostgresServer(data / "postgres")
            servers.append(pg)  # before start(): a signal while it starts must still stop it
            pg.start()
            os.environ["DATABASE_URL"] = pg.url
            print(f"PostgreSQL 16 (embedded) on {pg.url}, data in {pg.data_dir}", flush=True)
        if not os.environ.get("REDIS_URL"):
            data.mkdir(parents=True, exist_ok=True)
            rs = RedisServer(data / "redis")
            servers.append(rs)
            rs.start()
            os.environ["REDIS_URL"] = rs.url
            print(f"Redis (embedded) on {rs.url}", flush=True)
        if not os.environ.get("PEERCHAT_JWT_SECRET") and not os.environ.get("PEERCHAT_JWT_PUBLIC_KEY"):
            data.mkdir(parents=True, exist_ok=True)
            secret_file = data / "jwt-secret"
            if not secret_file.exists():
                secret_file.write_text(secrets.token_urlsafe(48))
                secret_file.chmod(0o600)
            os.environ["PEERCHAT_JWT_SECRET"] = secret_file.read_text().strip()
        if not os.environ.get("PEERCHAT_DEV"):
            os.environ["PEERCHAT_DEV"] = "1"
        settings = config.from_env()
        asyncio.run(run_migrations(settings.session_database_url))
        if seed_demo:
            asyncio.run(seed(settings.database_url))
        base = f"http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{port}"
        print("\npeerchat is starting. Open:")
        if settings.dev:
            print(f"  dev login   {base}/login")
        print(f"  member      {base}/member")
        print(f"  specialist  {base}/specialist")
        print(f"  supervisor  {base}/supervisor")
        if settings.dev and settings.jwt_secret:
            print("\nReady-made dev tokens (for the WebSocket `hello` or `Authorization: Bearer`):")
            demo: list[tuple[Role, str, str]] = [
                ("member", "member-demo", "Sam"),
                ("specialist", "spec-rosa", "Rosa"),
                ("supervisor", "supervisor-demo", "Lee"),
            ]
            for role, sub, name in demo:
                print(f"  {role:<10}  {mint(settings, sub=sub, role=role, name=name)}")
        print("\nCtrl-C stops the service and the servers.\n", flush=True)
        from chat import serving

        serving.run("chat.app:asgi_dev", factory=True, **uvicorn_options(port, host))
    except Stopped:
        pass
    finally:
        # A second signal while we stop the servers must not cut the stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for server in reversed(servers):
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="peerchat", description="peer-support chat service")
    sub = parser.add_subparsers(dest="command", required=True)
    p_dev = sub.add_parser("dev", help="serve with embedded PostgreSQL and Redis (when their URLs are unset)")
    p_dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p_dev.add_argument(
        "--host",
        default=os.environ.get("PEERCHAT_HOST") or "127.0.0.1",
        help="address to listen on (default 127.0.0.1: the dev routes mint tokens for anyone)",
    )
    p_dev.add_argument("--no-seed", action="store_true", help="do not add the demo specialists")
    p_serve = sub.add_parser("serve", help="serve the app with uvicorn on $PORT")
    p_serve.add_argument("--port", type=int, default=None)
    sub.add_parser("migrate", help="apply database migrations, then the retention sweep (both idempotent)")
    p_token = sub.add_parser("token", help="mint a development JWT with PEERCHAT_JWT_SECRET")
    p_token.add_argument("--role", required=True, choices=["member", "specialist", "supervisor"])
    p_token.add_argument("--sub", required=True)
    p_token.add_argument("--name", default=None)
    p_token.add_argument("--ttl", type=int, default=12 * 3600)
    args = parser.parse_args(argv)
    try:
        if args.command == "dev":
            dev(args.port, args.host, seed_demo=not args.no_seed)
        elif args.command == "serve":
            serve(args.port)
        elif args.command == "migrate":
            # Migrations and the sweep hold session advisory locks: PostgreSQL itself, not a
            # transaction pooler (docs/scaling.md).
            url = os.environ.get("PEERCHAT_DATABASE_DIRECT_URL") or os.environ.get("DATABASE_URL")
            if not url:
                raise config.ConfigError("DATABASE_URL must be set")
            # Read before anything runs: a bad retention stops the release step unchanged.
            days, batch = config.retention_days(), config.retention_batch_messages()
            applied = asyncio.run(run_migrations(url))
            print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"), flush=True)
            print(asyncio.run(sweep_retention(url, days, batch)), flush=True)
        elif args.command == "token":
            # Neither is reached: only the token settings are read (a placeholder of the right form).
            settings = config.from_env({**os.environ, "DATABASE_URL": "-", "REDIS_URL": "redis://unused"})
            if not 0 < args.ttl <= settings.max_token_ttl_s:
                # The service would refuse it: say so now rather than with a 4001 later.
                raise config.ConfigError(
                    f"--ttl must be from 1 to PEERCHAT_MAX_TOKEN_TTL_S ({settings.max_token_ttl_s:g} s)"
                )
            print(mint(settings, sub=args.sub, role=args.role, name=args.name, ttl_s=args.ttl))
    except config.ConfigError as exc:
        print(f"peerchat: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
