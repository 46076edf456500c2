"""tests/support/server_dirs.py: the session's PostgreSQL keeps reaching its own data when
another pytest session starts on the machine and resets pytest's temp root to 0700, as
pytest does at every start (as root, PostgreSQL runs as `peerchat-pg` and needs the
search bit on every folder down to its data)."""

from __future__ import annotations

import os
import subprocess

import pytest

from chat.devservers import pg_bin, run_as
from tests.support.servers import Servers


def test_postgresql_reaches_its_data_after_another_session_resets_pytests_root(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # What another session's start does (_pytest/tmpdir.py: the root made private again).
    # (Under xdist a worker's base is one level further down.)
    base = tmp_path_factory.getbasetemp()
    root = next((p for p in base.parents if p.name.startswith("pytest-of-")), base.parent)
    mode = root.stat().st_mode
    root.chmod(mode & ~0o077)
    ids = run_as()
    # A tool of PostgreSQL's own reading the data folder by its path, as pg_basebackup and
    # `pg_ctl promote` do; the server itself only had its working directory.
    done = subprocess.run(
        [pg_bin("pg_controldata"), "-D", str(servers.pg.data_dir)],
        capture_output=True,
        text=True,
        check=False,
        user=ids[0] if ids else None,
        group=ids[1] if ids else None,
    )
    assert done.returncode == 0, done.stderr
    assert "in production" in done.stdout
    if os.geteuid() == 0:
        assert not servers.pg.data_dir.is_relative_to(root)
