"""What every dev and test server shares: a free port, waiting for it to open, one process
in its own session (`LocalServer`) and stopping it."""

from __future__ import annotations

import importlib.util
import os
import random
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


# Ports browsers refuse to load pages from (Chromium's and Firefox's restricted ports,
# net/base/port_util.cc): a page served on one fails with ERR_UNSAFE_PORT. Only 10080 lies
# in the range picked from below, but a dev server must open in a browser whatever the range.
BROWSER_REFUSES = frozenset(
    {1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102}
    | {103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427}
    | {465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989}
    | {990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665}
    | {6666, 6667, 6668, 6669, 6679, 6697, 10080}
)

# Not the `random` module's shared generator: pytest-randomly seeds that one alike in every
# test and every xdist worker, which would have them all try the same ports in turn.
_pick = random.SystemRandom()


def free_port() -> int:
    """A port nobody listens on, for a server we are about to start.

    It was `bind(("127.0.0.1", 0))`, which picks from the kernel's ephemeral range: the
    range every outgoing connection (to PostgreSQL, Redis, a test's web process) takes its
    local port from, so between our pick and the server's bind an outgoing connection
    could take the port, and the server then failed to start (a test's set-up error). Now
    the port comes from below that range, where no outgoing connection is ever given one,
    picked at random and checked free; never one a browser refuses (a browser test's page
    on 10080 failed with ERR_UNSAFE_PORT)."""
    low, high = _server_ports()
    for _ in range(200):
        port = _pick.randrange(low, high)
        if port in BROWSER_REFUSES:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    with socket.socket() as s:  # nothing free down there: the kernel's pick, as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_ports() -> tuple[int, int]:
    """[low, high) outside the ephemeral range (Linux: ip_local_port_range)."""
    try:
        first, last = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        first, last = 32768, 60999
    if first - 10000 >= 4000:
        return 10000, first
    return last + 1, 65536


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
