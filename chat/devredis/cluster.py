"""`RedisClusterSet`: three masters with one replica each (`redis-cli --cluster create ...
--cluster-replicas 1`), cluster-node-timeout 1.5 s; `url` is `redis+cluster://h:p,h:p,h:p`.
It kills a master and waits for its replica's promotion, asks for a graceful CLUSTER
FAILOVER, and moves a slot by hand (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT
NODE), as redis-cli's resharding does."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from chat.devredis.node import RedisNode, redis7_bin, server_info, wait_until
from chat.devservers import free_port

SLOTS = 16384
# Longer than Redis's own manual-failover limit (CLUSTER_MF_TIMEOUT, 5 s).
MANUAL_FAILOVER_RETRY_S = 6.0


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of CLUSTER NODES."""

    node_id: str
    address: str
    flags: frozenset[str]
    master_id: str | None
    connected: bool
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags and "fail" not in self.flags


def cluster_nodes(node: RedisNode) -> list[ClusterNodeInfo]:
    raw = node.command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    out = []
    for line in text.strip().splitlines():
        parts = line.split()
        slots = []
        for part in parts[8:]:
            if part.startswith("["):  # a migration in progress
                continue
            lo, _, hi = part.partition("-")
            slots.append((int(lo), int(hi or lo)))
        out.append(
            ClusterNodeInfo(
                node_id=parts[0],
                address=parts[1].split("@")[0],
                flags=frozenset(parts[2].split(",")),
                master_id=None if parts[3] == "-" else parts[3],
                connected=parts[7] == "connected",
                slots=tuple(slots),
            )
        )
    return out


