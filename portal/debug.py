"""`debug.getMetrics`: events per subject since 00:00 UTC, in OpenMetrics text as upstream writes it."""

import datetime as dt

from django.db import connection
from django.utils import timezone


def events_today_by_subject(*, at: dt.datetime | None = None) -> list[tuple[str, int]]:
    now = at or timezone.now()
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT subject, count(*) FROM metering_event WHERE time >= %s GROUP BY subject ORDER BY subject", [midnight]
        )
        return [(subject, int(count)) for subject, count in cur.fetchall()]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(counts: list[tuple[str, int]]) -> str:
    """The family `openmeter_events` (counter, unit events), one `openmeter_events_total` sample per subject."""
    lines = [
        "# HELP openmeter_events Number of ingested events",
        "# TYPE openmeter_events counter",
        "# UNIT openmeter_events events",
    ]
    lines += [f'openmeter_events_total{{subject="{_label(subject)}"}} {count}.0' for subject, count in counts]
    return "\n".join(lines) + "\n"
