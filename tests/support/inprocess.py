"""A real uvicorn server inside the test's own event loop, on a free port, with the
options `peerchat serve` uses (chat.cli.uvicorn_options) plus the test's, served by the
same server class (chat/serving.py: its main loop is the process's tick): for tests of
the WebSocket protocol layer (tests/e2e/test_wsproto.py, test_keepalive.py) that drive
raw sockets against an ASGI app of their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from chat.cli import uvicorn_options
from chat.devservers import free_port
from chat.serving import Server


@contextlib.asynccontextmanager
async def serving(app: Any, stop_timeout_s: float = 15, **options: Any) -> AsyncIterator[int]:
    """Serve `app` until the block ends; yields the port."""
    port = free_port()
    config = uvicorn_options(port) | {"host": "127.0.0.1", "lifespan": "off", "log_level": "warning"}
    server = Server(uvicorn.Config(app, **(config | {"interface": "asgi3"} | options)))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, stop_timeout_s)
