"""Which database errors mean "PostgreSQL is unreachable or restarting, try again shortly" (the API answers them
with a 503 and Retry-After). Every other database error is a bug or bad input and stays a 500 (and fails tests).
"""

from django.db import InterfaceError, OperationalError

# How long a client should wait before retrying: a PostgreSQL restart or fail-over takes about a second.
DATABASE_RETRY_AFTER_SECONDS = 2

# SQLSTATEs of a server that is going away, starting up or full of connections.
UNAVAILABLE_SQLSTATES = {
    "57P01",  # admin_shutdown: the backend was terminated (restart, pg_terminate_backend)
    "57P02",  # crash_shutdown: another backend crashed, all are restarted
    "57P03",  # cannot_connect_now: the server is starting up or shutting down
    "53300",  # too_many_connections
}


def database_unavailable(exc: BaseException | None) -> bool:
    """True for Django's wrapped OperationalError/InterfaceError when the connection could not be made or was
    lost (psycopg gives those no SQLSTATE, or one of class 08), or the server refused or ended the session."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES
