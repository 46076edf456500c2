"""chat/socket_cap.py against the real test Redis: a cap per identity, shared by every
process (two SocketCap objects here, each with its own process lease), counting only the
sockets of processes whose lease lives, so a dead process cannot hold slots for long."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from chat.config import Settings
from chat.devservers import free_port
from chat.socket_cap import SocketCap

SETTINGS = Settings(
    database_url="-", redis_url="-", jwt_secret="s" * 32, max_sockets_per_user=2, presence_ttl_s=1.0
)


async def test_the_cap_is_per_identity_and_shared(redis_client: redis.Redis) -> None:
    here, there = SocketCap(redis_client, SETTINGS), SocketCap(redis_client, SETTINGS)
    assert await here.take("member", "m1", "s1")
    assert await there.take("member", "m1", "s2")
    assert not await here.take("member", "m1", "s3")
    assert not await there.take("member", "m1", "s3")
    # Another sub, or the same sub in another role, is another person.
    assert await here.take("member", "m2", "s4")
    assert await here.take("specialist", "m1", "s5")
    # Taking again with a socket that holds a slot is not one more.
    assert await here.take("member", "m1", "s1")
    await there.give_back("member", "m1", "s2")
    assert await here.take("member", "m1", "s3")


async def test_a_dead_processs_slots_age_out(redis_client: redis.Redis) -> None:
    dead, cap = SocketCap(redis_client, SETTINGS), SocketCap(redis_client, SETTINGS)
    assert await dead.take("member", "m1", "dead-1")
    assert await cap.take("member", "m1", "live-1")
    assert not await cap.take("member", "m1", "new-1"), "the cap is 2"
    # The dead process's lease (1 s) runs out while the live one's is renewed.
    await _until_taken(cap, ("member", "m1", "new-1"))
    assert not await cap.take("member", "m1", "new-2")


async def test_a_renewal_never_brings_back_a_lease_given_back(redis_client: redis.Redis) -> None:
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "m1", "s1")
    await cap.give_back("member", "m1", "s1")
    cap.lease.suspect()
    await cap.renew()  # a rewrite of every slot held here
    # The cap is 2: both fit only if s1 holds no slot any more.
    assert await cap.take("member", "m1", "s2")
    assert await cap.take("member", "m1", "s3")


async def test_keys_never_name_the_account(redis_client: redis.Redis) -> None:
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "acct-secret-77", "s1")
    keys = [k async for k in redis_client.scan_iter("*")]
    assert keys and not any(b"acct-secret-77" in k for k in keys)


async def test_without_redis_the_socket_is_let_in() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        assert await SocketCap(dead, SETTINGS).take("member", "m1", "s1")
        await SocketCap(dead, SETTINGS).give_back("member", "m1", "s1")  # no raise
    finally:
        await dead.aclose()


async def test_a_socket_let_in_while_redis_failed_is_counted_once_redis_is_back(
    redis_client: redis.Redis,
) -> None:
    """Review finding 6: a socket let in without a lease (Redis unreachable at `take`) was
    never counted: the renewal's ZADD XX only touches leases that exist."""
    kw = redis_client.connection_pool.connection_kwargs
    port = free_port()
    flaky = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1.0)
    proxy: asyncio.Server | None = None
    try:
        cap = SocketCap(flaky, SETTINGS)
        assert await cap.take("member", "m1", "outage-1"), "let in while Redis is unreachable"
        proxy = await _redis_on(port, kw["host"], int(kw["port"]))  # Redis is back
        await cap.renew()
        # The cap is 2: outage-1 now holds a slot.
        assert await cap.take("member", "m1", "s2")
        assert not await cap.take("member", "m1", "s3")
        # Given back, it frees its slot; a later renewal that still lists it does not
        # bring it back.
        await cap.give_back("member", "m1", "outage-1")
        await cap.renew()
        assert await cap.take("member", "m1", "s3")
    finally:
        await flaky.aclose()
        if proxy is not None:
            proxy.close()
            await proxy.wait_closed()


async def _redis_on(port: int, host: str, target: int) -> asyncio.Server:
    """Redis reachable on `port` from now on (a plain TCP relay to the test Redis)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(relay, "127.0.0.1", port)


async def test_two_identities_with_one_socket_id_keep_their_own_leases(redis_client: redis.Redis) -> None:
    """Socket ids are the client's to choose: the same id under two identities is two slots,
    and neither's give-back or rewrite touches the other's."""
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "m1", "same")
    assert await cap.take("member", "m2", "same")
    assert await cap.take("member", "m2", "other")
    await cap.give_back("member", "m1", "same")
    cap.lease.suspect()
    await cap.renew()
    # m2 still holds both of its slots (the cap is 2).
    assert not await cap.take("member", "m2", "third")
    # m1 has both free again.
    assert await cap.take("member", "m1", "a")
    assert await cap.take("member", "m1", "b")
    assert not await cap.take("member", "m1", "c")


async def test_after_a_wipe_the_next_renewal_counts_every_socket_again(redis_client: redis.Redis) -> None:
    """Redis restarted empty: the process finds its lease gone and writes its slots again."""
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "m1", "s1")
    assert await cap.take("member", "m1", "s2")
    await redis_client.flushall()
    await cap.renew()
    assert not await SocketCap(redis_client, SETTINGS).take("member", "m1", "s3"), "both counted again"
    await cap.give_back("member", "m1", "s1")
    assert await SocketCap(redis_client, SETTINGS).take("member", "m1", "s3")


async def test_an_idle_renewal_writes_nothing_per_socket(redis_client: redis.Redis) -> None:
    """One lease per process: renewing it is a few commands whatever the sockets (it was
    two per socket)."""
    cap = SocketCap(redis_client, SETTINGS)
    for i in range(600):
        assert await cap.take("member", f"m{i}", f"s{i}")
    await cap.renew()
    before = await _commands(redis_client)
    for _ in range(3):
        await cap.renew()
    assert await _commands(redis_client) - before <= 3 * 6
    other = SocketCap(redis_client, SETTINGS)
    assert await other.take("member", "m599", "x")
    assert not await other.take("member", "m599", "y"), "the slot held here still counts"


async def _commands(client: redis.Redis) -> int:
    """Commands Redis ran so far, those inside scripts included, but for INFO itself."""
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def _until_taken(cap: SocketCap, take: tuple[str, str, str]) -> None:
    """Renew `cap`'s process lease every 0.2 s, as a heartbeat would, until `take` gets a
    slot (a process not renewing has aged out). Not two fixed sleeps around one renewal: on
    a loaded machine the second sleep could outlast the renewed lease too."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await cap.renew()
        if await cap.take(*take):
            return
        assert asyncio.get_running_loop().time() < deadline, "a dead process's slot never aged out"
        await asyncio.sleep(0.2)
