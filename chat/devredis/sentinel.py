"""`SentinelSet`: a master, a replica and three sentinels watching them, quick to decide
(down-after-milliseconds 2 s); `url` is `redis+sentinel://h:p,h:p,h:p/mymaster`. It kills
the master and waits for the replica's promotion, or asks for a graceful SENTINEL FAILOVER."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.devredis.node import RedisNode, server_info, wait_until

MASTER_NAME = "mymaster"


@dataclass
class SentinelSet:
    """A master, one replica and three sentinels (quorum 2) watching `mymaster`."""

    base: Path
    # 1 s made a sentinel on a loaded machine fail a just-promoted master over again.
    down_after_ms: int = 2000
    failover_timeout_ms: int = 10000
    master: RedisNode = field(init=False)
    replica: RedisNode = field(init=False)
    sentinels: list[RedisNode] = field(init=False)

    def __post_init__(self) -> None:
        self.master = RedisNode(self.base / "redis-a")
        self.replica = RedisNode(self.base / "redis-b")
        self.sentinels = [RedisNode(self.base / f"sentinel-{i}", sentinel=True) for i in range(3)]

    @property
    def url(self) -> str:
        """REDIS_URL in PRODUCT.md §11's Sentinel form."""
        return "redis+sentinel://" + ",".join(s.address for s in self.sentinels) + f"/{MASTER_NAME}"

    @property
    def nodes(self) -> list[RedisNode]:
        return [self.master, self.replica]

    def start(self, timeout: float = 30.0) -> None:
        self.replica.config = [f"replicaof 127.0.0.1 {self.master.port}"]
        self.master.start()
        self.replica.start()
        for s in self.sentinels:
            s.config = [
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
            ]
            s.start()
        self.wait_settled(timeout)

    def wait_settled(self, timeout: float = 30.0) -> None:
        """Until the replica is in sync, and every sentinel knows the master, a healthy
        replica and both other sentinels (only then can they agree on a failover)."""

        def settled() -> bool:
            master = self.master_node()
            if server_info(master, "replication").get("connected_slaves") != "1":
                return False
            for s in self.sentinels:
                if not s.alive:
                    continue
                if self.sentinel_master_address(s) != master.address:
                    return False
                replicas = s.command("SENTINEL", "REPLICAS", MASTER_NAME)
                if not any(_sentinel_entry(r).get("flags") == "slave" for r in replicas):
                    return False
                if len(s.command("SENTINEL", "SENTINELS", MASTER_NAME)) < 2:
                    return False
            return True

        wait_until("the Sentinel set settled", settled, timeout, 0.1)

    def sentinel_master_address(self, sentinel: RedisNode | None = None) -> str:
        s = sentinel or next(s for s in self.sentinels if s.alive)
        host, port = s.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return f"{host.decode()}:{port.decode()}"

    def master_node(self) -> RedisNode:
        """The node the sentinels name as master now."""
        address = self.sentinel_master_address()
        return next(n for n in self.nodes if n.address == address)

    def kill_master(self) -> RedisNode:
        """SIGKILL the current master; returns it (restart it with `.start()`: the sentinels
        turn it into a replica of the new master)."""
        node = self.master_node()
        node.kill()
        return node

    def wait_for_promotion(self, old: RedisNode, timeout: float = 30.0) -> RedisNode:
        """Until every live sentinel names a master other than `old` and that node says it
        is a master; returns it."""

        def promoted() -> RedisNode | None:
            addresses = {self.sentinel_master_address(s) for s in self.sentinels if s.alive}
            if len(addresses) != 1 or old.address in addresses:
                return None
            node = next(n for n in self.nodes if n.address in addresses)
            return node if server_info(node, "replication").get("role") == "master" else None

        result: RedisNode = wait_until("a Sentinel promotion", promoted, timeout, 0.05)
        return result

    def failover(self, timeout: float = 30.0) -> RedisNode:
        """A graceful, operator-asked failover (SENTINEL FAILOVER); returns the new master."""
        old = self.master_node()
        next(s for s in self.sentinels if s.alive).command("SENTINEL", "FAILOVER", MASTER_NAME)
        return self.wait_for_promotion(old, timeout)

    def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.stop()


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _sentinel_entry(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    items = [_text(x) for x in raw]
    return dict(zip(items[::2], items[1::2], strict=True))
