"""Real servers for the tests: one PostgreSQL and one Redis per test session (the same
launcher `make run` uses), a fresh database per test cloned from a migrated template, and
`LiveService`: `peerchat serve` in a real process on a real port."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from chat.devservers import PostgresServer, RedisServer, free_port

JWT_SECRET = "test-secret-" + "x" * 40
TEMPLATE_DB = "peerchat_template"


@dataclass
class Servers:
    pg: PostgresServer
    redis: RedisServer

    def db_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/{name}"


async def make_template(servers: Servers) -> None:
    from chat.store.migrate import migrate

    admin = await asyncpg.connect(servers.pg.url)
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE_DB):
            await admin.execute(f"ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE false")
            await admin.execute(f"DROP DATABASE {TEMPLATE_DB}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(servers.db_url(TEMPLATE_DB))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    # CREATE DATABASE ... TEMPLATE fails ("source database is being accessed by other
    # users") while anyone is connected to the template: the migration's own backend for a
    # moment after close() (it exits asynchronously), or autovacuum, which visits the
    # freshly written template a minute later. Nobody may connect to it from now on, and
    # the first test waits for nobody to be.
    admin = await asyncpg.connect(servers.pg.url)
    try:
        await admin.execute(f"ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
        deadline = time.monotonic() + 30
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", TEMPLATE_DB):
            assert time.monotonic() < deadline, "a session on the template database never left"
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def fresh_database(servers: Servers) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(servers.pg.url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await admin.close()
    return servers.db_url(name)


def service_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PEERCHAT_JWT_SECRET=JWT_SECRET,
        PEERCHAT_DEV="1",
        PEERCHAT_HOST="127.0.0.1",
        PEERCHAT_LOG_LEVEL="warning",
        # Wrap-up (PRODUCT.md §8) would hold a specialist for 2-10 minutes after every end;
        # tests that are not about it run with a wrap-up too short to notice.
        PEERCHAT_WRAP_UP_S="0.001",
        PEERCHAT_WRAP_UP_URGENT_S="0.001",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class LiveService:
    """`peerchat serve` (or, with `command="dev"`, `peerchat dev`: the dev routes, no demo
    seed) in its own process. `log` collects its output for assertions (no message body or
    token may ever appear there)."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    command: str = "serve"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 30) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chat.cli",
                self.command,
                "--port",
                str(self.port),
                *(["--no-seed"] if self.command == "dev" else []),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.http + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, http.client.HTTPException):  # not listening yet, or cut off mid-start
                pass
            time.sleep(0.05)
        raise RuntimeError(f"service did not start within {timeout} s: {self.log_path.read_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        return self._wait_or_kill(timeout)

    def begin_drain(self) -> None:
        """SIGTERM: the process starts its drain (chat/upkeep/drain.py)."""
        self.signal(signal.SIGTERM)

    def end_drain(self, timeout: float = 20) -> int | None:
        """After `begin_drain`: once the drain has begun (/readyz 503 or the listener gone),
        a second SIGTERM goes straight to uvicorn's shutdown, which still runs the whole
        lifespan shutdown, without holding /readyz 503 for a load balancer's probe
        (DRAIN_MIN_S, a second per process) that no test is there to see."""
        if self.proc is None:
            return None
        deadline = time.monotonic() + 5
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.http + "/readyz", timeout=1):
                    pass
            except urllib.error.HTTPError as e:
                if e.code == 503:
                    break
            except OSError:
                break
            time.sleep(0.02)
        self.signal(signal.SIGTERM)
        return self._wait_or_kill(timeout)

    def _wait_or_kill(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_quickly(services: Iterable[LiveService]) -> None:
    """A test's processes at its end, all at once: each drains and shuts down as on any
    SIGTERM, but none holds its one-second load-balancer drain (see `end_drain`). Tests
    about the drain itself call `LiveService.stop()`."""
    running = [svc for svc in services if svc.proc is not None and svc.proc.poll() is None]
    for svc in running:
        svc.begin_drain()
    for svc in running:
        svc.end_drain()


async def wait_until(predicate: object, timeout: float = 10, every: float = 0.05) -> None:
    """Wait for an async or plain predicate to become true."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)
