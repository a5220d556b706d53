"""Health probes: `/healthz` (the process answers; touches nothing) and `/readyz` (PostgreSQL reachable, every
migration applied, Redis reachable; a 503 naming what failed). Both answer JSON without authentication."""

from collections.abc import Callable

import orjson
import redis
from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse

_migrations_applied = False  # once true it stays true for the process: migrations are never unapplied under it


def database_problem() -> str | None:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return None


def unapplied_migrations(db: BaseDatabaseWrapper) -> list[str]:
    executor = MigrationExecutor(db)
    return [f"{m.app_label}.{m.name}" for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())]


def migrations_problem() -> str | None:
    global _migrations_applied
    if _migrations_applied:
        return None
    pending = unapplied_migrations(connection)
    if pending:
        return f"{len(pending)} migration(s) not applied, first {pending[0]}"
    _migrations_applied = True
    return None


def redis_problem() -> str | None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return None


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": database_problem,
    "migrations": migrations_problem,
    "redis": redis_problem,
}


def readiness() -> dict[str, str]:
    """Each check's outcome: "ok" or what went wrong. Migrations are not checked without a database."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        if name == "migrations" and results["database"] != "ok":
            results[name] = "not checked: no database"
            continue
        try:
            results[name] = check() or "ok"
        except Exception as exc:  # any failure of a dependency makes the server not ready; say which
            results[name] = f"{type(exc).__name__}: {exc}".strip()
    return results


def _json(body: dict, status: int) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def healthz(request: HttpRequest) -> HttpResponse:
    return _json({"status": "ok"}, 200)


def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    failed = sorted(name for name, outcome in checks.items() if outcome != "ok" and not outcome.startswith("not checked"))
    if failed:
        return _json({"status": "unavailable", "failed": failed, "checks": checks}, 503)
    return _json({"status": "ready", "checks": checks}, 200)
