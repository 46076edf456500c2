"""Folders for the servers a test session starts whose processes run as another user.

As root, PostgreSQL (and PgBouncer) run as `peerchat-pg` (chat/devservers/postgres.py
`run_as`), which must pass through every folder down to its data directory;
`open_path_for` gives the folders above it the search bit. Under pytest's temp root that
did not last on a shared machine: every pytest session that starts resets
`/tmp/pytest-of-root` to 0700, and the servers of any session already running then failed
with "Permission denied" on their own data (a pg_basebackup, a `pg_ctl promote`, a
checkpoint). As root, their folders are therefore made in one folder of our own under the
system temp directory (0711: passable, not listable), removed when the session ends; a
session killed before its end leaves its folder, which the next session removes once its
pid is gone and no process runs in it (an orphaned server keeps its data).
Otherwise (not root: the servers run as ourselves) pytest's folders serve as before.
`make run` and `make cluster` do not come here: their launchers keep their own folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

PREFIX = "peerchat-test-servers-"
MODE = 0o711


class ServerDirs:
    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._own: Path | None = None

    @property
    def own(self) -> Path | None:
        """Our folder, once one was needed (as root)."""
        return self._own

    def make(self, name: str) -> Path:
        """A new, empty folder for one set of servers; `name` is a readable prefix."""
        if os.geteuid() != 0:
            return self._factory.mktemp(name)
        if self._own is None:
            _sweep_stale()
            self._own = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
            self._own.chmod(MODE)
        made = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._own))
        made.chmod(MODE)
        return made

    def remove(self) -> None:
        """At the session's end, once its servers have stopped."""
        if self._own is not None:
            shutil.rmtree(self._own, ignore_errors=True)
            self._own = None


def _sweep_stale() -> None:
    """Folders of sessions that were killed before their end: their pid is gone and no
    process has its working directory or an argument in them."""
    stale = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            stale.append(str(folder))
    if not stale:
        return
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            seen = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        except psutil.Error:
            continue
        stale = [path for path in stale if path not in seen]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
