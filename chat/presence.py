"""Who is connected, anywhere: each live socket counts under its process's lease, which
the process's heartbeat keeps fresh (chat/process_lease.py).

A user is online while any of their sockets is on a process whose lease is unexpired; a
specialist with no such socket counts as offline once the TTL passes, even if their process
died without a word. Backends: `presence_redis` and `presence_memory`, held to one contract
by tests/chat/test_presence.py. The clock is passed in so the memory backend is exact.

Presence is soft state: every write is best effort, and each process writes all its
sockets again when its lease turns out missing or lapsed (after a Redis restart, within one
heartbeat interval). Absence is recorded too, so the reconnect grace (chat/upkeep/grace.py)
can count from the moment a specialist left, whichever process noticed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

# What `Presence.specialists_mark` returns: compared for equality only.
SpecialistsMark = tuple[str, ...]


class Presence(Protocol):
    async def connect(self, user_id: str, role: str, conn_id: str, now: float) -> None:
        """Best effort: a socket that cannot be written now is written by the next heartbeat."""

    async def heartbeat(self, leases: Iterable[tuple[str, str, str]], now: float) -> None:
        """Renew this process's lease. `leases`: its sockets, (user_id, role, conn_id); any
        not connected here yet are taken on. Writes them all again after a Redis wipe."""

    async def disconnect(self, user_id: str, role: str, conn_id: str, now: float) -> bool:
        """Drop one socket; True if the user has no live socket left (a specialist is then
        marked absent from `now`)."""

    async def is_online(self, user_id: str, role: str, now: float) -> bool:
        """Whether the person (role, user_id) has a live lease: a member and a specialist
        with the same id are two people (PRODUCT.md §4)."""

    async def online_among(self, user_ids: Sequence[str], role: str, now: float) -> set[str]:
        """Which of these people (all of one role) have a live lease, asked in one round trip
        (a sweep over thousands of members must not take a connection per member)."""

    async def forget(self, user_id: str, role: str) -> None:
        """Drop everything kept about the person (role, user_id) (an erasure, PRODUCT.md
        §10). Close their sockets first, or the next heartbeat writes their lease again."""

    async def online_specialists(self, now: float) -> set[str]: ...

    async def specialists_marked(self, now: float) -> tuple[set[str], SpecialistsMark]:
        """`online_specialists` and `specialists_mark`, read at one instant."""

    async def specialists_mark(self, now: float) -> SpecialistsMark:
        """A few words that change whenever the online specialists change without a poke
        to the matchmaker: a process's lease starting or lapsing (it died), a Redis that
        came back empty, a rewrite writing what a failed connect or close could not. Equal
        to a mark `specialists_marked` returned means: nobody went on or offline since,
        but by a connect or a close that poked the matchmaker after its write
        (chat/matchmaker.py `_unpoked_change`). A handful of entries, one per live
        process, where the online specialists are thousands."""

    async def absent_since(
        self, user_ids: Sequence[str], now: float, *, mark: bool
    ) -> dict[str, tuple[float, bool]]:
        """For specialists (by id) known to be offline: since when they have been absent,
        and whether this call is the one that marked them (`mark=True` records `now` for
        any not yet marked; exactly one caller across all processes sees True). Unmarked
        specialists are left out."""

    async def settled(self, now: float) -> bool:
        """False during the first TTL after the store came up empty (a fresh or wiped Redis):
        leases are still being rebuilt by heartbeats, so a missing lease means nothing yet."""

    def returned(self) -> list[str]:
        """Specialists with a socket on this process whose absence mark its rewrite removed
        (after its lease lapsed: it stalled, or lost Redis, past the TTL) since the last
        call. Meanwhile a sweep elsewhere may have told their members `reconnecting`; the
        heartbeat tells them `connected` (chat/upkeep/heartbeat.py)."""

    async def departures(self) -> int:
        """A count that moves whenever a specialist went offline by a socket's close (their
        last, anywhere): unchanged between two reads, and `steady` over that time, means no
        specialist went offline meanwhile (chat/upkeep/grace.py)."""

    async def lapses(self, now: float, within_s: float) -> tuple[int, float | None]:
        """How many process leases ran out in the `within_s` seconds before `now`, and
        since when presence has been up: when it last came up empty, as the first
        `settled` after that noted it (None until one did). A wipe removes the note, so an
        unchanged one means presence did not come up empty in between."""

    async def steady(self, now: float, within_s: float) -> bool:
        """True if no process's lease ran out in the `within_s` seconds before `now` and
        presence is settled: then everyone who went offline meanwhile did so by a socket's
        close, which some process saw (no process died or stalled without a word). A
        process that died while Redis was down, and came back empty, leaves no trace to
        see: what it held is found by the rounds that do not rely on this."""
