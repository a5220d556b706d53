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
UTC_ZONE_KEYS = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT"}


def offsets(tz: ZoneInfo, a: dt.datetime, b: dt.datetime) -> set[dt.timedelta]:
    """UTC offsets the zone uses over [a, b), sampled daily (weekly past three years): offsets last months."""
    step = DAY if b - a <= 3 * 366 * DAY else 7 * DAY
    found: set[dt.timedelta] = set()
    moment = a
    while moment < b:
        found.add(moment.astimezone(tz).utcoffset() or dt.timedelta(0))  # never None: `tz` is a zone
        moment += step
    found.add((b - MINUTE).astimezone(tz).utcoffset() or dt.timedelta(0))
    return found


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
