"""The open-loop load generator: worker processes that hold the client sockets.

Each worker runs one event loop (uvloop, as the servers) holding its sockets
(bench/wsclient.py: `websockets`' handshake, then frames read and written by the client
itself, on plain transports; the generator shares the two cores with what it
measures, so it does per frame only what it must: no task, future or lock per socket or
frame; one scheduler per worker sends whatever is due). The parent hands it
sockets to open (`connect`), then steps to run (`run`): every socket sends on a fixed
schedule, at a random phase, whatever the server does (open loop: a slow server cannot
slow the sender down and hide its own latency). Each `send` carries its scheduled send time in
its `client_msg_id` (`<step>.<n>.<monotonic ns>`), so the `ack` and the peer's `message`
tell their latency without any table; CLOCK_MONOTONIC is one clock for every process of
the machine. Latencies go into HDR histograms in microseconds.

The parent talks to a worker over a pipe, one dict per command and one per reply;
`Generator` wraps that for the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import multiprocessing
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgspec
from hdrh.histogram import HdrHistogram
from websockets.uri import parse_uri

from bench.wsclient import Client, Side
from chat.cli import event_loop

# 1 µs to 60 s at 3 significant digits.
HIST_MAX_US = 60_000_000
TIMELINE_NS = 100_000_000  # a step's timeline in slots of 100 ms of send time
SLOW_US = 50_000  # the rate search's bound
BODY = "I have been thinking about what you said yesterday, and it helped a lot. Thank you for that."


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 3)


class _Sender(msgspec.Struct):
    role: str


class _Incoming(msgspec.Struct):
    """The few fields of a server frame the generator reads; the rest is skipped."""

    type: str
    client_msg_id: str | None = None
    seq: int | None = None
    sender: _Sender | None = None
    code: str | None = None
    offer_id: str | None = None


_decode = msgspec.json.Decoder(_Incoming).decode


@dataclass
class _Step:
    number: int
    measure_from: int  # ns: sends at or after this are measured
    e2e: HdrHistogram = field(default_factory=new_histogram)
    ack: HdrHistogram = field(default_factory=new_histogram)
    lag: HdrHistogram = field(default_factory=new_histogram)
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    delivered_in_window: int = 0
    send_failures: int = 0
    window_end: int = 0
    # The step's timeline, by when a measured message was due, in TIMELINE_NS slots:
    # messages delivered, those over SLOW_US end to end, and the worst. A stall somewhere
    # (a collector, a checkpoint, a loop busy elsewhere) shows as a run of slow slots.
    timeline_count: list[int] = field(default_factory=list)
    timeline_slow: list[int] = field(default_factory=list)
    timeline_max_us: list[int] = field(default_factory=list)

    def on_timeline(self, sent_ns: int, micros: int) -> None:
        slot = (sent_ns - self.measure_from) // TIMELINE_NS
        if slot >= len(self.timeline_count):
            grow = slot + 1 - len(self.timeline_count)
            self.timeline_count += [0] * grow
            self.timeline_slow += [0] * grow
            self.timeline_max_us += [0] * grow
        self.timeline_count[slot] += 1
        if micros > SLOW_US:
            self.timeline_slow[slot] += 1
        if micros > self.timeline_max_us[slot]:
            self.timeline_max_us[slot] = micros


@dataclass
class _Burst:
    """Matching a burst: specialists accept every offer at once, members time `request` →
    `conversation_started` from when the request was due."""

    waits_us: list[int] = field(default_factory=list)
    available: int = 0  # `availability` echoes
    offers: int = 0
    queued: int = 0
    queue_updates: int = 0
    started_specialists: int = 0
    frames: Counter[str] = field(default_factory=Counter)  # every frame type seen, by role
    # Where a burst's time goes: request → `queued` per member; each `offer`'s arrival after
    # the burst began; a specialist's `accept` → their `conversation_started`.
    start_ns: int = 0
    queued_us: list[int] = field(default_factory=list)
    offer_at_us: list[int] = field(default_factory=list)
    accept_us: list[int] = field(default_factory=list)


class Worker:
    def __init__(self) -> None:
        self.sockets: list[Client] = []
        self.step: _Step | None = None
        self.burst: _Burst | None = None
        self.errors: Counter[str] = Counter()
        self.unexpected_closes = 0
        self.close_codes: Counter[str] = Counter()
        self.seq_gaps = 0
        self.closing = False

    # ------------------------------------------------------------------ sockets

    async def connect(self, sides: list[Side], concurrency: int, compression: bool) -> dict[str, Any]:
        started = time.monotonic()
        held_before = len(self.sockets)
        gate = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        extensions: Counter[str] = Counter()

        async def one(side: Side) -> None:
            uri = parse_uri(side.url)
            async with gate:
                client = Client(side, compression, self._on_text, self._lost)
                client.first_text = asyncio.get_running_loop().create_future()
                try:
                    await asyncio.wait_for(
                        asyncio.get_running_loop().create_connection(lambda: client, uri.host, uri.port), 60
                    )
                    response = await asyncio.wait_for(client.opened, 60)
                    client.send_text(side.hello)
                    welcome = _decode(await asyncio.wait_for(client.first_text, 60))
                except Exception as exc:
                    failures[type(exc).__name__] += 1
                    if client.transport is not None:
                        client.transport.abort()
                    return
                client.first_text = None
                if welcome.type != "welcome":
                    failures[f"no welcome: {welcome.type}"] += 1
                    client.close()
                    return
                extensions[response.headers.get("Sec-WebSocket-Extensions", "none")] += 1
                client.prefix = (
                    '{"type":"send","conversation_id":"' + side.conversation_id + '","body":"' + BODY + '",'
                    '"client_msg_id":"'
                ).encode()
                self.sockets.append(client)

        await asyncio.gather(*(one(s) for s in sides))
        return {
            # This call's sockets only: the worker may hold others from earlier calls.
            "connected": len(self.sockets) - held_before,
            "failed": dict(failures),
            "extensions": dict(extensions),
            "seconds": time.monotonic() - started,
        }

    async def close(self) -> dict[str, Any]:
        self.closing = True
        for client in self.sockets:
            client.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.closed for c in self.sockets)), 10)
        for client in self.sockets:
            if client.transport is not None and not client.lost:
                client.transport.abort()
        closed = len(self.sockets)
        self.sockets = []
        self.closing = False
        return {"closed": closed}

    def _on_text(self, client: Client, raw: bytes) -> None:
        now = time.monotonic_ns()
        try:
            frame = _decode(raw)
        except msgspec.DecodeError:
            self.errors["undecodable"] += 1
            return
        kind = frame.type
        if kind == "message":
            if frame.seq is not None:
                if client.last_seq and frame.seq != client.last_seq + 1:
                    self.seq_gaps += 1
                client.last_seq = frame.seq
            if frame.sender is not None and frame.sender.role == client.side.role:
                return  # our own message, echoed to every device after its ack
            self._measure(frame.client_msg_id, now, e2e=True)
        elif kind == "ack":
            self._measure(frame.client_msg_id, now, e2e=False)
        elif kind == "error":
            self.errors[frame.code or "?"] += 1
        elif self.burst is not None:
            self._on_burst(client, kind, frame, now)

    def _on_burst(self, client: Client, kind: str, frame: _Incoming, now: int) -> None:
        burst = self.burst
        assert burst is not None
        burst.frames[f"{client.side.role}:{kind}"] += 1
        if kind == "offer" and frame.offer_id is not None:
            burst.offers += 1
            burst.offer_at_us.append((now - burst.start_ns) // 1000)
            client.accepted_at = now
            client.send_text('{"type":"accept","offer_id":"' + frame.offer_id + '"}')
        elif kind == "conversation_started":
            if client.side.role != "member":
                burst.started_specialists += 1
                if client.accepted_at:
                    burst.accept_us.append((now - client.accepted_at) // 1000)
                    client.accepted_at = 0
            elif client.requested_at:
                burst.waits_us.append(max(1, (now - client.requested_at) // 1000))
                client.requested_at = 0
        elif kind == "queued":
            burst.queued += 1
            if client.requested_at:
                burst.queued_us.append((now - client.requested_at) // 1000)
        elif kind == "queue_update":
            burst.queue_updates += 1
        elif kind == "availability":
            burst.available += 1

    def _lost(self, client: Client) -> None:
        if not self.closing:
            self.unexpected_closes += 1
            self.close_codes[client.close_code()] += 1

    def _measure(self, client_msg_id: str | None, now: int, *, e2e: bool) -> None:
        step = self.step
        if step is None or client_msg_id is None:
            return
        number, _, rest = client_msg_id.partition(".")
        if number != str(step.number):
            return
        sent_ns = int(rest.rpartition(".")[2])
        if sent_ns < step.measure_from:
            return
        micros = min(max(1, (now - sent_ns) // 1000), HIST_MAX_US)
        if e2e:
            step.e2e.record_value(micros)
            step.on_timeline(sent_ns, micros)
            step.delivered += 1
            if now < step.window_end:
                step.delivered_in_window += 1
        else:
            step.ack.record_value(micros)
            step.acked += 1

    # ------------------------------------------------------------------ load

    async def run(
        self, number: int, rate: float, start_ns: int, warmup_s: float, duration_s: float, drain_s: float
    ) -> dict[str, Any]:
        """Every socket sends `rate` messages a second from `start_ns` for `duration_s`;
        sends in the first `warmup_s` are not measured. Then wait up to `drain_s` for the
        measured ones to be acked and delivered."""
        period = int(1e9 / rate)
        end_ns = start_ns + int(duration_s * 1e9)
        step = _Step(number=number, measure_from=start_ns + int(warmup_s * 1e9), window_end=end_ns)
        self.step = step
        errors_before = sum(self.errors.values())
        closes_before = self.unexpected_closes
        codes_before = Counter(self.close_codes)
        gaps_before = self.seq_gaps
        cpu_before = time.process_time()
        rng = random.Random(number)
        phases = [(start_ns + rng.randrange(period), i) for i, c in enumerate(self.sockets) if not c.lost]
        await self._send_all(step, period, phases, end_ns)
        drained_at = time.monotonic() + drain_s
        # Polling, not an Event: the readers would have to set it on every frame.
        while time.monotonic() < drained_at and (step.delivered < step.sent or step.acked < step.sent):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        cpu = time.process_time() - cpu_before
        self.step = None
        return {
            "sent": step.sent,
            "acked": step.acked,
            "delivered": step.delivered,
            "delivered_in_window": step.delivered_in_window,
            "send_failures": step.send_failures,
            "errors": sum(self.errors.values()) - errors_before,
            "error_codes": dict(self.errors),
            "unexpected_closes": self.unexpected_closes - closes_before,
            "close_codes": dict(self.close_codes - codes_before),
            "seq_gaps": self.seq_gaps - gaps_before,
            "e2e": step.e2e.encode(),
            "ack": step.ack.encode(),
            "lag": step.lag.encode(),
            "cpu_s": cpu,
            "timeline": {
                "from_ns": step.measure_from,  # CLOCK_MONOTONIC, as every process reads it
                "slot_ms": TIMELINE_NS // 1_000_000,
                "count": step.timeline_count,
                "slow": step.timeline_slow,
                "max_us": step.timeline_max_us,
            },
        }

    # ------------------------------------------------------------------ burst

    async def available(self, timeout_s: float) -> dict[str, Any]:
        """Every specialist socket says `availability available`; wait for the echoes."""
        self.burst = _Burst()
        specialists = [c for c in self.sockets if c.side.role == "specialist" and not c.lost]
        for client in specialists:
            client.send_text('{"type":"availability","status":"available"}')
        deadline = time.monotonic() + timeout_s
        while self.burst.available < len(specialists) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return {"specialists": len(specialists), "available": self.burst.available}

    async def request_burst(
        self, start_ns: int, spread_s: float, timeout_s: float, seed: int
    ) -> dict[str, Any]:
        """Every member socket sends `request` once, at a random moment within `spread_s`
        of `start_ns`; then wait (up to `timeout_s` from the start) until each got its
        `conversation_started`. Waits are counted from when the request was due."""
        burst = self.burst or _Burst()
        burst.start_ns = start_ns
        self.burst = burst
        errors_before = Counter(self.errors)
        closes_before = self.unexpected_closes
        members = [c for c in self.sockets if c.side.role == "member" and not c.lost]
        rng = random.Random(seed)
        due = sorted((start_ns + rng.randrange(max(1, int(spread_s * 1e9))), i) for i in range(len(members)))
        lag = new_histogram()
        for at, i in due:
            now = time.monotonic_ns()
            if at > now:
                await _sleep_ns(at - now)
                now = time.monotonic_ns()
            lag.record_value(min(max(1, (now - at) // 1000), HIST_MAX_US))
            members[i].requested_at = at
            if not members[i].send_text('{"type":"request","tags":[]}'):
                members[i].requested_at = 0
        deadline = start_ns + int(timeout_s * 1e9)
        while len(burst.waits_us) < len(members) and time.monotonic_ns() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self.burst = None
        return {
            "members": len(members),
            "waits_us": list(burst.waits_us),
            "offers": burst.offers,
            "queued": burst.queued,
            "queue_updates": burst.queue_updates,
            "started_specialists": burst.started_specialists,
            "error_codes": dict(self.errors - errors_before),
            "unexpected_closes": self.unexpected_closes - closes_before,
            "frames": dict(burst.frames),
            "send_lag_p99_us": lag.get_value_at_percentile(99),
            "queued_us": burst.queued_us,
            "offer_at_us": burst.offer_at_us,
            "accept_us": burst.accept_us,
        }

    async def _send_all(self, step: _Step, period: int, due: list[tuple[int, int]], end_ns: int) -> None:
        """One scheduler for every socket of the worker: send whatever is due, sleep until
        the next one is."""
        heapq.heapify(due)
        number = step.number
        counters = [0] * len(self.sockets)
        while due:
            now = time.monotonic_ns()
            first = due[0][0]
            if first > now:
                await _sleep_ns(first - now)
                now = time.monotonic_ns()
            while due and due[0][0] <= now:
                at, i = due[0]
                client = self.sockets[i]
                step.lag.record_value(min(max(1, (now - at) // 1000), HIST_MAX_US))
                # The scheduled time, not the actual one: if the server pushes back, the
                # wait counts against it (no coordinated omission).
                if client.lost or not client.send(client.prefix + b'%d.%d.%d"}' % (number, counters[i], at)):
                    step.send_failures += 1
                    heapq.heappop(due)  # this socket is done
                    continue
                if at >= step.measure_from:
                    step.sent += 1
                counters[i] += 1
                if at + period < end_ns:
                    heapq.heapreplace(due, (at + period, i))
                else:
                    heapq.heappop(due)


async def _sleep_ns(ns: int) -> None:
    """Sleep `ns`, rounded up to the millisecond. The loops' timers have that resolution
    anyway (asyncio's epoll rounds its timeout up to it); uvloop runs a timer under half a
    millisecond as a plain callback on the next turn, so a scheduler sleeping until the
    next send 0.3 ms away would spin through turns instead (a worker at 1,000 sends a
    second then burned most of a core: the same 1 s of 0.3 ms sleeps cost 0.94 CPU seconds
    on uvloop, 0.04 on asyncio)."""
    await asyncio.sleep(-(-ns // 1_000_000) / 1000)


def _serve(conn: Connection) -> None:
    async def loop() -> None:
        worker = Worker()
        while True:
            command: dict[str, Any] = await asyncio.to_thread(conn.recv)
            op = command.pop("op")
            if op == "exit":
                await worker.close()
                conn.send({"ok": True})
                return
            try:
                if op == "connect":
                    reply = await worker.connect(**command)
                elif op == "run":
                    reply = await worker.run(**command)
                elif op == "close":
                    reply = await worker.close()
                elif op == "available":
                    reply = await worker.available(**command)
                elif op == "request_burst":
                    reply = await worker.request_burst(**command)
                else:
                    raise ValueError(f"unknown op {op!r}")
            except Exception as exc:
                reply = {"exception": f"{type(exc).__name__}: {exc}"}
            conn.send(reply)

    # The servers' loop (uvloop where installed, chat/cli.py `event_loop`): on plain
    # asyncio the loop's own Python (selector, transports, handles) was most of a worker's
    # time, and the generator's CPU counts in the machine's busy share at the goal load.
    if event_loop() == "uvloop":
        import uvloop

        uvloop.run(loop())
    else:
        asyncio.run(loop())


class Generator:
    """`count` worker processes; sides are dealt to them by the caller's `worker_of`."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for i in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), name=f"bench-loadgen-{i}", daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _all(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        replies: list[dict[str, Any]] = [pipe.recv() for pipe in self.pipes]
        for reply in replies:
            if "exception" in reply:
                raise RuntimeError(f"load generator failed: {reply['exception']}")
        return replies

    def connect(
        self, shares: list[list[Side]], *, concurrency: int = 64, compression: bool = False
    ) -> list[dict[str, Any]]:
        return self._all(
            [
                {"op": "connect", "sides": share, "concurrency": concurrency, "compression": compression}
                for share in shares
            ]
        )

    def run(
        self, number: int, rate: float, *, warmup_s: float, duration_s: float, drain_s: float
    ) -> list[dict[str, Any]]:
        start_ns = time.monotonic_ns() + 200_000_000  # every worker starts on the same instant
        command = {
            "op": "run",
            "number": number,
            "rate": rate,
            "start_ns": start_ns,
            "warmup_s": warmup_s,
            "duration_s": duration_s,
            "drain_s": drain_s,
        }
        return self._all([dict(command) for _ in self.pipes])

    def available(self, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        return self._all([{"op": "available", "timeout_s": timeout_s} for _ in self.pipes])

    def request_burst(self, spread_s: float, timeout_s: float) -> list[dict[str, Any]]:
        start_ns = time.monotonic_ns() + 200_000_000
        return self._all(
            [
                {
                    "op": "request_burst",
                    "start_ns": start_ns,
                    "spread_s": spread_s,
                    "timeout_s": timeout_s,
                    "seed": i,
                }
                for i in range(len(self.pipes))
            ]
        )

    def close_sockets(self) -> None:
        self._all([{"op": "close"} for _ in self.pipes])

    def stop(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            with contextlib.suppress(Exception):
                pipe.send({"op": "exit"})
                if pipe.poll(30):
                    pipe.recv()
            proc.join(5)
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, 9)