@dataclass
class RedisClusterSet:
    """`masters` masters with `replicas` replica(s) each, made by `redis-cli --cluster
    create`. A master that stops answering for `node_timeout_ms` is failed over to its
    replica (cluster-replica-validity-factor 0: a replica may always take over)."""

    base: Path
    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 1500
    nodes: list[RedisNode] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = [
            RedisNode(
                self.base / f"node-{i}",
                config=[
                    "cluster-enabled yes",
                    "cluster-config-file nodes.conf",
                    # Its bus port, chosen too: the default (port + 10000) fails above 55535.
                    f"cluster-port {free_port()}",
                    f"cluster-node-timeout {self.node_timeout_ms}",
                    "cluster-replica-validity-factor 0",
                    "cluster-allow-replica-migration no",
                ],
            )
            for i in range(self.masters * (1 + self.replicas))
        ]

    @property
    def url(self) -> str:
        """REDIS_URL in PRODUCT.md §11's Cluster form (every node is a seed)."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        created = self.base / "created"
        for node in self.nodes:
            node.start()
        if not created.exists():
            done = subprocess.run(
                [
                    redis7_bin("redis-cli"),
                    "--cluster",
                    "create",
                    *(n.address for n in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout.decode()[-2000:]}")
            created.touch()
        self.wait_settled(timeout)

    def node(self, address: str) -> RedisNode:
        return next(n for n in self.nodes if n.address == address)

    def live(self) -> list[RedisNode]:
        return [n for n in self.nodes if n.alive]

    def view(self) -> list[ClusterNodeInfo]:
        """CLUSTER NODES as a live node sees it."""
        return cluster_nodes(self.live()[0])

    def wait_settled(self, timeout: float = 60.0) -> None:
        """Until every live node says cluster_state:ok, and agrees that `masters` masters
        serve all 16384 slots, each with its replicas attached and connected."""

        def settled() -> bool:
            for node in self.live():
                if cluster_info(node).get("cluster_state") != "ok":
                    return False
                view = cluster_nodes(node)
                masters = [n for n in view if n.is_master and n.slots]
                if len(masters) != self.masters:
                    return False
                if sum(hi - lo + 1 for m in masters for lo, hi in m.slots) != SLOTS:
                    return False
                if any("fail" in n.flags or "fail?" in n.flags or not n.connected for n in view):
                    return False
                for m in masters:
                    if sum(1 for n in view if n.master_id == m.node_id) < self.replicas:
                        return False
            return True

        wait_until("the cluster settled", settled, timeout, 0.1)

    def slot_of(self, key: str | bytes) -> int:
        return int(self.live()[0].command("CLUSTER", "KEYSLOT", key))

    def master_of_slot(self, slot: int) -> RedisNode:
        for info in self.view():
            if info.is_master and any(lo <= slot <= hi for lo, hi in info.slots):
                return self.node(info.address)
        raise LookupError(f"no master serves slot {slot}")

    def master_nodes(self) -> list[RedisNode]:
        return [self.node(i.address) for i in self.view() if i.is_master and i.slots]

    def replica_of(self, master: RedisNode) -> RedisNode:
        view = self.view()
        master_id = next(i.node_id for i in view if i.address == master.address)
        return next(self.node(i.address) for i in view if i.master_id == master_id)

    def kill_master(self, slot: int = 0) -> RedisNode:
        """SIGKILL the master serving `slot`; returns it (restart it with `.start()`: it
        rejoins as a replica of its promoted one)."""
        node = self.master_of_slot(slot)
        node.kill()
        return node

    def wait_for_promotion(self, old: RedisNode, slot: int = 0, timeout: float = 30.0) -> RedisNode:
        """Until a node other than `old` serves `slot` as master and every live node says
        cluster_state:ok; returns the new master."""

        def promoted() -> RedisNode | None:
            new = self.master_of_slot(slot)
            if new.address == old.address:
                return None
            if server_info(new, "replication").get("role") != "master":
                return None
            if any(cluster_info(n).get("cluster_state") != "ok" for n in self.live()):
                return None
            return new

        result: RedisNode = wait_until("a cluster failover", promoted, timeout, 0.05)
        return result

    def failover(self, replica: RedisNode, timeout: float = 30.0) -> None:
        """A graceful, operator-asked failover (CLUSTER FAILOVER on `replica`): it catches
        up with its master, then takes over its slots; returns once every live node agrees
        and says cluster_state:ok.

        Redis aborts a manual failover silently when the replica cannot catch up within
        its 5 s limit (a replica that has just rejoined may still be loading its first
        full sync), so this waits for a live replication link first and asks again each
        time an attempt has had longer than that limit."""

        def linked() -> bool:
            info = server_info(replica, "replication")
            return info.get("master_link_status") == "up" and info.get("master_sync_in_progress") == "0"

        wait_until(f"{replica.address} linked to its master", linked, timeout, 0.05)
        asked: float | None = None  # not 0.0: a fresh CI machine's monotonic clock may be under 6 s

        def done() -> bool:
            nonlocal asked
            if server_info(replica, "replication").get("role") != "master":
                if asked is None or time.monotonic() - asked > MANUAL_FAILOVER_RETRY_S:
                    asked = time.monotonic()
                    replica.command("CLUSTER", "FAILOVER")
                return False
            if not all(cluster_info(n).get("cluster_state") == "ok" for n in self.live()):
                return False
            return all(
                any(i.address == replica.address and i.is_master and i.slots for i in cluster_nodes(n))
                for n in self.live()
            )

        wait_until(f"{replica.address} taking over by CLUSTER FAILOVER", done, timeout, 0.05)

    def migrate_slot(self, slot: int, target: RedisNode, batch: int = 100, timeout_ms: int = 5000) -> int:
        """Move `slot` with its keys from its master to `target` (another master) while
        clients go on: IMPORTING/MIGRATING, MIGRATE in batches (a client then meets ASK
        redirects), SETSLOT NODE everywhere (then MOVED). Returns the keys moved."""
        source = self.master_of_slot(slot)
        if source.address == target.address:
            return 0
        ids = {i.address: i.node_id for i in self.view()}
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.address])
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.address])
        moved = 0
        while True:
            keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            source.command("MIGRATE", "127.0.0.1", target.port, "", 0, timeout_ms, "REPLACE", "KEYS", *keys)
            moved += len(keys)
        # The target first, so that it serves the slot before the source starts redirecting.
        target.command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.address])
        source.command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.address])
        for node in self.master_nodes():
            if node.address not in (source.address, target.address):
                node.command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.address])
        wait_until(
            f"slot {slot} served by {target.address} everywhere",
            lambda: all(self._serves(n, slot) == target.address for n in self.live()),
            15,
        )
        return moved

    def _serves(self, node: RedisNode, slot: int) -> str | None:
        for info in cluster_nodes(node):
            if "master" in info.flags and any(lo <= slot <= hi for lo, hi in info.slots):
                return info.address
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def cluster_info(node: RedisNode) -> dict[str, str]:
    """CLUSTER INFO of `node` as a dict of strings."""
    raw = node.command("CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)
