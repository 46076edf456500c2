"""On a Redis Cluster the keys client is bounded per node like the single-node and Sentinel
pools, and, like them, a burst beyond the bound waits for a free connection instead of
failing (redis-py's cluster node pool raises MaxConnectionsError at once)."""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster

from chat import redisconn
from tests.support.redis_topology import RedisClusterSet


async def test_a_burst_past_the_cluster_pool_waits_instead_of_failing(
    shared_cluster: RedisClusterSet,
) -> None:
    client = redisconn.client(redisconn.parse(shared_cluster.url))
    assert isinstance(client, RedisCluster)
    try:
        key = "pc:test:burst{one-slot}"  # every command on one node
        await client.delete(key)
        burst = 4 * redisconn.MAX_CONNECTIONS
        results = await asyncio.gather(*(client.incr(key) for _ in range(burst)), return_exceptions=True)
        failed = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        assert failed == [], f"{len(failed)} of {burst} failed: {sorted(set(failed))}"
        assert int(await client.get(key) or 0) == burst
        node = client.get_node_from_key(key)
        assert node is not None and len(node._connections) <= redisconn.MAX_CONNECTIONS
        # Pipelines (presence, caps) go through the same bound.
        pipes = []
        for _ in range(burst):
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipes.append(pipe.execute())
        piped = await asyncio.gather(*pipes, return_exceptions=True)
        assert [type(r).__name__ for r in piped if isinstance(r, BaseException)] == []
        assert int(await client.get(key) or 0) == 2 * burst
        assert len(node._connections) <= redisconn.MAX_CONNECTIONS
        await client.delete(key)
    finally:
        await client.aclose()
