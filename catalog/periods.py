"""Calendar arithmetic for billing: ISO 8601 durations (P1M, P1Y, P2W, PT1H) and recurring periods.

Pure functions, no ORM. Months and years clamp to the last day of the month (Jan 31 + P1M = Feb 28,
Feb 29 + P1Y = Feb 28), and the n-th recurrence is always computed from the anchor, never by repeated
adding, so an anchor on the 31st comes back to the 31st whenever the month has one (OpenMeter's
`timeutil.RecurrenceV2.addTo` does the same). Periods are half-open: [start, end).
"""

import calendar
import datetime as dt
import re
from dataclasses import dataclass

_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


class InvalidDuration(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration kept in calendar units: months (years folded in), days (weeks folded in), seconds."""

    months: int = 0
    days: int = 0
    seconds: int = 0

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and self.days == 0 and self.seconds == 0

    def times(self, n: int) -> "Duration":
        return Duration(self.months * n, self.days * n, self.seconds * n)

    def __add__(self, other: "Duration") -> "Duration":
        return Duration(self.months + other.months, self.days + other.days, self.seconds + other.seconds)

    def iso(self) -> str:
        return format_duration(self)


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


def parse_duration(text: str) -> Duration:
    """`P1M` → Duration(months=1). Fractions and negative durations are rejected."""
    match = _DURATION_RE.match(text or "")
    if not match:
        raise InvalidDuration(f"invalid ISO 8601 duration {text!r} (e.g. P1M, P1Y, P2W, P1D, PT1H)")
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return Duration(
        months=parts["years"] * 12 + parts["months"],
        days=parts["weeks"] * 7 + parts["days"],
        seconds=parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"],
    )


def is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except InvalidDuration:
        return False
    return True


def format_duration(duration: Duration) -> str:
    years, months = divmod(duration.months, 12)
    out = "P"
    out += f"{years}Y" if years else ""
    out += f"{months}M" if months else ""
    if duration.days and duration.days % 7 == 0 and not (years or months):
        out += f"{duration.days // 7}W"
    elif duration.days:
        out += f"{duration.days}D"
    hours, rest = divmod(duration.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    time_part = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    if time_part:
        out += "T" + time_part
    return out if out != "P" else "P0D"


def _as_duration(duration: Duration | str) -> Duration:
    return parse_duration(duration) if isinstance(duration, str) else duration


def add_duration(at: dt.datetime, duration: Duration | str, times: int = 1) -> dt.datetime:
    """`at` + `times` * `duration`: years/months first (clamped to the month's last day), then days, then time."""
    d = _as_duration(duration).times(times)
    month_index = at.year * 12 + (at.month - 1) + d.months
    year, month = divmod(month_index, 12)
    month += 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    moved = at.replace(year=year, month=month, day=day)
    return moved + dt.timedelta(days=d.days, seconds=d.seconds)


def recurrence_at(anchor: dt.datetime, cadence: Duration | str, index: int) -> dt.datetime:
    """The `index`-th boundary of the recurrence (0 = the anchor; negative = before it)."""
    return add_duration(anchor, cadence, index)


def _index_at_or_before(anchor: dt.datetime, cadence: Duration, at: dt.datetime) -> int:
    """The largest n with recurrence_at(anchor, cadence, n) <= at."""
    if cadence.is_zero:
        raise InvalidDuration("a recurrence needs a non-zero cadence")
    approx_seconds = cadence.months * 28 * 86400 + cadence.days * 86400 + cadence.seconds
    n = int((at - anchor).total_seconds() // approx_seconds)  # an upper-ish guess; corrected below
    while recurrence_at(anchor, cadence, n) > at:
        n -= 1
    while recurrence_at(anchor, cadence, n + 1) <= at:
        n += 1
    return n


def billing_period_containing(anchor: dt.datetime, cadence: Duration | str, at: dt.datetime) -> Period:
    """The period [start, end) of the recurrence (anchor, cadence) that contains `at`."""
    d = _as_duration(cadence)
    n = _index_at_or_before(anchor, d, at)
    return Period(recurrence_at(anchor, d, n), recurrence_at(anchor, d, n + 1))


def next_boundary_after(anchor: dt.datetime, cadence: Duration | str, at: dt.datetime) -> dt.datetime:
    """The first recurrence boundary strictly after `at` (the end of the period containing `at`)."""
    return billing_period_containing(anchor, cadence, at).end


def normalize_anchor(anchor: dt.datetime, cadence: Duration | str, start: dt.datetime) -> dt.datetime:
    """The recurrence of `anchor` at or before `start` (OpenMeter normalises a billing anchor this way)."""
    return billing_period_containing(anchor, cadence, start).start


def periods_between(
    anchor: dt.datetime, cadence: Duration | str, start: dt.datetime, end: dt.datetime
) -> list[Period]:
    """The recurrence's periods clipped to [start, end): consecutive, non-overlapping, covering it exactly."""
    d = _as_duration(cadence)
    out: list[Period] = []
    n = _index_at_or_before(anchor, d, start)
    cursor = start
    while cursor < end:
        boundary = recurrence_at(anchor, d, n + 1)
        out.append(Period(cursor, min(boundary, end)))
        cursor = boundary
        n += 1
    return out


def is_multiple_of(duration: Duration | str, cadence: Duration | str) -> bool:
    """Whether `duration` is a whole number of `cadence`s on every calendar (month lengths never mix with days)."""
    d, c = _as_duration(duration), _as_duration(cadence)
    if c.is_zero:
        return False
    if c.months:
        if c.days or c.seconds or d.days or d.seconds:
            return d == c.times(d.months // c.months) if d.months % c.months == 0 else False
        return d.months % c.months == 0
    if d.months:
        return False
    c_seconds = c.days * 86400 + c.seconds
    d_seconds = d.days * 86400 + d.seconds
    return d_seconds % c_seconds == 0
