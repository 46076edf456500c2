"""What every dev and test server shares: a free port, waiting for it to open, one process
in its own session (`LocalServer`) and stopping it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import ClassVar


def package_dir(name: str) -> Path:
    """Where an installed pip package lives (its binaries are what we run)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout} s")


def terminate(proc: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


class LocalServer:
    """What every dev server shares: one process we start in its own session (so a stop
    or kill reaches whatever it forks, and Ctrl-C in `make run` reaches us, who stop it in
    order), listening on 127.0.0.1:`port`. A subclass is a dataclass with `port` and
    `proc` fields; its `start()` returns early while `alive`, then calls `_spawn`."""

    port: int
    proc: subprocess.Popen[bytes] | None
    # How `stop()` asks the server to finish, and how long it may take before SIGKILL.
    STOP_SIGNAL: ClassVar[signal.Signals] = signal.SIGTERM
    STOP_TIMEOUT: ClassVar[float] = 10.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(
        self,
        args: list[str],
        what: str,
        timeout: float,
        log: Path | None = None,
        ids: tuple[int, int] | None = None,
    ) -> None:
        """Start `args` (as `ids`, uid and gid, when given), its output appended to `log`
        or dropped, and return once it listens on `port`."""
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
                user=ids[0] if ids else None,
                group=ids[1] if ids else None,
                start_new_session=True,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        wait_for_port(self.port, self.proc, timeout, what)

    def stop(self, timeout: float | None = None) -> None:
        terminate(self.proc, self.STOP_SIGNAL, self.STOP_TIMEOUT if timeout is None else timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing handed over."""
        terminate(self.proc, signal.SIGKILL, 10.0)
        self.proc = None


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
