"""Queue a Celery task from a request without waiting on the broker.

A kick only says "work recorded in PostgreSQL can start now"; the work's periodic job finds it anyway. So a kick
publishes once, with short socket timeouts and no retry, on a connection of its own (one per thread), and after a
failure further kicks are skipped for a few seconds: with Redis down a request never waits on it for long, and
what the kick would have started runs when the beat job next finds Redis back.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import Task
from django.db import transaction
from kombu import Connection

logger = logging.getLogger(__name__)

KICK_TRANSPORT_OPTIONS = {"max_retries": 0, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
PAUSE_AFTER_FAILURE_SECONDS = 5.0

_local = threading.local()
_paused_until = 0.0


def _connection(task: Task) -> Connection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = task.app.connection_for_write(transport_options=KICK_TRANSPORT_OPTIONS)
    return connection


def _drop_connection() -> None:
    connection = getattr(_local, "connection", None)
    _local.connection = None
    if connection is not None:
        try:
            connection.release()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            logger.debug("closing a broken broker connection failed", exc_info=True)


def kick(task: Task, *args: Any, countdown: float | None = None, task_id: str | None = None) -> bool:
    """Queue `task(*args)` once, best effort; False when the broker did not take it (the caller's job is recorded
    in PostgreSQL, and a periodic job picks it up). Eager mode (tests) runs the task at once, as a worker would."""
    global _paused_until
    if task.app.conf.task_always_eager:
        task.apply_async(args, countdown=countdown, task_id=task_id)
        return True
    if time.monotonic() < _paused_until:
        return False
    reused = getattr(_local, "connection", None) is not None
    try:
        _publish(task, args, countdown, task_id)
    except Exception as exc:  # whatever the broker raised, the request goes on without it
        _drop_connection()
        if reused and _publish_on_new_connection(task, args, countdown, task_id):
            return True  # the kept connection had gone stale (Redis restarted, idle connection dropped)
        _paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
        logger.warning("broker unavailable, %s not queued (its periodic job will run it): %s", task.name, exc)
        return False
    return True


def _publish(task: Task, args: tuple[Any, ...], countdown: float | None, task_id: str | None) -> None:
    task.apply_async(args, countdown=countdown, task_id=task_id, connection=_connection(task), retry=False,
                     ignore_result=True)


def _publish_on_new_connection(task: Task, args: tuple[Any, ...], countdown: float | None, task_id: str | None) -> bool:
    try:
        _publish(task, args, countdown, task_id)
    except Exception:  # the broker is down: the caller pauses kicks
        _drop_connection()
        return False
    return True


@dataclass(frozen=True)
class _KickOnCommit:
    task: Task

    def __call__(self) -> None:
        kick(self.task)


def kick_on_commit(task: Task) -> None:
    """Kick `task` (no arguments: it takes whatever is due) when the current transaction commits, once however
    often the transaction asks. A kick registered in a savepoint that was rolled back is gone, and this registers
    a new one."""
    conn = transaction.get_connection()
    open_blocks = set(conn.savepoint_ids)
    for sids, func, _ in conn.run_on_commit:
        if isinstance(func, _KickOnCommit) and func.task is task and sids <= open_blocks:
            return
    transaction.on_commit(_KickOnCommit(task), robust=True)
