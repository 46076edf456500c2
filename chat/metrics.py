"""Prometheus metrics for /metrics. Names are the operator's contract: keep them stable.

The few bumped on every message (frames in, errors, the commit's time and batch size,
rings skipped, the risk check's time) are `Tally` and `Spread`: plain numbers the event
loop adds to without a lock, turned into the same exposition as prometheus-client's
Counter and Histogram when /metrics is scraped (`TallyCollector.collect`). prometheus-client
takes a lock on every increment and every bucket of an observation: 0.9 µs an `inc`,
1.05 µs an `observe` on the 2-core box, against 0.1 µs here (issue 20, round 9).
Everything else, rare, stays prometheus-client's. Only the event loop's thread may bump
these (every caller does: handlers, delivery, the appender); /metrics is an async route,
so it reads them on the same thread.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_le = cast(Callable[[float], str], floatToGoString)  # a bucket's bound as prometheus-client writes it


class Tally:
    """A counter without a lock (see the module docstring). Exported as `<name>_total`."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Tallies:
    """A counter with one label, its children made on first use, as `Counter.labels`."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.children: dict[str, Tally] = {}

    def labels(self, value: object) -> Tally:
        key = str(value)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = Tally()
        return child


class Spread:
    """A histogram without a lock: one count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "created", "documentation", "name", "sum")

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # Bucket `le` holds what is <= its bound: the first bound not below `amount`.
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class TallyCollector(Collector):
    """Exposes the lock-free metrics as prometheus-client would expose its own."""

    def __init__(self) -> None:
        self.counters: list[tuple[str, str, Tally]] = []
        self.families: list[Tallies] = []
        self.spreads: list[Spread] = []

    def collect(self) -> Iterator[Metric]:
        for name, documentation, tally in self.counters:
            metric = Metric(name, documentation, "counter")
            metric.add_sample(name + "_total", {}, tally.value)
            metric.add_sample(name + "_created", {}, tally.created)
            yield metric
        for family in self.families:
            metric = Metric(family.name, family.documentation, "counter")
            for value, tally in list(family.children.items()):
                metric.add_sample(family.name + "_total", {family.label: value}, tally.value)
                metric.add_sample(family.name + "_created", {family.label: value}, tally.created)
            yield metric
        for spread in self.spreads:
            metric = Metric(spread.name, spread.documentation, "histogram")
            total = 0
            for bound, count in zip((*spread.bounds, float("inf")), spread.counts, strict=True):
                total += count
                metric.add_sample(spread.name + "_bucket", {"le": _le(bound)}, float(total))
            metric.add_sample(spread.name + "_count", {}, float(total))
            metric.add_sample(spread.name + "_sum", {}, spread.sum)
            metric.add_sample(spread.name + "_created", {}, spread.created)
            yield metric

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are checked at scrape time, not at registration


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        tallies = TallyCollector()
        r.register(tallies)

        def tally(name: str, documentation: str) -> Tally:
            made = Tally()
            tallies.counters.append((name, documentation, made))
            return made

        def family(name: str, documentation: str, label: str) -> Tallies:
            made = Tallies(name, documentation, label)
            tallies.families.append(made)
            return made

        def spread(name: str, documentation: str, buckets: tuple[float, ...]) -> Spread:
            made = Spread(name, documentation, buckets)
            tallies.spreads.append(made)
            return made

        self.sockets_opened = Counter("peerchat_sockets_opened", "WebSocket connections accepted", registry=r)
        self.sockets_closed = Counter("peerchat_sockets_closed", "WebSocket connections ended", registry=r)
        self.sockets_live = Gauge(
            "peerchat_sockets_live", "Authenticated sockets on this process", registry=r
        )
        self.tokens_refused = Counter("peerchat_tokens_refused", "Handshakes closed 4001", registry=r)
        # On the message path: lock-free (see the module docstring).
        self.frames_in = family("peerchat_frames_in", "Client frames by type", "type")
        self.errors = family("peerchat_errors", "error frames sent, by code", "code")
        self.messages_stored = tally("peerchat_messages_stored", "Messages committed")
        self.store_seconds = spread(
            "peerchat_message_store_seconds",
            "send: commit time",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self.commit_batch = spread(
            "peerchat_message_commit_batch_size",
            "Messages per group commit (one transaction, one round trip)",
            (1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.loop_lag = Histogram(
            "peerchat_event_loop_lag_seconds",
            "How late the process's 250 ms tick fired: time every socket of the process waited on the loop",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self.floods = Counter("peerchat_flood_closes", "Sockets closed 4029", registry=r)
        self.slow_consumers = Counter("peerchat_slow_consumer_closes", "Sockets closed 4008", registry=r)
        # chat/admission.py: why a live socket's right to exist ended, or a new one was refused.
        self.token_ends = Counter(
            "peerchat_token_socket_closes",
            "Sockets closed 4001 after welcome, by why (expired, revoked, reauth_refused)",
            ["why"],
            registry=r,
        )
        self.over_socket_cap = Counter(
            "peerchat_socket_cap_refusals", "Sockets refused: too_many_connections, close 4029", registry=r
        )
        self.bus_reconnects = Counter(
            "peerchat_bus_reconnects", "Redis pub/sub reconnected and caught up from PostgreSQL", registry=r
        )
        self.repairs = Counter(
            "peerchat_delivery_repairs",
            "Sockets found behind PostgreSQL by the periodic check and caught up",
            registry=r,
        )
        self.peer_gone = Counter(
            "peerchat_peer_gone", "Conversations ended because the specialist outlived the grace", registry=r
        )
        self.member_gone = Counter(
            "peerchat_member_gone",
            "Requests cancelled (abandoned) and conversations ended (peer_gone) past the member grace",
            ["what"],
            registry=r,
        )
        self.rings_skipped = tally(
            "peerchat_bus_rings_skipped",
            "Message rings not published: only this process holds the user (docs/decisions.md)",
        )
        self.rings_unopened = Counter(
            "peerchat_bus_rings_unopened",
            "Bus rings dropped because they did not open with this process's key (chat/seal.py)",
            registry=r,
        )
        self.bus_down = Gauge("peerchat_bus_down", "1 while Redis pub/sub is unreachable", registry=r)
        # A cluster bus's partitions (chat/bus_cluster.py), read from the bus when scraped.
        self.rings_published = Gauge(
            "peerchat_bus_rings_published", "Rings this process published on a cluster bus", registry=r
        )
        self.rings_heard = Gauge(
            "peerchat_bus_rings_heard", "Rings received on this process's cluster bus partitions", registry=r
        )
        self.partitions_heard = Gauge(
            "peerchat_bus_partitions_subscribed", "Cluster bus partitions subscribed now", registry=r
        )
        self.rings_for_others = Gauge(
            "peerchat_bus_rings_for_others",
            "Received cluster bus rings for channels this process does not hold (dropped)",
            registry=r,
        )
        # The privacy lifecycle (docs/privacy.md).
        self.retention_swept = Counter(
            "peerchat_retention_swept_rows",
            "Rows the retention sweep emptied (conversations, requests) or deleted (messages)",
            ["kind"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "peerchat_retention_last_run_timestamp_seconds",
            "When a retention sweep last ran to the end (unix time; 0: not by this process)",
            registry=r,
        )
        self.retention_backlog = Gauge(
            "peerchat_retention_backlog",
            "Conversations and requests past retention whose content is still stored",
            registry=r,
        )
        self.erasures = Counter(
            "peerchat_erasures", "Members' erasures carried out (DELETE /api/me)", registry=r
        )
        # Safety (PRODUCT.md §8, docs/safety.md).
        self.alerts_raised = Counter(
            "peerchat_alerts_raised", "Supervisor alerts raised, by kind", ["kind"], registry=r
        )
        self.alerts_acked = Counter(
            "peerchat_alerts_acked", "Supervisor alerts acknowledged, by kind", ["kind"], registry=r
        )
        self.alert_ack_seconds = Histogram(
            "peerchat_alert_ack_seconds",
            "Time from an alert being raised to its acknowledgement, by kind",
            ["kind"],
            buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600),
            registry=r,
        )
        self.monitors = Counter("peerchat_monitors", "Supervisors' monitor starts", registry=r)
        self.joins = Counter("peerchat_joins", "Supervisors' joins of a conversation", registry=r)
        self.risk_checks_seconds = spread(
            "peerchat_risk_check_seconds",
            "Time to check one member message against the risk phrases (off the send path)",
            (0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005),
        )


METRICS = Metrics()
