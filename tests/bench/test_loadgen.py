"""The benchmark's instrument itself: the generator against the bare relay, over real
sockets. If it miscounted, every figure in docs/performance.md would be wrong."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from bench.infra import ServerProcess
from bench.load import merge, merge_timelines, worst_slot
from bench.loadgen import Generator
from bench.wsclient import Side


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess("bench.relay", dict(os.environ), tmp_path / "relay.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gen() -> Iterator[Generator]:
    generator = Generator(1)
    yield generator
    generator.stop()


def _sides(url: str, conversations: int) -> list[Side]:
    return [
        Side(url, '{"type":"hello","token":"c' + str(i) + "|" + role + '"}', f"c{i}", role)
        for i in range(conversations)
        for role in ("member", "specialist")
    ]


def test_every_message_is_sent_acked_and_delivered_once(relay: ServerProcess, gen: Generator) -> None:
    [connected] = gen.connect([_sides(relay.url, 5)])
    assert connected["connected"] == 10 and connected["failed"] == {}
    replies = gen.run(1, 20.0, warmup_s=0.2, duration_s=1.2, drain_s=2)
    [reply] = replies
    # 10 sockets x 20 msgs/s x 1 s measured, give or take one per socket at the edges.
    assert 190 <= reply["sent"] <= 210, reply["sent"]
    assert reply["acked"] == reply["sent"] and reply["delivered"] == reply["sent"]
    assert reply["errors"] == 0 and reply["unexpected_closes"] == 0 and reply["send_failures"] == 0
    assert reply["seq_gaps"] == 0
    result = merge(replies, 200.0, 1.0)
    assert result["e2e_ms"]["p50"] > 0 and result["ack_ms"]["p50"] > 0
    assert result["undelivered"] == 0
    gen.close_sockets()
    [after] = gen.run(3, 20.0, warmup_s=0.0, duration_s=0.3, drain_s=0.1)
    assert after["sent"] == 0 and after["unexpected_closes"] == 0, "closed on purpose: no socket left"


def test_a_server_that_goes_away_is_counted_as_errors(relay: ServerProcess, gen: Generator) -> None:
    gen.connect([_sides(relay.url, 2)])
    stopper = threading.Timer(0.5, relay.stop)
    stopper.start()
    [reply] = gen.run(2, 20.0, warmup_s=0.1, duration_s=1.5, drain_s=0.5)
    stopper.join()
    assert reply["unexpected_closes"] == 4, reply
    assert sum(reply["close_codes"].values()) == 4
    assert reply["send_failures"] == 4, "each socket's next send fails, then it is left alone"
    assert 0 < reply["delivered"] < reply["sent"] + reply["send_failures"]


def test_a_burst_is_timed_from_each_request_to_its_conversation_started(
    relay: ServerProcess, gen: Generator
) -> None:
    def side(sub: str, role: str) -> Side:
        return Side(relay.url, '{"type":"hello","token":"' + sub + "|" + role + '"}', "", role)

    gen.connect([[side(f"s{i}", "specialist") for i in range(6)]])
    [on] = gen.available(timeout_s=10)
    assert on == {"specialists": 6, "available": 6}
    # One member more than there are specialists: it waits, and is never matched.
    [joined] = gen.connect([[side(f"m{i}", "member") for i in range(7)]])
    assert joined["connected"] == 7, "this call's sockets, not the worker's 13"
    [burst] = gen.request_burst(spread_s=0.3, timeout_s=3)
    assert burst["members"] == 7 and burst["queued"] == 7
    assert burst["offers"] == 6 and burst["started_specialists"] == 6
    assert burst["frames"]["member:conversation_started"] == 6 and burst["unexpected_closes"] == 0
    waits = burst["waits_us"]
    assert len(waits) == 6, "every specialist took one member; the seventh is still waiting"
    assert all(0 < w < 3_000_000 for w in waits)
    assert burst["error_codes"] == {}
    gen.close_sockets()


# ---------------------------------------------------------------------------- the wire
# Since round 10 the generator reads and writes frames itself after the handshake
# (bench/wsclient.py, `Client`). These servers check what a server would: every client
# frame masked (the library refuses an unmasked one), pings answered, fragments joined,
# the close code read; and that a latency reads what the server added.


@contextlib.contextmanager
def scripted_server(handler: Callable[[ServerConnection], None]) -> Iterator[str]:
    """A `websockets` server in a thread, each connection handled by `handler`."""
    server = serve(handler, "127.0.0.1", 0, ping_interval=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws"
    finally:
        server.shutdown()
        thread.join(10)


def test_pings_are_answered_fragments_joined_and_the_close_code_read(gen: Generator) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv(timeout=30)  # hello
        ws.send('{"type":"welcome"}')
        ws.recv(timeout=30)  # the first `send` of the step
        ponged = ws.ping(b"are you there").wait(10)
        # A text message in three fragments; the generator counts an `error` frame by code.
        ws.send(['{"type":"error",', '"code":"pong_', ("ok" if ponged else "missing") + '"}'])
        ws.close(4001, "scripted")

    with scripted_server(handler) as url:
        [connected] = gen.connect([[Side(url, '{"type":"hello"}', "c", "member")]])
        assert connected["connected"] == 1
        [reply] = gen.run(1, 20.0, warmup_s=0.0, duration_s=2.0, drain_s=0.2)
    assert reply["error_codes"] == {"pong_ok": 1}, reply
    assert reply["unexpected_closes"] == 1 and reply["close_codes"] == {"4001": 1}, reply
    assert reply["send_failures"] == 1, "the next send after the close fails, then the socket is left"


def test_latency_is_what_the_server_added_from_the_scheduled_send(gen: Generator) -> None:
    """A server that answers every `send` exactly 30 ms after it was due (the time is in
    its client_msg_id, one CLOCK_MONOTONIC for the machine): the generator must read no
    less than 30 ms, and about that."""
    delay_ns = 30_000_000

    def handler(ws: ServerConnection) -> None:
        ws.recv(timeout=30)
        ws.send('{"type":"welcome"}')
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = json.loads(ws.recv(timeout=30))
                msg_id = frame["client_msg_id"]
                due = int(msg_id.rpartition(".")[2]) + delay_ns
                time.sleep(max(0, due - time.monotonic_ns()) / 1e9)
                ws.send(json.dumps({"type": "ack", "client_msg_id": msg_id}))
                ws.send(json.dumps({"type": "message", "client_msg_id": msg_id, "sender": {"role": "peer"}}))

    with scripted_server(handler) as url:
        sides = [Side(url, '{"type":"hello"}', f"c{i}", "member") for i in range(4)]
        gen.connect([sides])
        [reply] = gen.run(1, 10.0, warmup_s=0.3, duration_s=2.3, drain_s=2)
        gen.close_sockets()
    assert reply["errors"] == 0 and reply["acked"] == reply["sent"] == reply["delivered"] >= 70, reply
    result = merge([reply], 40.0, 2.0)
    assert result["e2e_ms"]["p50"] >= 30 and result["ack_ms"]["p50"] >= 30, result
    assert result["e2e_ms"]["p50"] < 30 + 40, "a loaded machine adds a little, not a period"
    timeline = result["timeline"]
    assert sum(timeline["count"]) == reply["delivered"] and len(timeline["count"]) in (20, 21)
    assert min(m for m, n in zip(timeline["max_us"], timeline["count"], strict=True) if n) >= 30_000


def test_a_steps_timeline_shows_when_messages_were_slow() -> None:
    workers = [
        {
            "from_ns": 7,
            "slot_ms": 100,
            "count": [10, 10, 10],
            "slow": [0, 4, 0],
            "max_us": [900, 80_000, 700],
        },
        {"from_ns": 7, "slot_ms": 100, "count": [10, 10], "slow": [0, 2], "max_us": [800, 120_000]},
    ]
    merged = merge_timelines(workers)
    assert merged == {
        "from_ns": 7,
        "slot_ms": 100,
        "count": [20, 20, 10],
        "slow": [0, 6, 0],
        "max_us": [900, 120_000, 700],
    }
    assert worst_slot(merged) == {"at_ms": 100, "slow": 6, "of": 20, "max_ms": 120.0, "slots_with_slow": 1}
    assert worst_slot(merge_timelines(workers[:1] * 0)) is None
