"""chat/metrics.py: metric names are the operator's contract. Every name the operations
guide tells operators to watch is one this process exports, as exported."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from chat.metrics import METRICS

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
