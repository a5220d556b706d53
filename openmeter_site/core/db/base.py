"""Django's PostgreSQL backend with a connection health check that costs no round trip (HOT PATH).

With `CONN_HEALTH_CHECKS` Django checks a persistent connection before its first use in every request by running
`SELECT 1`: one more round trip on every API call, for a connection that is nearly always fine. A connection
the server has closed (restart, `pg_terminate_backend`, idle timeout) has the server's goodbye message or the end
of the stream waiting on its socket, while an idle sound connection has nothing to read. So the check polls the
socket without waiting, and only when something is there does it fall back to Django's `SELECT 1`.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status == pq.TransactionStatus.IDLE and not _has_input(conn.fileno()):
            return True
        return super().is_usable()


def _has_input(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))
