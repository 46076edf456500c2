"""Prometheus metrics for /metrics. Names are the operator's contract: keep them stable."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sockets_opened = Counter("peerchat_sockets_opened", "WebSocket connections accepted", registry=r)
        self.sockets_closed = Counter("peerchat_sockets_closed", "WebSocket connections ended", registry=r)
        self.sockets_live = Gauge(
            "peerchat_sockets_live", "Authenticated sockets on this process", registry=r
        )
        self.tokens_refused = Counter("peerchat_tokens_refused", "Handshakes closed 4001", registry=r)
        self.frames_in = Counter("peerchat_frames_in", "Client frames by type", ["type"], registry=r)
        self.errors = Counter("peerchat_errors", "error frames sent, by code", ["code"], registry=r)
        self.messages_stored = Counter("peerchat_messages_stored", "Messages committed", registry=r)
        self.store_seconds = Histogram(
            "peerchat_message_store_seconds",
            "send: commit time",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.commit_batch = Histogram(
            "peerchat_message_commit_batch_size",
            "Messages per group commit (one transaction, one round trip)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.loop_lag = Histogram(
            "peerchat_event_loop_lag_seconds",
            "How late a 100 ms timer fired: time every socket of the process waited on the loop",
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
        self.rings_skipped = Counter(
            "peerchat_bus_rings_skipped",
            "Message rings not published: only this process holds the user (docs/decisions.md)",
            registry=r,
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
        self.risk_checks_seconds = Histogram(
            "peerchat_risk_check_seconds",
            "Time to check one member message against the risk phrases (off the send path)",
            buckets=(0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005),
            registry=r,
        )


METRICS = Metrics()
