"""Scheduled-job figures on /metrics, read at each scrape from the runs every worker records (`JobRun`), so they are
the cluster's, whichever web server is scraped. Runs are kept OPENMETER_JOB_RUN_RETENTION_DAYS, so counts are of a
recent window (gauges), not counters since start."""

from collections.abc import Iterable

from django.db import connection
from prometheus_client.core import GaugeMetricFamily, Metric

RECENT_WINDOW = "1 hour"

# Per scheduled job (beat's tasks): runs of the last hour by outcome, then the latest finished run and success.
_RUNS_SQL = f"""
SELECT job, outcome, count(*), coalesce(sum(extract(epoch FROM finished_at - started_at)), 0)
FROM core_jobrun WHERE created_at >= now() - interval '{RECENT_WINDOW}' GROUP BY job, outcome
"""
_LATEST_SQL = """
SELECT t.task, last.seconds, extract(epoch FROM ok.finished_at)
FROM (SELECT DISTINCT task FROM django_celery_beat_periodictask) t
LEFT JOIN LATERAL (
    SELECT extract(epoch FROM finished_at - started_at) AS seconds FROM core_jobrun
    WHERE job = t.task AND finished_at IS NOT NULL AND started_at IS NOT NULL ORDER BY created_at DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT finished_at FROM core_jobrun WHERE job = t.task AND outcome = 'succeeded' ORDER BY created_at DESC LIMIT 1
) ok ON true
"""


def job_run_metrics() -> Iterable[Metric]:
    runs = GaugeMetricFamily("openmeter_job_runs_last_hour", "Runs of each scheduled job started in the last hour, by "
                             "outcome (queued, running, succeeded, failed)", labels=["job", "outcome"])
    seconds = GaugeMetricFamily("openmeter_job_run_seconds_last_hour", "Time spent by the finished runs of each "
                                "scheduled job started in the last hour, by outcome", labels=["job", "outcome"])
    last = GaugeMetricFamily("openmeter_job_last_run_duration_seconds", "Duration of each scheduled job's latest "
                             "finished run", labels=["job"])
    success = GaugeMetricFamily("openmeter_job_last_success_timestamp_seconds", "When each scheduled job last "
                                "finished successfully (Unix time)", labels=["job"])
    with connection.cursor() as cur:
        cur.execute(_RUNS_SQL)
        for job, outcome, count, total_seconds in cur.fetchall():
            runs.add_metric([job, outcome], count)
            seconds.add_metric([job, outcome], float(total_seconds))
        cur.execute(_LATEST_SQL)
        for job, last_seconds, succeeded_at in cur.fetchall():
            if last_seconds is not None:
                last.add_metric([job], float(last_seconds))
            if succeeded_at is not None:
                success.add_metric([job], float(succeeded_at))
    return [runs, seconds, last, success]
