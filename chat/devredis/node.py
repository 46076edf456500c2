"""One Debian Redis 7 process (a server or a sentinel) on a free port, and the small waits
and readings the Sentinel and Cluster launchers share."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from chat.devservers import LocalServer, free_port


def redis7_bin(tool: str) -> str:
    """Debian's `redis-server`, `redis-sentinel` or `redis-cli` (7.x)."""
    found = shutil.which(tool) or (f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else None)
    if found is None:
        raise RuntimeError(
            f"{tool} is not installed; run `bash tests/faults/install-redis.sh` (as root): Debian's Redis 7"
        )
    return found


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll `check` until it returns something true (and return that); errors count as no."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError, LookupError, StopIteration) as e:
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s" + (f" (last error: {last})" if last else ""))
        time.sleep(every)


@dataclass
class RedisNode(LocalServer):
    """One Debian redis-server (or, with `sentinel`, redis-sentinel) on 127.0.0.1:`port`,
    its config file and working files in `base`. A killed node restarts on the same port with
    the files it had (a cluster node keeps its identity in nodes.conf)."""

    base: Path
    config: list[str] = field(default_factory=list)  # more redis.conf lines
    port: int = field(default_factory=free_port)
    sentinel: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def command(self, *args: Any) -> Any:
        """One command on a short-lived connection (the node may be killed at any time)."""
        with self.client() as c:
            return c.execute_command(*args)

    def start(self, timeout: float = 15.0) -> None:
        if self.alive:
            return
        self.base.mkdir(parents=True, exist_ok=True)
        conf = self.base / ("sentinel.conf" if self.sentinel else "redis.conf")
        if not conf.exists():  # a sentinel rewrites its file with what it learns: keep it
            lines = [
                f"port {self.port}",
                "bind 127.0.0.1",
                "protected-mode no",
                f"dir {self.base}",
                "daemonize no",
                "loglevel warning",
                f"logfile {self.base / 'redis.log'}",
            ]
            if not self.sentinel:
                lines += ['save ""', "appendonly no"]
            conf.write_text("\n".join([*lines, *self.config]) + "\n")
        binary = redis7_bin("redis-sentinel" if self.sentinel else "redis-server")
        self._spawn([binary, str(conf)], Path(binary).name, timeout)
        wait_until(f"{self.address} answering PING", lambda: self.command("PING"), timeout)

    def pause(self, seconds: float) -> None:
        """SIGSTOP now and SIGCONT after `seconds` (in the background): a hung node."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {self.proc.pid}"], start_new_session=True)


def server_info(node: RedisNode, section: str) -> dict[str, str]:
    """INFO `section` of `node` as a dict of strings."""
    text = node.command("INFO", section)
    if isinstance(text, dict):  # redis-py parses INFO into a dict
        return {str(k): str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)
