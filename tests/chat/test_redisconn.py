"""chat/redisconn.py: REDIS_URL in its three forms (PRODUCT.md §11) is read at start-up, and
a malformed one stops the process with a message that says what is wrong."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from chat import redisconn, resp
from chat.config import ConfigError, Settings, from_env
from chat.redisconn import RedisTopology, RedisUrlError, node_url, parse
from chat.socket_cap import SocketCap

BASE = {"DATABASE_URL": "postgresql://db/x", "PEERCHAT_JWT_SECRET": "c" * 32}


@pytest.mark.parametrize("url", ["redis://r:6379/0", "rediss://:pw@r:6380/2", "unix:///run/redis.sock?db=1"])
def test_single_node_urls_are_handed_to_redis_py_as_they_are(url: str) -> None:
    topology = parse(url)
    assert topology.kind == "single" and topology.url == url
    assert topology.tls == url.startswith("rediss")


def test_a_sentinel_url_names_its_sentinels_the_master_set_and_the_db() -> None:
    topology = parse("redis+sentinel://:s%40cret@s1:26379,s2,[::1]:26380/mymaster/3?sentinel_password=sp")
    assert topology == RedisTopology(
        "sentinel",
        "redis+sentinel://:s%40cret@s1:26379,s2,[::1]:26380/mymaster/3?sentinel_password=sp",
        hosts=(("s1", 26379), ("s2", 26379), ("::1", 26380)),
        service="mymaster",
        db=3,
        password="s@cret",
        sentinel_password="sp",
    )


def test_a_sentinel_url_with_user_and_tls() -> None:
    topology = parse("rediss+sentinel://app:pw@s1:26379/main?ssl_cert_reqs=none")
    assert (topology.username, topology.password, topology.tls) == ("app", "pw", True)
    assert topology.tls_options == {"ssl_cert_reqs": "none"}
    # The master the sentinels name is reached with the same credentials, db and TLS.
    address = resp.parse_url(node_url(topology, "10.0.0.7", 6390))
    assert (address.host, address.port, address.username, address.password) == ("10.0.0.7", 6390, "app", "pw")
    assert address.tls is not None


def test_a_cluster_url_lists_seed_nodes() -> None:
    topology = parse("redis+cluster://:pw@h1:7000,h2:7001")
    assert topology.kind == "cluster" and topology.hosts == (("h1", 7000), ("h2", 7001))
    assert topology.password == "pw" and not topology.tls
    assert node_url(topology, "h3", 7002) == "redis://:pw@h3:7002/0"


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://r:6379", "scheme 'http'"),
        ("r:6379", "must start with"),
        ("redis+sentinel://s1:26379", "/<master name>"),
        ("redis+sentinel://s1:26379/a/b/c", "/<master name>"),
        ("redis+sentinel://s1:26379/mymaster/x", "database 'x'"),
        ("redis+sentinel://s1:port/mymaster", "port 'port'"),
        ("redis+sentinel://s1:26379,,s2/mymaster", "empty host"),
        ("redis+cluster://h1:7000/2", "only database 0"),
        ("redis+cluster://h1:7000?db=1", "only database 0"),
        ("redis+cluster://h1:7000?sentinel_password=x", "not understood: sentinel_password"),
        ("redis+cluster://h1:7000?ssl_cert_reqs=none", "need the TLS scheme"),
        ("redis+cluster://h1:99999", "port '99999'"),
    ],
)
def test_a_malformed_url_is_refused_with_a_reason(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match=says.replace("?", r"\?").replace("[", r"\[")):
        parse(url)


def test_the_password_never_appears_in_an_error() -> None:
    with pytest.raises(RedisUrlError) as raised:
        parse("redis+cluster://:hunter22@h1:7000/5")
    assert "hunter22" not in str(raised.value)


def test_config_stops_the_process_on_a_bad_redis_url() -> None:
    with pytest.raises(ConfigError, match="master name"):
        from_env({**BASE, "REDIS_URL": "redis+sentinel://s1:26379"})
    assert from_env({**BASE, "REDIS_URL": "redis+cluster://h1:7000"}).redis_url == "redis+cluster://h1:7000"


@pytest.mark.parametrize("raw, partitions", [(None, 32), ("1", 1), ("64", 64), ("1024", 1024)])
def test_bus_partitions_default_and_range(raw: str | None, partitions: int) -> None:
    env = {**BASE, "REDIS_URL": "redis://r"} | ({"PEERCHAT_BUS_PARTITIONS": raw} if raw else {})
    assert from_env(env).bus_partitions == partitions


@pytest.mark.parametrize("raw", ["0", "1025", "-1", "many", "2.5"])
def test_bus_partitions_out_of_range_stop_the_process(raw: str) -> None:
    with pytest.raises(ConfigError, match="PEERCHAT_BUS_PARTITIONS"):
        from_env({**BASE, "REDIS_URL": "redis://r", "PEERCHAT_BUS_PARTITIONS": raw})


async def test_each_form_builds_its_client_without_connecting() -> None:
    single = redisconn.client(parse("redis://127.0.0.1:1/0"))
    sentinel = redisconn.client(parse("redis+sentinel://127.0.0.1:1/mymaster"))
    cluster = redisconn.client(parse("redis+cluster://127.0.0.1:1"))
    assert not isinstance(single, RedisCluster) and not isinstance(sentinel, RedisCluster)
    assert "mymaster" in repr(sentinel.connection_pool)
    assert isinstance(cluster, RedisCluster)
    for client in (single, sentinel):
        await client.aclose()


async def test_a_cluster_nobody_answers_is_a_redis_error_that_the_socket_cap_survives() -> None:
    """redis-py says "cannot be connected" with RedisClusterException, which is no
    RedisError: every Redis user here would let it through as a crash."""
    client = redisconn.client(parse("redis+cluster://127.0.0.1:1"))
    with pytest.raises(RedisError):
        await client.ping()
    with pytest.raises(RedisError):
        pipe = client.pipeline(transaction=False)
        pipe.get("a")
        pipe.get("b")
        await pipe.execute()
    cap = SocketCap(client, Settings(database_url="-", redis_url="-", jwt_secret="x" * 32))
    assert await cap.take("member", "m1", "s1"), "Redis down: the socket is let in"
    await client.aclose()
