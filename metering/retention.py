"""Which stored events apps above metering still need (for `OPENMETER_EVENTS_RETENTION_DAYS`).

Metering may drop old events once their usage is folded into aggregates, but only an app above it knows whether
it will still read them: billing, while an invoice covering them is not issued yet (a usage line's period may
start in the middle of a minute, and that edge is read from the events). Such an app registers a hold in its
`AppConfig.ready`: a function returning the earliest event time it still needs (None: none); metering never
names it.
"""

import datetime as dt
from collections.abc import Callable

EventsNeededSince = Callable[[], dt.datetime | None]

_holds: list[EventsNeededSince] = []


def on_events_needed(hold: EventsNeededSince) -> None:
    if hold not in _holds:
        _holds.append(hold)


def events_needed_since() -> dt.datetime | None:
    """The earliest event time any app still needs, or None."""
    times = [t for t in (hold() for hold in _holds) if t is not None]
    return min(times) if times else None
