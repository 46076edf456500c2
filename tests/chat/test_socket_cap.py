"""chat/socket_cap.py against the real test Redis: a cap per identity, shared by every
process (two SocketCap objects here), with leases that a dead process cannot hold for long."""

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


async def test_a_lease_not_renewed_ages_out(redis_client: redis.Redis) -> None:
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "m1", "dead-1")
    assert await cap.take("member", "m1", "live-1")
    # dead-1's lease (1 s) runs out while live-1's is renewed, as a heartbeat would.
    await _until_taken(cap, [("member", "m1", "live-1")], ("member", "m1", "new-1"))
    assert not await cap.take("member", "m1", "new-2")


async def test_a_renewal_never_brings_back_a_lease_given_back(redis_client: redis.Redis) -> None:
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "m1", "s1")
    await cap.give_back("member", "m1", "s1")
    await cap.renew([("member", "m1", "s1")])  # a renewal that read its list just before
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
        await cap.renew([("member", "m1", "outage-1")])
        # The cap is 2: outage-1 now holds a slot.
        assert await cap.take("member", "m1", "s2")
        assert not await cap.take("member", "m1", "s3")
        # Given back, it frees its slot; a later renewal that still lists it does not
        # bring it back.
        await cap.give_back("member", "m1", "outage-1")
        await cap.renew([("member", "m1", "outage-1")])
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
    """Socket ids are the client's to choose: the same id under two identities is two leases,
    and neither's give-back or renewal touches the other's."""
    cap = SocketCap(redis_client, SETTINGS)
    assert await cap.take("member", "m1", "same")
    assert await cap.take("member", "m2", "same")
    assert await cap.take("member", "m2", "other")
    await cap.give_back("member", "m1", "same")
    # m2 still holds both of its slots (the cap is 2).
    assert not await cap.take("member", "m2", "third")
    # m1 has both free again.
    assert await cap.take("member", "m1", "a")
    assert await cap.take("member", "m1", "b")
    # m1's leases (not renewed) age out; m2's renewed ones hold.
    await _until_taken(cap, [("member", "m2", "same"), ("member", "m2", "other")], ("member", "m1", "c"))
    assert not await cap.take("member", "m2", "third")


async def _until_taken(
    cap: SocketCap, renewed: list[tuple[str, str, str]], take: tuple[str, str, str]
) -> None:
    """Renew `renewed` every 0.2 s, as a heartbeat would, until `take` gets a slot (a lease
    not renewed has aged out). Not two fixed sleeps around one renewal: on a loaded machine
    the second sleep could outlast the renewed lease too."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await cap.renew(renewed)
        if await cap.take(*take):
            return
        assert asyncio.get_running_loop().time() < deadline, "a lease not renewed never aged out"
        await asyncio.sleep(0.2)
