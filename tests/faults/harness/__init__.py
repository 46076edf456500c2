"""What the fault tests share: a cluster of `peerchat serve` processes on servers of its own,
conversations seeded straight into PostgreSQL, and `Participant`, a device that chats the
way a careful client does (resume from its last seq, resend unacked sends with the same
client_msg_id) and records every delivery-order violation it sees.

Two modules: `cluster` (Cluster and what is read off its processes) and `devices`
(seeding, Participant, the checks of what was stored and delivered). Import from here.
"""

from __future__ import annotations

from tests.faults.harness.cluster import (
    LEADER_LOCK,
    Cluster,
    alive,
    http_get,
    hung,
    presence_back,
    rss_mib,
)
from tests.faults.harness.devices import (
    Delivery,
    Participant,
    Seeded,
    body_for,
    check_in_postgres,
    delivery_after,
    seat_participants,
    seed_conversations,
)

__all__ = [
    "LEADER_LOCK",
    "Cluster",
    "Delivery",
    "Participant",
    "Seeded",
    "alive",
    "body_for",
    "check_in_postgres",
    "delivery_after",
    "http_get",
    "hung",
    "presence_back",
    "rss_mib",
    "seat_participants",
    "seed_conversations",
]
