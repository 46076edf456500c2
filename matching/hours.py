"""Opening hours (PRODUCT.md §3 `PEERCHAT_HOURS`, `PEERCHAT_CLOSED_DATES`): a weekly schedule
in one time zone, and whether the service is open at a given instant.

Pure: the clock is passed in. Everything is decided on the local wall clock of the schedule's
zone, so a span means what it says on both sides of a daylight-saving change:

- `mon-fri 08:00-22:00` opens at 08:00 local time whatever the UTC offset that day.
- A span whose end is not after its start runs past midnight: `fri 22:00-02:00` is open from
  Friday 22:00 to Saturday 02:00. `24:00` as an end means midnight at the end of the day.
- A day range may wrap the week: `fri-mon` is Friday, Saturday, Sunday and Monday.
- A closed date closes the whole local calendar day (00:00 to 24:00), and a span belongs to
  the day it starts: a late span that starts on a closed date does not run past midnight
  either (`fri 22:00-02:00` with Friday closed opens next on a later Friday).
- Wall-clock times that do not exist (the hour skipped in spring) are never open; an opening
  that falls inside the skipped hour happens when the clock jumps past it. Times that happen
  twice (the hour repeated in autumn) are judged by their wall-clock reading, both times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60

_SPAN = re.compile(r"^(?P<days>[a-z]+(?:-[a-z]+)?)\s+(?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)$")


class HoursError(ValueError):
    """The schedule text cannot be read; the message names the part that is wrong."""


@dataclass(frozen=True, slots=True)
class Span:
    """Open on `day` (0 = Monday) from `start` to `end`, minutes after local midnight.
    `end` > `start` always; `end` beyond 1440 runs into the next day."""

    day: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Schedule:
    zone: ZoneInfo
    spans: tuple[Span, ...]
    closed_dates: frozenset[date] = frozenset()

    def is_open(self, now: datetime) -> bool:
        """Whether the service is open at the aware instant `now`."""
        local = now.astimezone(self.zone)
        day = local.date()
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return self._open_at_wall(day, minute)

    def opens_at(self, now: datetime) -> datetime | None:
        """The first instant at or after `now` when the service is open (UTC), `now` itself when
        it is open already, or None if no span ever opens (each skipped in a clock change)."""
        if self.is_open(now):
            return now.astimezone(UTC)
        today = now.astimezone(self.zone).date()
        best: datetime | None = None
        # Every span recurs weekly, so each closed date ahead can push the next opening out by
        # at most a week; past that horizon nothing opens.
        ahead = sum(1 for d in self.closed_dates if d >= today)
        horizon = 7 * (ahead + 1) + 2
        for offset in range(-1, horizon):
            day = today + timedelta(days=offset)
            if best is not None and day > best.astimezone(self.zone).date() + timedelta(days=1):
                break
            for wall in self._openings_on(day):
                for instant in _instants(self.zone, wall):
                    if instant >= now and (best is None or instant < best) and self.is_open(instant):
                        best = instant
        return None if best is None else best.astimezone(UTC)

    def _open_at_wall(self, day: date, minute: float) -> bool:
        if day in self.closed_dates:
            return False
        weekday = day.weekday()
        yesterday = (weekday - 1) % 7
        for span in self.spans:
            if span.day == weekday and span.start <= minute < span.end:
                return True
            if (
                span.day == yesterday
                and minute < span.end - MINUTES_PER_DAY
                and day - timedelta(days=1) not in self.closed_dates
            ):
                return True
        return False

    def _openings_on(self, day: date) -> list[datetime]:
        """Naive local wall times on `day` at which the service may go from closed to open:
        span starts, and midnight (a span running on from the day before, past a closed day)."""
        weekday = day.weekday()
        walls = [_wall(day, s.start) for s in self.spans if s.day == weekday]
        if any(s.day == (weekday - 1) % 7 and s.end > MINUTES_PER_DAY for s in self.spans):
            walls.append(_wall(day, 0))
        return walls


def _wall(day: date, minute: int) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60))


def _instants(zone: ZoneInfo, wall: datetime) -> list[datetime]:
    """The UTC instants whose local reading is `wall` (two in the repeated hour), or, when the
    clock skips over `wall`, the instant it jumps past it."""
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            found.append(instant)
    if found:
        return found
    # In the gap: fold=1 reads the wall time with the offset after the change (an instant before
    # it), fold=0 with the offset before (an instant after it). Search between the two for the
    # first instant whose local reading is at or past `wall`; offsets change on whole seconds.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return [high]


def parse_hours(hours: str, closed_dates: str = "") -> Schedule | None:
    """Read `PEERCHAT_HOURS` and `PEERCHAT_CLOSED_DATES`. None means always open (no hours set).

    Raises HoursError naming the part that is wrong."""
    hours = hours.strip()
    if not hours:
        if closed_dates.strip():
            raise HoursError("PEERCHAT_CLOSED_DATES needs PEERCHAT_HOURS (the dates are in its time zone)")
        return None
    zone_name, _, rest = hours.partition(" ")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"PEERCHAT_HOURS must start with an IANA time zone, not {zone_name!r}") from None
    if not rest.strip():
        raise HoursError("PEERCHAT_HOURS names a time zone but no `DAYS HH:MM-HH:MM` spans")
    spans: list[Span] = []
    for part in rest.split(","):
        spans.extend(_parse_span(part.strip()))
    return Schedule(zone=zone, spans=tuple(spans), closed_dates=_parse_dates(closed_dates))


def _parse_span(text: str) -> list[Span]:
    match = _SPAN.match(text.lower())
    if match is None:
        raise HoursError(
            f"PEERCHAT_HOURS span {text!r} is not `DAYS HH:MM-HH:MM` (e.g. `mon-fri 08:00-22:00`)"
        )
    days = _parse_days(match["days"], text)
    start = _parse_clock(match["start"], text, allow_24=False)
    end = _parse_clock(match["end"], text, allow_24=True)
    if start == end:
        raise HoursError(f"PEERCHAT_HOURS span {text!r} opens and closes at the same time")
    if end < start:
        end += MINUTES_PER_DAY  # runs past midnight into the next day
    return [Span(day=d, start=start, end=end) for d in days]


def _parse_days(text: str, span: str) -> list[int]:
    if text == "daily":
        return list(range(7))
    first, _, last = text.partition("-")
    for name in (first, last) if last else (first,):
        if name not in DAY_NAMES:
            raise HoursError(f"PEERCHAT_HOURS span {span!r}: {name!r} is not one of mon…sun or daily")
    a = DAY_NAMES.index(first)
    if not last:
        return [a]
    b = DAY_NAMES.index(last)
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]


def _parse_clock(text: str, span: str, *, allow_24: bool) -> int:
    hour, minute = int(text[:2]), int(text[3:])
    if allow_24 and (hour, minute) == (24, 0):
        return MINUTES_PER_DAY
    if hour > 23 or minute > 59:
        raise HoursError(f"PEERCHAT_HOURS span {span!r}: {text} is not a time of day")
    return hour * 60 + minute


def _parse_dates(text: str) -> frozenset[date]:
    dates = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if not re.fullmatch(r"\d{4}-\d\d-\d\d", part):
                raise ValueError(part)
            dates.add(date.fromisoformat(part))
        except ValueError:
            raise HoursError(f"PEERCHAT_CLOSED_DATES entry {part!r} is not a YYYY-MM-DD date") from None
    return frozenset(dates)
