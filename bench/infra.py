"""What a benchmark run stands on: real PostgreSQL and Redis, seeded conversations, the
server processes under test, and CPU/RSS readings of every process involved."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

from bench import pglog
from bench.stats import Times, tree_cpu_seconds
from chat.config import Settings
from chat.devservers import PostgresServer, RedisServer, free_port
from chat.store.migrate import migrate
from chat.tokens import mint

JWT_SECRET = "bench-secret-" + "b" * 40
TOKENS = Settings(database_url="-", redis_url="-", jwt_secret=JWT_SECRET)
ROOT = Path(__file__).resolve().parent.parent


def wait_for_quiet(watched: list[Watched], max_other_pct: float, timeout: float) -> float:
    """Wait (up to `timeout`) until processes we do not run use less than `max_other_pct`
    of one core; returns the last reading."""
    deadline = time.monotonic() + timeout
    other = 0.0
    while True:
        meter = CpuMeter(watched)
        meter.start()
        time.sleep(1.0)
        other = float(meter.stop()["other_cpu_pct"])  # type: ignore[arg-type]
        if other < max_other_pct or time.monotonic() > deadline:
            return other


def raise_nofile_limit() -> int:
    """Raise the soft limit on open files to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def rate_limit_is_configurable() -> bool:
    """Whether this checkout lets the environment raise the per-socket flood guard."""
    return "PEERCHAT_RATE_LIMIT_PER_10S" in (ROOT / "chat" / "config.py").read_text()


# ---------------------------------------------------------------------------- data


@dataclass
class Backends:
    """One PostgreSQL (durable: fsync on, as in production) and one Redis, for the run."""

    data: Path
    pg: PostgresServer = field(init=False)
    redis: RedisServer = field(init=False)

    def start(self) -> None:
        # Its autovacuum runs and checkpoints logged: bench/pglog.py reads which of them
        # overlapped each step's measured window.
        self.pg = PostgresServer(self.data / "postgres", durable=True, settings=list(pglog.SETTINGS))
        self.pg.start()
        self.redis = RedisServer(None)
        self.redis.start()
        asyncio.run(_migrate(self.pg.url))

    @property
    def pg_log(self) -> Path:
        return self.data / f"postgres-{self.pg.port}.log"  # where chat/devservers writes it

    def stop(self) -> None:
        for server in (getattr(self, "redis", None), getattr(self, "pg", None)):
            if server is not None:
                server.stop()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")}
        env.update(
            DATABASE_URL=self.pg.url,
            REDIS_URL=self.redis.url,
            PEERCHAT_JWT_SECRET=JWT_SECRET,
            PEERCHAT_HOST="127.0.0.1",
            PEERCHAT_LOG_LEVEL="warning",
            PYTHONUNBUFFERED="1",
        )
        if rate_limit_is_configurable():
            env["PEERCHAT_RATE_LIMIT_PER_10S"] = "100000"
        env.update(extra)
        return env


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    member_id: str
    specialist_id: str


