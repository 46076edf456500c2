"""The Redis topology launchers (tests/support/redis_topology.py) do what the Sentinel and
Cluster fault tests rely on: the URLs are PRODUCT.md §11's forms and reach the topology
through redis-py's own Sentinel and Cluster clients, a killed master's replica is really
promoted with the data it had, and a slot really moves, keys and all, under a writing
client."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from tests.support.redis_topology import MASTER_NAME, RedisClusterSet, SentinelSet

pytestmark = pytest.mark.slow


def _sentinel_client(s: SentinelSet) -> redis.Redis:
    hosts = [f"127.0.0.1:{n.port}" for n in s.sentinels]
    assert s.url == "redis+sentinel://" + ",".join(hosts) + f"/{MASTER_NAME}"
    addresses = [(h.split(":")[0], int(h.split(":")[1])) for h in hosts]
    sentinel = Sentinel(addresses, socket_timeout=1)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(MASTER_NAME, socket_timeout=10)  # type: ignore[no-untyped-call]
    return client


def _cluster_client(c: RedisClusterSet) -> RedisCluster:
    hosts = [f"127.0.0.1:{n.port}" for n in c.nodes]
    assert len(hosts) == 6 and c.url == "redis+cluster://" + ",".join(hosts)
    seeds = [ClusterNode(h.split(":")[0], int(h.split(":")[1])) for h in hosts]  # type: ignore[no-untyped-call]
    return RedisCluster(
        startup_nodes=seeds,
        socket_timeout=10,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 20),
    )


def test_sentinel_set_fails_over_to_its_replica_with_the_data(redis_sentinel: SentinelSet) -> None:
    client = _sentinel_client(redis_sentinel)
    first = redis_sentinel.master_node()
    for i in range(100):
        client.set(f"k{i}", i)
    assert first.command("WAIT", 1, 5000) == 1  # the replica has it all
    started = time.monotonic()
    old = redis_sentinel.kill_master()
    assert old is first and not old.alive
    new = redis_sentinel.wait_for_promotion(old)
    took = time.monotonic() - started
    assert new is not old and new.command("ROLE")[0] == b"master"
    # The same client, asking the sentinels again, finds the new master and every key.
    deadline = time.monotonic() + 20
    while True:
        try:
            assert [int(v or -1) for v in client.mget([f"k{i}" for i in range(100)])] == list(range(100))
            client.set("after", 1)
            break
        except (redis.ConnectionError, redis.TimeoutError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    print(f"\nSentinel: master killed, replica promoted {took:.1f} s later")
    client.close()


def test_cluster_fails_a_killed_master_over_and_moves_a_slot_under_writes(
    redis_cluster: RedisClusterSet,
) -> None:
    c = redis_cluster
    masters = c.master_nodes()
    assert len(masters) == 3 and len({m.address for m in masters}) == 3
    assert {c.replica_of(m).address for m in masters}.isdisjoint({m.address for m in masters})
    client = _cluster_client(c)
    keys = [f"user:{i}" for i in range(300)]
    for i, k in enumerate(keys):
        client.set(k, i)
    # Every master serves some of them: the keys spread over the slots.
    assert {c.master_of_slot(c.slot_of(k)).address for k in keys} == {m.address for m in masters}
    for m in masters:
        assert m.command("WAIT", 1, 5000) == 1

    # A slot with keys in it moves to another master while a client keeps writing to it.
    slot = c.slot_of(keys[0])
    in_slot = [k for k in keys if c.slot_of(k) == slot]
    source = c.master_of_slot(slot)
    target = next(m for m in masters if m is not source)
    for n in range(200):  # more keys in that slot, so the move takes several batches
        client.set(f"{{{keys[0]}}}:{n}", n)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                client.set(f"{{{keys[0]}}}:w{n}", n)
                written.append(n)
                n += 1
            except BaseException as e:  # reported by the assertion below
                errors.append(e)
                return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        moved = c.migrate_slot(slot, target, batch=50)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert moved >= 200 + len(in_slot)
    assert c.master_of_slot(slot) is target
    assert len(written) > 10
    assert [int(v or -1) for v in client.mget(*[f"{{{keys[0]}}}:w{n}" for n in written])] == written
    assert target.command("CLUSTER", "COUNTKEYSINSLOT", slot) >= 200 + len(in_slot) + len(written)
    assert source.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0

    # Kill the master of slot 0: its replica takes over, with the keys it had.
    for m in c.master_nodes():
        assert m.command("WAIT", 1, 5000) == 1
    started = time.monotonic()
    old = c.kill_master(slot=0)
    new = c.wait_for_promotion(old, slot=0)
    took = time.monotonic() - started
    assert new is not old and new.command("ROLE")[0] == b"master"
    deadline = time.monotonic() + 20
    while True:
        try:
            assert [int(v or -1) for v in client.mget_nonatomic(keys)] == list(range(300))
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    # The killed node comes back as a replica of the one that replaced it.
    old.start()
    c.wait_settled()
    assert old.command("ROLE")[0] == b"slave"
    # And a graceful failover hands slot 0 back to it.
    c.failover(old)
    assert c.master_of_slot(0) is old and new.command("ROLE")[0] == b"slave"
    assert [int(v or -1) for v in client.mget_nonatomic(keys)] == list(range(300))
    client.close()
    c.stop()  # and a clean stop: every process gone
    assert not any(n.alive for n in c.nodes)
    print(
        f"\nCluster: master killed, replica promoted {took:.1f} s later; slot {slot} moved with {moved} keys"
    )
