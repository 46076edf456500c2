"""Debian's PgBouncer in front of a dev or test PostgreSQL (chat/devservers/), in
transaction-pooling mode, for the pooler tests and `make cluster` (docs/scaling.md).

Call `start()`, then `stop()` when done; both are idempotent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from chat.devservers import LocalServer, free_port, open_path_for, run_as


def pgbouncer_bin() -> str:
    """Debian's PgBouncer (`apt-get install pgbouncer`; tests/faults/install-pgbouncer.sh)."""
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        raise RuntimeError(
            "pgbouncer is not installed; run `bash tests/faults/install-pgbouncer.sh` (as root)"
        )
    return found


@dataclass
class PgBouncerServer(LocalServer):
    """PgBouncer in transaction-pooling mode on 127.0.0.1:`port`, in front of `database` on
    the PostgreSQL at `backend_port`. Trust authentication, as the dev servers use. Like
    PostgreSQL it will not run as root, so as root it runs as the same system user. `stop()`
    is its immediate shutdown (SIGTERM in 1.18): every client and server connection drops."""

    base: Path
    backend_port: int
    database: str = "peerchat"
    port: int = field(default_factory=free_port)
    pool_size: int = 20
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _write_config(self, ids: tuple[int, int] | None) -> Path:
        self.base.mkdir(parents=True, exist_ok=True)
        users = self.base / "users.txt"
        users.write_text('"postgres" ""\n')
        ini = self.base / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"{self.database} = host=127.0.0.1 port={self.backend_port}"
            f" dbname={self.database} user=postgres\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 1000\n"
            f"default_pool_size = {self.pool_size}\n"
            "server_reset_query =\n"
            # After a failed server connection PgBouncer waits this long before the next
            # try (default 15 s): the whole recovery time after a primary comes back.
            "server_login_retry = 1\n"
            "ignore_startup_parameters = extra_float_digits\n"
            "admin_users = postgres\n"
        )
        if ids:
            open_path_for(self.base)
            for path in (self.base, users, ini):
                os.chown(path, *ids)
        return ini

    def start(self, timeout: float = 15.0) -> None:
        if self.alive:
            return
        ids = run_as()
        ini = self._write_config(ids)
        self._spawn(
            [pgbouncer_bin(), str(ini)], "pgbouncer", timeout, log=self.base / "pgbouncer.log", ids=ids
        )