def seed_conversations(url: str, count: int) -> list[Conversation]:
    """`count` active conversations, each between its own member and its own specialist,
    written straight into the tables (the matching path is not what this measures)."""

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO specialists (id, name, max_chats, status, active_chats)
                       SELECT 'bench-s' || i, 'Specialist ' || i, 1, 'away', 1
                       FROM generate_series(1, $1) AS i ON CONFLICT (id) DO NOTHING""",
                    count,
                )
                await conn.execute(
                    """INSERT INTO conversations
                           (id, member_id, member_alias, specialist_id, specialist_name)
                       SELECT 'bench-c' || i, 'bench-m' || i, 'Member ' || i,
                              'bench-s' || i, 'Specialist ' || i
                       FROM generate_series(1, $1) AS i ON CONFLICT (id) DO NOTHING""",
                    count,
                )
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())
    return [Conversation(f"bench-c{i}", f"bench-m{i}", f"bench-s{i}") for i in range(1, count + 1)]


def hello(sub: str, role: str, name: str) -> str:
    token = mint(TOKENS, sub=sub, role=role, name=name)  # type: ignore[arg-type]
    return '{"type":"hello","token":"' + token + '"}'


# ---------------------------------------------------------------------------- servers


@dataclass
class ServerProcess:
    """`python -m bench.serve` (peerchat) or `python -m bench.relay` on its own port."""

    module: str
    env: dict[str, str]
    log_path: Path
    deflate: bool = False
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> None:
        args = [sys.executable, "-m", self.module, "--port", str(self.port)]
        if self.deflate:
            args.append("--deflate")
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited: {self.log_path.read_text()[-3000:]}")
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.module} did not start within {timeout} s")

    def _ready(self) -> bool:
        if self.module == "bench.relay":
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


# ---------------------------------------------------------------------------- readings


@dataclass
class Watched:
    """A named process (with its children, for PostgreSQL) whose CPU time we read."""

    name: str
    pid: int
    children: bool = False

    def _procs(self) -> list[psutil.Process]:
        try:
            procs = [psutil.Process(self.pid)]
            if self.children:
                procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return procs

    def cpu_seconds(self) -> float:
        """CPU seconds so far; for a tree (PostgreSQL), the postmaster, every live backend
        and every backend already reaped (bench/stats.py, `tree_cpu_seconds`)."""
        try:
            root = psutil.Process(self.pid)
            # The root first: a backend that exits after this reading loses only its
            # last moments, where reading it first could count its whole life twice.
            t = root.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        if not self.children:
            return float(t.user + t.system)
        live: list[Times] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    c = child.cpu_times()
                    live.append(Times(c.user, c.system))
        return tree_cpu_seconds(Times(t.user, t.system, t.children_user, t.children_system), live)

    def wait_seconds(self) -> float:
        """Time the process's threads spent runnable but waiting for a core
        (/proc/<pid>/task/<tid>/schedstat, second field), summed over children too."""
        total = 0
        for p in self._procs():
            for task in Path(f"/proc/{p.pid}/task").glob("*/schedstat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int(task.read_text().split()[1])
        return total / 1e9

    def rss(self) -> int:
        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0


class CpuMeter:
    """CPU use of each watched process, and of the whole machine, between start and stop."""

    def __init__(self, watched: list[Watched]) -> None:
        self.watched = watched
        self._t0 = 0.0
        self._cpu0: dict[str, float] = {}
        self._wait0: dict[str, float] = {}
        self._machine0: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(busy, total) CPU seconds of the machine; guest time is already inside user."""
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq + t.steal
        return busy, busy + t.idle + t.iowait

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {w.name: w.cpu_seconds() for w in self.watched}
        self._wait0 = {w.name: w.wait_seconds() for w in self.watched}
        self._machine0 = self._machine()

    def stop(self) -> dict[str, object]:
        wall = time.monotonic() - self._t0
        busy, total = self._machine()
        used = {w.name: w.cpu_seconds() - self._cpu0[w.name] for w in self.watched}
        per = {name: round(100 * s / wall, 1) for name, s in used.items()}
        waits = {
            w.name: round(100 * (w.wait_seconds() - self._wait0[w.name]) / wall, 1) for w in self.watched
        }
        machine = 100 * (busy - self._machine0[0]) / max(1e-9, total - self._machine0[1])
        cores = psutil.cpu_count() or 1
        return {
            "wall_s": round(wall, 2),
            "cpu_pct": per,  # percent of one core
            "cpu_s": {name: round(s, 4) for name, s in used.items()},  # CPU seconds in the window
            # Runnable but not running (waiting for one of the cores), in percent of the
            # window: on two shared cores, a large part of what a member waits.
            "runqueue_wait_pct": waits,
            "machine_busy_pct": round(machine, 1),  # percent of all cores
            # Whatever else ran meanwhile (other sessions' test suites share this machine),
            # in percent of one core.
            "other_cpu_pct": round(max(0.0, machine * cores - sum(per.values())), 1),
            "rss_mib": {w.name: round(w.rss() / 2**20, 1) for w in self.watched if not w.children},
        }
