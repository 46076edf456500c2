"""Each fault test builds its own cluster: servers it may stop or kill, and web processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import Cluster
from tests.support.server_dirs import ServerDirs


@pytest.fixture
async def cluster(tmp_path: Path, server_dirs: ServerDirs) -> AsyncIterator[Cluster]:
    # The web processes' logs in the test's folder; the servers' data out of pytest's
    # temp root when we are root (tests/support/server_dirs.py).
    c = Cluster(tmp_path, servers=server_dirs.make(tmp_path.name))
    try:
        yield c
    finally:
        c.stop()
