"""Logs: one line per request and per Celery task, JSON by default (LOG_FORMAT=text: plain lines for development).

Every line written while a request or a task runs carries its request id or task id (context variables, so
threads of one gthread worker never mix them up). A request's id is the client's `X-Request-Id` when it is a
sane token, else a new one; the response returns it. The request line names the API key by its name, never the
key itself.
"""

import contextvars
import datetime as dt
import json
import logging
import re
import time
import uuid
from typing import Any

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)

# LogRecord attributes that are not extra fields of a call (`logger.info(..., extra={...})`).
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class ContextFilter(logging.Filter):
    """Adds the current request id and task id to every record (the formatters print them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.task_id = task_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request/task id, then the call's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((key, value) for key, value in vars(record).items() if key not in _RECORD_FIELDS and value is not None)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The development format: the message, then the request or task id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{name}={value}" for name in ("request_id", "task_id") if (value := getattr(record, name, None))]
        return f"{text} [{' '.join(ids)}]" if ids else text


def logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    """Django's LOGGING for LOG_LEVEL and LOG_FORMAT (json or text)."""
    if fmt not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT={fmt!r}: expected json or text")
    formatter = {"()": JsonFormatter} if fmt == "json" else {"()": TextFormatter, "format": "%(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"default": formatter},
        # The handler's level too: Django's own loggers (django.request's 404 warnings) propagate past the root's.
        "handlers": {
            "console": {"class": "logging.StreamHandler", "level": level, "formatter": "default", "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        # JSON: the request line and the task line replace Django's 4xx warnings and Celery's received/succeeded
        # lines, which would say the same thing a second time (5xx tracebacks and task failures stay).
        "loggers": {
            "django.request": {"level": "ERROR"},
            "celery.app.trace": {"level": "WARNING"},
            "celery.worker.strategy": {"level": "WARNING"},
        } if fmt == "json" else {},
    }


def request_id_from(header: str | None) -> str:
    if header and _REQUEST_ID_RE.match(header):
        return header
    return uuid.uuid4().hex


request_logger = logging.getLogger("openmeter.request")
task_logger = logging.getLogger("openmeter.task")


def log_request(*, method: str, path: str, route: str, status: int, duration: float, api_key: str | None,
                remote_addr: str | None, probe: bool = False) -> None:
    """The request's line. Probes and scrapes (every few seconds from a load balancer) log at DEBUG."""
    level = logging.ERROR if status >= 500 else logging.DEBUG if probe else logging.INFO
    request_logger.log(
        level, "%s %s %s %.1fms", method, path, status, duration * 1000,
        extra={"method": method, "path": path, "route": route, "status": status,
               "duration_ms": round(duration * 1000, 2), "api_key": api_key, "remote_addr": remote_addr},
    )


# --- Celery: the worker keeps Django's logging; one line per task -------------------------------------------------

_task_started: dict[str, float] = {}


def connect_celery(app: Any) -> None:
    """Hook the task lines into a Celery app; Celery then leaves the root logger to Django's LOGGING."""
    from celery import signals

    signals.setup_logging.connect(_keep_django_logging, weak=False)
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)


def _keep_django_logging(**_: Any) -> None:
    """Connected to Celery's setup_logging: Celery configures no logging of its own (Django's LOGGING stands)."""


def _task_prerun(task_id: str, **_: Any) -> None:
    task_id_var.set(task_id)
    _task_started[task_id] = time.monotonic()


def _task_postrun(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _task_started.pop(task_id, None)
    duration = time.monotonic() - started if started is not None else 0.0
    level = logging.INFO if state in {"SUCCESS", "RETRY"} else logging.ERROR
    task_logger.log(level, "task %s %s %.1fms", task.name, state, duration * 1000,
                    extra={"task": task.name, "state": state, "duration_ms": round(duration * 1000, 2)})
    task_id_var.set(None)
