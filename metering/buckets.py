"""How a query's time range splits into minute, hour and UTC-day buckets (both event stores' per-meter aggregates).

A range [a, b) of whole minutes is read as day buckets where whole UTC days fit, hour buckets at its edges, minute
buckets at theirs (`decompose`), never coarser than buckets that nest in the requested windows (`max_resolution`:
a DAY window in Europe/Berlin starts at 22:00 or 23:00 UTC, so its buckets are hours; one in Asia/Kolkata starts
at half past, so minutes). Whatever lies outside whole minutes is read from the events themselves.
"""

import datetime as dt
from zoneinfo import ZoneInfo

from metering.models import Rollup

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# The first and last instants Python (and RFC 3339) can write, and the start of the last whole minute and day before it: a
# bucket, window or range reaching past them ends in the year 10000, which only PostgreSQL can hold.
START_OF_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)
END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)
LAST_MINUTE = END_OF_TIME.replace(second=0, microsecond=0)
LAST_DAY = END_OF_TIME.replace(hour=0, minute=0, second=0, microsecond=0)
UTC_ZONE_KEYS = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT"}


def offsets(tz: ZoneInfo, a: dt.datetime, b: dt.datetime) -> set[dt.timedelta]:
    """UTC offsets the zone uses over [a, b), sampled daily (weekly past three years): offsets last months."""
    step = DAY if b - a <= 3 * 366 * DAY else 7 * DAY
    found = {_offset(tz, a + i * step) for i in range((b - a - dt.timedelta.resolution) // step + 1)}
    found.add(_offset(tz, b - MINUTE))
    return found


def _offset(tz: ZoneInfo, moment: dt.datetime) -> dt.timedelta:
    """The zone's UTC offset at `moment`; in the first and last hours of the years 1 to 9999, whose local time
    Python cannot write, the offset of the local time read as UTC (the zone's first or last rule: the same)."""
    try:
        local = moment.astimezone(tz)
    except OverflowError:
        return tz.utcoffset(moment.replace(tzinfo=None)) or dt.timedelta(0)
    return local.utcoffset() or dt.timedelta(0)  # never None: `tz` is a zone


def max_resolution(window_size: str | None, tz: ZoneInfo, a: dt.datetime, b: dt.datetime) -> int | None:
    """The coarsest bucket resolution whose UTC buckets lie wholly inside one requested window over [a, b); None
    when the zone's offset is not a whole minute (LMT-era zones: no bucket nests)."""
    if window_size is None:
        return Rollup.Resolution.DAY
    used = {dt.timedelta(0)} if tz.key in UTC_ZONE_KEYS else offsets(tz, a, b)
    if any(o % MINUTE for o in used):
        return None
    if window_size == "MINUTE":
        return Rollup.Resolution.MINUTE
    if window_size != "HOUR" and used == {dt.timedelta(0)}:
        return Rollup.Resolution.DAY
    if all(o % HOUR == dt.timedelta(0) for o in used):
        return Rollup.Resolution.HOUR
    return Rollup.Resolution.MINUTE


def decompose(a: dt.datetime, b: dt.datetime, resolution: int) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """Split minute-aligned [a, b) into (resolution, lo, hi) pieces: minutes, then hours, then whole days."""
    if a >= b:
        return []
    if resolution == Rollup.Resolution.MINUTE:
        return [(Rollup.Resolution.MINUTE, a, b)]
    unit = DAY if resolution == Rollup.Resolution.DAY else HOUR
    if a > floor_to(END_OF_TIME, unit):  # inside the last hour or day of year 9999: no whole one fits
        return decompose(a, b, resolution - 1)
    lo, hi = ceil_to(a, unit), floor_to(b, unit)
    if lo >= hi:
        return decompose(a, b, resolution - 1)
    return [*decompose(a, lo, resolution - 1), (resolution, lo, hi), *decompose(hi, b, resolution - 1)]


def floor_to(value: dt.datetime, unit: dt.timedelta) -> dt.datetime:
    """Floor to a whole unit (minute, hour or UTC day)."""
    value = value.astimezone(dt.UTC)
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((value - midnight) // unit) * unit


def ceil_to(value: dt.datetime, unit: dt.timedelta) -> dt.datetime:
    floored = floor_to(value, unit)
    return floored if floored == value else floored + unit
