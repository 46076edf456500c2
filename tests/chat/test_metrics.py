"""chat/metrics.py: metric names are the operator's contract. Every name the operations
guide tells operators to watch is one this process exports, as exported."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from chat.metrics import METRICS, Metrics, Spread, Tallies, TallyCollector

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def exported() -> set[str]:
    text = generate_latest(METRICS.registry).decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")} | {
        m.group(1) for m in re.finditer(r"^(peerchat_[a-z_]+)", text, re.M)
    }


def test_every_metric_the_operations_guide_names_is_exported() -> None:
    named = set(re.findall(r"peerchat_[a-z_]+[a-z]", DOCS.read_text()))
    assert named, "the guide names no metrics?"
    assert named - exported() == set()


def test_counters_are_exported_with_their_total_suffix() -> None:
    names = exported()
    assert "peerchat_messages_stored_total" in names
    assert "peerchat_event_loop_lag_seconds_bucket" in names


def _exposition(registry: CollectorRegistry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)


def test_the_lock_free_metrics_read_as_prometheus_clients_own() -> None:
    """Tally, Tallies and Spread (the message path's) are scraped exactly as the Counter and
    Histogram they replaced, bucket edges included."""
    theirs = CollectorRegistry()
    counter = Counter("x_frames", "frames", ["type"], registry=theirs)
    histogram = Histogram("x_seconds", "time", buckets=(0.001, 0.01, 1), registry=theirs)
    ours = Metrics()
    frames = Tallies("x_frames", "frames", "type")
    spread = Spread("x_seconds", "time", (0.001, 0.01, 1))
    collector = TallyCollector()
    collector.families.append(frames)
    collector.spreads.append(spread)
    mine = CollectorRegistry()
    mine.register(collector)
    for kind in ("send", "send", "typing"):
        counter.labels(kind).inc()
        frames.labels(kind).inc()
    for value in (0.0005, 0.001, 0.003, 0.01, 2.0):
        histogram.observe(value)
        spread.observe(value)
    assert _exposition(mine) == _exposition(theirs)
    assert 'x_seconds_bucket{le="0.001"} 2.0' in _exposition(mine)
    before = _exposition(ours.registry)
    ours.frames_in.labels("send").inc()
    ours.store_seconds.observe(0.003)
    after = _exposition(ours.registry)
    assert 'peerchat_frames_in_total{type="send"} 1.0' in after
    assert 'peerchat_message_store_seconds_bucket{le="0.005"} 1.0' in after
    assert before != after
