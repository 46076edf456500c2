"""matching/hours.py: the weekly schedule, closed dates, spans past midnight and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.hours import DAY_NAMES, HoursError, Schedule, parse_hours

NY = "America/New_York"
PROPERTY_SETTINGS = settings(max_examples=200, derandomize=True, deadline=None)


def at(zone: str, year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone))


def schedule(hours: str, closed: str = "") -> Schedule:
    parsed = parse_hours(hours, closed)
    assert parsed is not None
    return parsed


def test_unset_means_always_open() -> None:
    assert parse_hours("") is None and parse_hours("   ") is None


def test_the_example_from_the_product_document() -> None:
    s = schedule(f"{NY} mon-fri 08:00-22:00, sat 10:00-16:00")
    # 2026-12-07 is a Monday.
    assert not s.is_open(at(NY, 2026, 12, 7, 7, 59))
    assert s.is_open(at(NY, 2026, 12, 7, 8, 0))
    assert s.is_open(at(NY, 2026, 12, 7, 21, 59, 59))
    assert not s.is_open(at(NY, 2026, 12, 7, 22, 0))
    assert s.opens_at(at(NY, 2026, 12, 7, 22, 0)) == at(NY, 2026, 12, 8, 8, 0)
    # Friday night → Saturday 10:00; Saturday evening → Monday 08:00 (Sunday is closed).
    assert s.opens_at(at(NY, 2026, 12, 11, 23, 0)) == at(NY, 2026, 12, 12, 10, 0)
    assert s.opens_at(at(NY, 2026, 12, 12, 16, 0)) == at(NY, 2026, 12, 14, 8, 0)
    assert s.opens_at(at(NY, 2026, 12, 12, 16, 0)).tzinfo is UTC  # type: ignore[union-attr]


def test_open_now_opens_now() -> None:
    s = schedule(f"{NY} daily 08:00-22:00")
    now = at(NY, 2026, 12, 7, 12, 0)
    assert s.opens_at(now) == now


def test_a_span_past_midnight_belongs_to_the_day_it_starts() -> None:
    s = schedule("Europe/London fri 22:00-02:00")
    # 2026-12-11 is a Friday.
    assert s.is_open(at("Europe/London", 2026, 12, 11, 23, 30))
    assert s.is_open(at("Europe/London", 2026, 12, 12, 1, 59))
    assert not s.is_open(at("Europe/London", 2026, 12, 12, 2, 0))
    assert not s.is_open(at("Europe/London", 2026, 12, 10, 1, 0))  # Thursday night is not Friday's
    assert s.opens_at(at("Europe/London", 2026, 12, 12, 3, 0)) == at("Europe/London", 2026, 12, 18, 22, 0)


def test_24_00_ends_at_midnight_and_a_whole_day_is_possible() -> None:
    s = schedule("UTC daily 00:00-24:00")
    assert s.is_open(datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC))
    assert s.is_open(datetime(2026, 12, 8, 0, 0, tzinfo=UTC))


def test_a_range_may_wrap_the_week() -> None:
    s = schedule("UTC fri-mon 10:00-11:00")
    opened = {DAY_NAMES[d] for d in range(7) if s.is_open(datetime(2026, 12, 7 + d, 10, 30, tzinfo=UTC))}
    assert opened == {"fri", "sat", "sun", "mon"}


def test_closed_dates_close_the_whole_local_day() -> None:
    s = schedule(f"{NY} daily 09:00-17:00, fri 22:00-02:00", "2026-12-25, 2026-12-26")
    assert not s.is_open(at(NY, 2026, 12, 25, 12, 0))
    # Christmas Day is a Friday: its late span does not open either, nor does its tail on the 26th.
    assert not s.is_open(at(NY, 2026, 12, 25, 23, 0))
    assert not s.is_open(at(NY, 2026, 12, 26, 1, 0))
    assert s.opens_at(at(NY, 2026, 12, 24, 18, 0)) == at(NY, 2026, 12, 27, 9, 0)


def test_a_late_span_belongs_to_the_day_it_starts() -> None:
    s = schedule("UTC sat 22:00-04:00", "2026-12-12")  # a Saturday
    assert not s.is_open(datetime(2026, 12, 13, 1, 0, tzinfo=UTC))
    assert s.opens_at(datetime(2026, 12, 12, 20, 0, tzinfo=UTC)) == datetime(2026, 12, 19, 22, 0, tzinfo=UTC)
    s = schedule("UTC sat 22:00-04:00", "2026-12-13")  # the Sunday after
    # Saturday opens at 22:00 and closes at midnight when the closed Sunday begins.
    assert s.is_open(datetime(2026, 12, 12, 23, 59, tzinfo=UTC))
    assert not s.is_open(datetime(2026, 12, 13, 0, 30, tzinfo=UTC))


def test_closed_dates_push_the_opening_out_week_by_week() -> None:
    days = ",".join((date(2026, 12, 7) + timedelta(days=i)).isoformat() for i in range(10))
    s = schedule("UTC mon 09:00-10:00", days)
    assert s.opens_at(datetime(2026, 12, 7, 12, 0, tzinfo=UTC)) == datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    s = schedule("UTC mon 09:00-10:00", ",".join(f"2026-12-{7 + 7 * i:02d}" for i in range(4)))
    assert s.opens_at(datetime(2026, 12, 7, 12, 0, tzinfo=UTC)) == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def test_spring_forward_keeps_wall_clock_hours() -> None:
    # 2027-03-14: New York's clocks jump from 02:00 EST to 03:00 EDT.
    s = schedule(f"{NY} daily 08:00-22:00")
    assert s.opens_at(at(NY, 2027, 3, 13, 23, 0)) == datetime(2027, 3, 14, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert s.opens_at(at(NY, 2027, 3, 12, 23, 0)) == datetime(2027, 3, 13, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_an_opening_inside_the_skipped_hour_happens_when_the_clock_jumps() -> None:
    s = schedule(f"{NY} sun 02:30-05:00")
    jump = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 02:00 EST becomes 03:00 EDT
    assert s.opens_at(at(NY, 2027, 3, 14, 0, 0)) == jump
    assert s.is_open(jump) and not s.is_open(jump - timedelta(seconds=1))
    # A span wholly inside the skipped hour does not open that day.
    s = schedule(f"{NY} sun 02:10-02:50")
    assert s.opens_at(at(NY, 2027, 3, 14, 0, 0)) == at(NY, 2027, 3, 21, 2, 10)


def test_the_repeated_hour_in_autumn_opens_twice() -> None:
    # 2026-11-01: New York's 01:00-02:00 happens twice.
    s = schedule(f"{NY} sun 01:00-01:30")
    first = at(NY, 2026, 11, 1, 1, 0)
    between = at(NY, 2026, 11, 1, 1, 45)
    assert s.is_open(first) and not s.is_open(between)
    assert s.opens_at(between) == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 01:00 EST, the second time


@pytest.mark.parametrize(
    "hours, closed, words",
    [
        ("Mars/Olympus daily 08:00-09:00", "", "IANA time zone"),
        ("UTC", "", "no `DAYS HH:MM-HH:MM` spans"),
        ("UTC mon-fri 8:00-22:00", "", "'mon-fri 8:00-22:00'"),
        ("UTC weekdays 08:00-22:00", "", "'weekdays'"),
        ("UTC mon-fry 08:00-22:00", "", "'fry'"),
        ("UTC mon 25:00-26:00", "", "25:00 is not a time of day"),
        ("UTC mon 08:60-09:00", "", "08:60"),
        ("UTC mon 24:00-02:00", "", "24:00"),
        ("UTC mon 08:00-08:00", "", "same time"),
        ("UTC mon 08:00-09:00,", "", "''"),
        ("UTC mon 08:00-09:00", "2026-13-01", "'2026-13-01'"),
        ("UTC mon 08:00-09:00", "25/12/2026", "'25/12/2026'"),
        ("", "2026-12-25", "needs PEERCHAT_HOURS"),
    ],
)
def test_refused(hours: str, closed: str, words: str) -> None:
    with pytest.raises(HoursError, match=words.replace("`", ".").replace("(", r"\(")) as refused:
        parse_hours(hours, closed)
    assert "PEERCHAT_" in str(refused.value)


# --- properties -------------------------------------------------------------------------------

ZONES = (
    "UTC",
    NY,
    "Europe/London",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/Santiago",  # changes at midnight
    "Pacific/Chatham",
    "Asia/Kolkata",
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    zone = draw(st.sampled_from(ZONES))
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        first = draw(st.integers(0, 6))
        days = draw(
            st.sampled_from(["daily", DAY_NAMES[first], f"{DAY_NAMES[first]}-{DAY_NAMES[(first + 2) % 7]}"])
        )
        start = draw(st.integers(0, 95)) * 15
        end = start + draw(st.integers(1, 95)) * 15
        end = end - 1440 if end > 1440 else end  # past midnight, or 24:00
        parts.append(f"{days} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    base = date(2027, 3, 1)
    closed = draw(st.lists(st.integers(0, 300), max_size=6))
    dates = ",".join((base + timedelta(days=i)).isoformat() for i in closed)
    return schedule(f"{zone} {', '.join(parts)}", dates)


instants = st.datetimes(
    min_value=datetime(2027, 2, 20), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@PROPERTY_SETTINGS
@given(schedules(), instants)
def test_opens_at_is_the_first_open_instant(s: Schedule, now: datetime) -> None:
    opens = s.opens_at(now)
    if s.is_open(now):
        assert opens == now
        return
    assert opens is not None, "a schedule with a span opens within a week plus its closed days"
    assert opens > now
    assert s.is_open(opens)
    # Openings happen on whole minutes (or whole-second clock changes): just before is closed.
    before = opens - timedelta(seconds=1)
    assert before < now or not s.is_open(before)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(schedules(), instants)
def test_opens_at_matches_a_minute_by_minute_walk(s: Schedule, now: datetime) -> None:
    opens = s.opens_at(now)
    walk = now.replace(second=0, microsecond=0)
    if walk < now:
        walk += timedelta(minutes=1)
    if s.is_open(now):
        return
    assert opens is not None
    # Nothing open between now and `opens`, checked on every minute.
    while walk < opens:
        assert not s.is_open(walk), (walk, opens)
        walk += timedelta(minutes=1)


@PROPERTY_SETTINGS
@given(schedules(), instants)
def test_closed_dates_are_never_open(s: Schedule, now: datetime) -> None:
    if now.astimezone(s.zone).date() in s.closed_dates:
        assert not s.is_open(now)
    opens = s.opens_at(now)
    if opens is not None:
        assert opens.astimezone(s.zone).date() not in s.closed_dates
