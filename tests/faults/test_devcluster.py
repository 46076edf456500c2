"""`make cluster` (python -m chat.devcluster): everything it starts comes up and answers,
the web processes on the Redis Cluster by default, and SIGTERM (or Ctrl-C) stops every
server it started, leaving no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from chat.devservers import free_port
from tests.support.redis_topology import ensure_redis7
from tests.support.server_dirs import ServerDirs

pytestmark = pytest.mark.slow


def _ours(data: Path) -> list[psutil.Process]:
    """Every process working in, or started with a path in, `data`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
        except psutil.Error:
            continue
        if str(data) in cmdline or cwd.startswith(str(data)):
            found.append(proc)
    return found


def test_make_cluster_starts_everything_and_stops_clean(tmp_path: Path, server_dirs: ServerDirs) -> None:
    ensure_redis7()
    subprocess.run(["bash", str(Path(__file__).parent / "install-pgbouncer.sh")], check=True)
    data = server_dirs.make("devcluster") / "cluster"  # PostgreSQL's, out of pytest's root
    port = free_port()
    out = tmp_path / "out.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chat.devcluster", "--web", "1", "--port", str(port), "--data", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")},
        )
    try:
        deadline = time.monotonic() + 180
        while "stops everything" not in out.read_text():  # its last line
            assert proc.poll() is None, out.read_text()[-3000:]
            assert time.monotonic() < deadline, out.read_text()[-3000:]
            time.sleep(0.2)
        text = out.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert r.status == 200
        redis_url = next(line for line in text.splitlines() if line.startswith("REDIS_URL")).split()[-1]
        assert redis_url.startswith("redis+cluster://") and redis_url.count(",") == 5
        assert "redis+sentinel://" in text and "/mymaster" in text
        # 2 PostgreSQL servers, PgBouncer, 6 cluster nodes, 2 Redis + 3 sentinels, 1 web process.
        assert len([p for p in _ours(data) if p.pid != proc.pid]) >= 15
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(90)
    deadline = time.monotonic() + 10
    while _ours(data):
        assert time.monotonic() < deadline, [p.info for p in _ours(data)]
        time.sleep(0.2)
