"""Conversations seeded straight into PostgreSQL, and `Participant`, a device that chats
the way a careful client does (resume from its last seq, resend unacked sends with the same
client_msg_id) and records every delivery-order violation it sees; then what was stored and
delivered, checked and timed."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.faults.harness.cluster import Cluster
from tests.support.client import token


@dataclass(frozen=True)
class Seeded:
    conversation_id: str
    member_id: str
    specialist_id: str


async def seed_conversations(database_url: str, count: int, prefix: str = "c") -> list[Seeded]:
    """`count` active conversations, each between its own member and specialist, written
    straight to PostgreSQL as an accepted offer would leave them (matching is not what
    these tests are about)."""
    conn = await asyncpg.connect(database_url)
    seeded = []
    try:
        async with conn.transaction():
            for i in range(count):
                s = Seeded(f"{prefix}{i:03d}", f"{prefix}-member-{i:03d}", f"{prefix}-spec-{i:03d}")
                await conn.execute(
                    """INSERT INTO specialists (id, name, status, active_chats) VALUES ($1, $2, 'away', 1)""",
                    s.specialist_id,
                    f"Spec {i}",
                )
                await conn.execute(
                    """INSERT INTO conversations (id, member_id, member_alias, specialist_id,
                           specialist_name, tags) VALUES ($1, $2, $3, $4, $5, '{}')""",
                    s.conversation_id,
                    s.member_id,
                    f"Member {i}",
                    s.specialist_id,
                    f"Spec {i}",
                )
                seeded.append(s)
    finally:
        await conn.close()
    return seeded


async def seat_participants(
    cluster: Cluster, conversations: int, sends: int, urls: list[str] | Any = None
) -> list[Participant]:
    """Seed `conversations` and connect both sides of each, the member and the specialist on
    different processes. `urls` is what a participant may reconnect to (a list, or a callable
    returning the URLs worth trying now); by default every process."""
    seeded = await seed_conversations(cluster.database_url, conversations)
    first = [svc.ws for svc in cluster.web]
    participants = []
    for i, s in enumerate(seeded):
        for role, user, at in (("member", s.member_id, i), ("specialist", s.specialist_id, i + 1)):
            p = Participant(
                role=role,
                user_id=user,
                conversation_id=s.conversation_id,
                urls=first if urls is None else urls,
                sends=sends,
            )
            await p.connect(first[at % len(first)])
            participants.append(p)
    return participants


def body_for(conversation_id: str, role: str, n: int) -> str:
    return f"{conversation_id}/{role}/{n} " + "lorem ipsum " * (n % 7)


class Participant:
    """One device in one conversation. `sends` messages numbered 0..sends-1 with
    client_msg_id `<role>-<n>`; everything delivered is checked as it arrives: on each
    connection, messages must continue exactly where the resume left off."""

    def __init__(
        self,
        *,
        role: str,
        user_id: str,
        conversation_id: str,
        urls: list[str] | Any,
        sends: int,
        window: int = 4,
    ) -> None:
        self.role = role
        self.user_id = user_id
        self.conversation_id = conversation_id
        self.urls = urls  # a list, or a callable returning the URLs worth trying now
        self.sends = sends
        self.window = window
        self.token = token(role, user_id, f"{role} {user_id[-3:]}")
        self.last_seq = 0  # highest seq received, all before it received too
        self.bodies: dict[int, str] = {}  # seq → body as delivered
        self.violations: list[str] = []
        self.acked: dict[str, int] = {}  # client_msg_id → seq
        self.unacked: dict[str, str] = {}  # client_msg_id → body, sent and not yet acked
        self.errors: list[str] = []
        self.received_at: dict[int, float] = {}  # seq → time.monotonic() of its first delivery
        self.acked_at: dict[int, float] = {}  # seq → time.monotonic() of the ack of its send
        self.close_codes: list[int] = []
        self.reconnects = 0
        self.sent = 0  # messages numbered so far
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        self.url: str | None = None

    def _candidates(self) -> list[str]:
        urls = self.urls() if callable(self.urls) else self.urls
        return list(urls)

    async def connect(self, url: str | None = None, attempts: int = 200) -> None:
        """Connect (to `url`, or any candidate), say hello with a resume, start reading."""
        for attempt in range(attempts):
            target = url if url is not None and attempt == 0 else random.choice(self._candidates())
            try:
                ws = await websockets.connect(
                    target, max_size=None, open_timeout=5, close_timeout=2, proxy=None
                )
            except (OSError, InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            try:
                await ws.send(
                    msgspec.json.encode(
                        {
                            "type": "hello",
                            "token": self.token,
                            "resume": {self.conversation_id: self.last_seq},
                        }
                    ).decode()
                )
                welcome = msgspec.json.decode(await asyncio.wait_for(ws.recv(), 10))
            except (ConnectionClosed, TimeoutError, OSError):
                with contextlib.suppress(Exception):
                    await ws.close()
                await asyncio.sleep(0.1)
                continue
            if welcome.get("type") != "welcome":
                self.violations.append(f"first frame was {welcome.get('type')}, not welcome")
            self.ws, self.url = ws, target
            self._reader = asyncio.create_task(self._read(ws))
            # Whatever was in flight when the last connection died goes again, same ids.
            for cmid, body in list(self.unacked.items()):
                await self._send_frame(cmid, body)
            return
        raise AssertionError(f"{self.user_id} could not reconnect")

    async def _read(self, ws: ClientConnection) -> None:
        expected = self.last_seq + 1
        try:
            async for raw in ws:
                frame = msgspec.json.decode(raw)
                kind = frame.get("type")
                if kind == "message" and frame["conversation_id"] == self.conversation_id:
                    seq = frame["seq"]
                    if seq != expected:
                        what = "duplicate" if seq < expected else "gap"
                        self.violations.append(f"{self.user_id}: {what}: got {seq}, expected {expected}")
                    if seq > self.last_seq:
                        self.last_seq = seq
                        expected = seq + 1
                    self.bodies.setdefault(seq, frame["body"])
                    self.received_at.setdefault(seq, time.monotonic())
                elif kind == "ack":
                    cmid = frame["client_msg_id"]
                    if cmid in self.acked and self.acked[cmid] != frame["seq"]:
                        self.violations.append(f"{cmid} acked as {self.acked[cmid]} then {frame['seq']}")
                    self.acked[cmid] = frame["seq"]
                    self.acked_at.setdefault(frame["seq"], time.monotonic())
                    self.unacked.pop(cmid, None)
                elif kind == "error":
                    self.errors.append(frame["code"])
                    if frame["code"] != "unavailable":
                        self.violations.append(f"{self.user_id}: error {frame['code']}")
                self._progress.set()
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            self.close_codes.append(rcvd.code if rcvd is not None else 1006)
            self._progress.set()

    async def _send_frame(self, cmid: str, body: str) -> None:
        assert self.ws is not None
        frame = {"type": "send", "conversation_id": self.conversation_id, "client_msg_id": cmid, "body": body}
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(msgspec.json.encode(frame).decode())

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def drop(self, abrupt: bool) -> None:
        """Lose the connection: a clean close, or the TCP connection simply vanishing."""
        if self.ws is None:
            return
        if abrupt:
            self.ws.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader

    async def ensure_connected(self) -> None:
        if not self.connected:
            self.reconnects += 1
            await self.connect()

    async def _wait_progress(self, timeout: float) -> None:
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout)

    async def run(
        self,
        total_expected: int,
        *,
        drop_chance: float = 0.0,
        deadline_s: float = 120,
        resend_after: float = 3,
        pace_s: float = 0.0,
    ) -> None:
        """Send everything, keep at most `window` unacked, survive drops, and return once
        all sends are acked and `total_expected` messages were received in order."""
        deadline = time.monotonic() + deadline_s
        last_resend = time.monotonic()
        while self.sent < self.sends or self.unacked or self.last_seq < total_expected:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.user_id}: sent {self.sent}, unacked {len(self.unacked)}, "
                    f"last_seq {self.last_seq}/{total_expected}"
                )
            await self.ensure_connected()
            if drop_chance and random.random() < drop_chance:
                await self.drop(abrupt=random.random() < 0.5)
                continue
            if self.sent < self.sends and len(self.unacked) < self.window:
                cmid = f"{self.role}-{self.sent}"
                body = body_for(self.conversation_id, self.role, self.sent)
                self.unacked[cmid] = body
                self.sent += 1
                await self._send_frame(cmid, body)
                if pace_s:
                    await asyncio.sleep(pace_s)
                continue
            await self._wait_progress(0.5)
            if self.unacked and time.monotonic() - last_resend > resend_after:
                # Answered `unavailable`, or lost with a process: the same ids again.
                last_resend = time.monotonic()
                for cmid, body in list(self.unacked.items()):
                    await self._send_frame(cmid, body)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


async def check_in_postgres(
    database_url: str, participants: list[Participant], per_conversation: int
) -> dict[str, int]:
    """Every conversation holds exactly seq 1..per_conversation, each client_msg_id once,
    every acked (conversation, seq) holds the body that was sent, and what each device was
    delivered is exactly what is stored. Returns counts for the report."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT conversation_id, seq, sender_role, client_msg_id, body FROM messages ORDER BY 1, 2"
        )
    finally:
        await conn.close()
    stored: dict[str, dict[int, tuple[str, str, str]]] = {}
    for r in rows:
        stored.setdefault(r["conversation_id"], {})[r["seq"]] = (
            r["sender_role"],
            r["client_msg_id"],
            r["body"],
        )
    acked = 0
    for p in participants:
        conv = stored.get(p.conversation_id, {})
        assert sorted(conv) == list(range(1, per_conversation + 1)), (
            f"{p.conversation_id}: seqs {sorted(conv)}"
        )
        cmids = [(role, cmid) for role, cmid, _ in conv.values()]
        assert len(cmids) == len(set(cmids)), f"{p.conversation_id}: a client_msg_id stored twice"
        for cmid, seq in p.acked.items():
            role, stored_cmid, body = conv[seq]
            n = int(cmid.split("-")[1])
            assert (role, stored_cmid, body) == (p.role, cmid, body_for(p.conversation_id, p.role, n))
            acked += 1
        assert p.bodies == {seq: body for seq, (_, _, body) in conv.items()}, f"{p.user_id} saw other bodies"
    return {"messages": len(rows), "acked": acked}


@dataclass(frozen=True)
class Delivery:
    """How messages delivered after `since` reached the other side of their conversation."""

    messages: int  # delivered to the other side after `since`
    max_latency_s: float  # ack → delivery to the other side, the worst one
    # When, relative to `since`, the last message slower than `slow_s` arrived: from then on
    # every delivery was prompt again (0 if none was slow). The time to recover.
    recovered_after_s: float


def delivery_after(participants: list[Participant], since: float, slow_s: float = 1.0) -> Delivery:
    by_conversation: dict[str, list[Participant]] = {}
    for p in participants:
        by_conversation.setdefault(p.conversation_id, []).append(p)
    messages, worst, last_slow = 0, 0.0, since
    for pair in by_conversation.values():
        for sender in pair:
            for receiver in pair:
                if receiver is sender:
                    continue
                for seq, acked in sender.acked_at.items():
                    received = receiver.received_at.get(seq)
                    if received is None or received < since:
                        continue
                    messages += 1
                    latency = max(0.0, received - acked)
                    worst = max(worst, latency)
                    if latency > slow_s:
                        last_slow = max(last_slow, received)
    return Delivery(messages, worst, last_slow - since)
