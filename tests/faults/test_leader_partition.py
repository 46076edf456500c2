"""The matching leader loses PostgreSQL while its process lives (PRODUCT.md §11: "its
process dies or loses PostgreSQL"): each web process reaches PostgreSQL through a TCP
proxy of its own, and the leader's proxy goes silent, bytes swallowed and sockets left
open, as in a network partition. Nothing closes its lock session, so only the lease
(chat/leadership.py) can free the lock: another process must lead within 10 s, matching
must go on, and once the partition heals there is still exactly one leader."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from tests.faults.harness import LEADER_LOCK, Cluster, alive
from tests.support.database import fetchval
from tests.support.flows import matched
from tests.support.servers import LiveService, service_env, wait_until

pytestmark = pytest.mark.slow

LEADS = "this process now leads matching"
RESIGNS = "this process no longer leads matching"


class SilentableProxy:
    """127.0.0.1:`port` → PostgreSQL on `backend_port`. `silence()` stops every byte in
    both directions without closing anything; `heal()` lets them flow again."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def silence(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                await self._open.wait()  # silenced: held here, never delivered
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError, ConnectionError):
            dst.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _leaders(web: list[LiveService]) -> list[LiveService]:
    """Processes whose last word on leadership is that they lead."""
    out = []
    for svc in web:
        log = svc.output()
        if alive(svc) and log.rfind(LEADS) > log.rfind(RESIGNS):
            out.append(svc)
    return out


async def _advisory_locks(database_url: str) -> int:
    return int(await fetchval(database_url, f"SELECT count(*) FROM pg_locks WHERE {LEADER_LOCK}"))


async def test_a_leader_cut_off_from_postgresql_hands_over_within_ten_seconds(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.start(processes=0)
    assert cluster.pg is not None and cluster.redis is not None
    proxies = []
    try:
        for i in range(3):
            proxy = SilentableProxy(cluster.pg.port)
            await proxy.start()
            proxies.append(proxy)
            url = f"postgresql://postgres@127.0.0.1:{proxy.port}/peerchat"
            svc = LiveService(
                env=service_env(url, cluster.redis.url, PEERCHAT_RATE_LIMIT_PER_10S="100000"),
                log_path=tmp_path / f"web-{i}.log",
            )
            cluster.web.append(svc)
            # Off the event loop: the proxies run on it, and the process needs them to start.
            await asyncio.to_thread(svc.start)
        await wait_until(lambda: len(_leaders(cluster.web)) == 1, 30, 0.1)
        (leader,) = _leaders(cluster.web)
        cut_off = proxies[cluster.web.index(leader)]
        others = [svc for svc in cluster.web if svc is not leader]

        cut_off.silence()
        silenced = time.monotonic()
        await wait_until(lambda: any(svc in _leaders(cluster.web) for svc in others), 30, 0.05)
        took_over_s = time.monotonic() - silenced
        # The old leader resigns when its next beat fails, or when the cycle it was in gives
        # up: a query on its silenced pool waits out the 10 s command timeout, and so may
        # the rollback after it. It cannot write meanwhile (nothing gets through).
        await wait_until(lambda: RESIGNS in leader.output(), 45, 0.05)
        resigned_s = time.monotonic() - silenced
        assert took_over_s < 10, f"another process led only {took_over_s:.1f} s after the partition"
        # Matching goes on, on the processes that still reach PostgreSQL.
        pair = await matched(others[0], member_id="part-member", specialist_id="part-spec")
        await pair.close()

        cut_off.heal()
        healed = time.monotonic()
        # The old leader is back in touch: it may try again, but the lock is taken.
        await asyncio.sleep(3)
        assert len(_leaders(cluster.web)) == 1, [svc.log_path.name for svc in _leaders(cluster.web)]
        assert await _advisory_locks(cluster.database_url) == 1
        pair = await matched(leader, member_id="part-member-2", specialist_id="part-spec-2", tag="loss")
        await pair.close()
        print(
            f"\nleader cut off from PostgreSQL: another led after {took_over_s:.2f} s, the old one had "
            f"resigned by {resigned_s:.2f} s; {time.monotonic() - healed:.1f} s after healing: one leader"
        )
    finally:
        for svc in cluster.web:
            await asyncio.to_thread(svc.stop)
        cluster.web.clear()
        for proxy in proxies:
            await proxy.stop()
