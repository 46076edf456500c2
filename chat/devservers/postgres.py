"""PostgreSQL 16 from the `pgserver` wheel: a cluster on a free port, a streaming standby of
it, and its promotion. PostgreSQL refuses to run as root, so when we are root (as CI is)
the server runs as a dedicated system user, the trick pgserver uses too."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from chat.devservers.process import LocalServer, free_port, package_dir

PG_SYSTEM_USER = "peerchat-pg"


def pg_bin(tool: str) -> str:
    return str(package_dir("pgserver") / "pginstall" / "bin" / tool)


def run_as() -> tuple[int, int] | None:
    """The (uid, gid) PostgreSQL must run as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    # The server must also reach its own binaries and share/ files, which live in our
    # virtual environment: a checkout in a 0700 folder (mktemp -d) would hide them.
    open_path_for(Path(pg_bin("postgres")).parent.parent)
    return entry.pw_uid, entry.pw_gid


def open_path_for(path: Path) -> None:
    """Let another user pass through every folder down to `path` (search permission only:
    root's home, pytest's temp folder and `mktemp -d` are 0700)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@dataclass
class PostgresServer(LocalServer):
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port` (TCP only)."""

    # Fast shutdown: open transactions are rolled back, data is kept.
    STOP_SIGNAL = signal.SIGINT
    STOP_TIMEOUT = 20.0

    data_dir: Path
    port: int = field(default_factory=free_port)
    durable: bool = True  # tests pass False: fsync off, nothing to keep
    # More `-c name=value` settings (a primary's synchronous_standby_names, say).
    settings: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _init(self, ids: tuple[int, int] | None) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if ids:
            open_path_for(self.data_dir.parent)
            os.chown(self.data_dir, *ids)
        subprocess.run(
            [
                pg_bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
        )

    def start(self, timeout: float = 30.0) -> None:
        if self.alive:
            return
        ids = run_as()
        self._init(ids)
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():  # left over from a crash or a killed run
            _stop_stale_postmaster(pid_file)
        settings = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        for setting in self.settings:
            settings += ["-c", setting]
        self._spawn(
            [pg_bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port), *settings],
            "postgres",
            timeout,
            log=self.data_dir.parent / f"postgres-{self.port}.log",
            ids=ids,
        )
        # The port opens a moment before connections are accepted; pg_isready knows.
        deadline = time.monotonic() + timeout
        while (
            subprocess.run(
                [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not become ready")
            time.sleep(0.05)

    def standby(self, data_dir: Path, name: str = "standby") -> PostgresServer:
        """A streaming standby of this (running) server in `data_dir`, not yet started:
        `pg_basebackup -R` copies the cluster and writes standby.signal and primary_conninfo
        (initdb's pg_hba already trusts replication from 127.0.0.1). `name` is its
        application_name, what a primary's synchronous_standby_names refers to."""
        ids = run_as()
        if not (data_dir / "PG_VERSION").exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            data_dir.chmod(0o700)
            if ids:
                open_path_for(data_dir.parent)
                os.chown(data_dir, *ids)
            done = subprocess.run(
                [
                    pg_bin("pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(data_dir),
                    "-R",
                    "--checkpoint=fast",  # not a spread checkpoint: minutes on an idle server
                    "-X",
                    "stream",
                    "-d",
                    f"host=127.0.0.1 port={self.port} user=postgres application_name={name}",
                ],
                check=False,
                capture_output=True,
                user=ids[0] if ids else None,
                group=ids[1] if ids else None,
            )
            if done.returncode != 0:
                raise RuntimeError(f"pg_basebackup failed: {done.stderr.decode(errors='replace').strip()}")
        return PostgresServer(data_dir, durable=self.durable)

    def promote(self, timeout: float = 30.0) -> None:
        """Make this standby a primary (`pg_ctl promote -w`): returns once it accepts writes."""
        ids = run_as()
        done = subprocess.run(
            [pg_bin("pg_ctl"), "promote", "-w", "-t", str(int(timeout)), "-D", str(self.data_dir)],
            check=False,
            capture_output=True,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
        )
        if done.returncode != 0:  # say why (check=True hid pg_ctl's words and the server's)
            log = self.data_dir.parent / f"postgres-{self.port}.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"pg_ctl promote failed ({done.returncode}): "
                f"{(done.stdout + done.stderr).decode(errors='replace').strip()}\n{tail}"
            )


def _stop_stale_postmaster(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        for _ in range(200):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        pass
