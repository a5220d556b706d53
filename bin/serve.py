"""bin/run's second half: set up the database, start the processes, stop them cleanly.

    .venv/bin/python bin/serve.py [--embedded]

Starts the embedded PostgreSQL and Redis when asked (bin/embedded_services.py), migrates, installs the schedules,
makes the admin login and the startup API key on first start (manage.py bootstrap), then Celery beat, a Celery
worker and gunicorn. Each runs in a session of its own, so a Ctrl-C in the terminal reaches only this process
(gunicorn's gthread workers deadlock when they get SIGINT from the terminal and from their master). On Ctrl-C or
SIGTERM it stops them in order, web, worker, beat, then the embedded services (the database last, so nothing
still running loses it), each with SIGTERM and a deadline, and the whole stop fits in STOP_SECONDS.
"""

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openmeter_site.settings.env import data_dir, ensure_secret_key_file, env_int, env_str  # noqa: E402

gc.freeze()  # importing the package loads Django and Celery: keep them out of the collection at exit (seconds)

VENV_BIN = ROOT / ".venv" / "bin"
STOP_SECONDS = 10
# How long each process may take to stop after SIGTERM before its process group is killed (in stop order).
STOP_BUDGET = {"web": 5.0, "worker": 4.0, "beat": 2.0, "embedded services": 3.0}

stop_requested = threading.Event()


class Process:
    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.popen = subprocess.Popen(args, cwd=ROOT, start_new_session=True)

    def stop(self, deadline: float) -> None:
        """SIGTERM, then SIGKILL to its whole process group if it is still there at its deadline."""
        if self.popen.poll() is not None:
            return
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=max(deadline - started, 0.1))
        except subprocess.TimeoutExpired:
            print(f"bin/run: {self.name} did not stop in time; killing it", file=sys.stderr, flush=True)
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        print(f"bin/run: {self.name} stopped ({time.monotonic() - started:.1f} s)", flush=True)


def request_stop(signum: int, _frame: object) -> None:
    if not stop_requested.is_set():
        print(f"\nbin/run: {signal.Signals(signum).name}: stopping ...", flush=True)
    stop_requested.set()


def embedded_services_ready(data: Path, services: Process) -> bool:
    """Wait for bin/embedded_services.py to write its URLs, then take them into this environment."""
    env_file = data / "services.env"
    for _ in range(240):
        if env_file.exists() or stop_requested.is_set() or services.popen.poll() is not None:
            break
        time.sleep(0.5)
    if not env_file.exists():
        return False
    for line in env_file.read_text().splitlines():  # export NAME='value'
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ[name] = value.strip("'")
    return True


def create_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def set_up() -> None:
    create_database(os.environ["DATABASE_URL"])
    python = str(VENV_BIN / "python")
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v", "0"], ["install_schedules"],
                    ["bootstrap"]):
        if stop_requested.is_set():
            return
        subprocess.run([python, "manage.py", *command], cwd=ROOT, check=True)


def serve() -> list[Process]:
    celery = str(VENV_BIN / "celery")
    log_level = env_str("CELERY_LOG_LEVEL", "info")
    beat = Process("beat", [celery, "-A", "openmeter_site", "beat", "-l", log_level])
    worker = Process("worker", [celery, "-A", "openmeter_site", "worker", "-l", log_level,
                                "--concurrency", str(env_int("CELERY_CONCURRENCY", 2))])
    web = Process("web", [str(VENV_BIN / "gunicorn"), "openmeter_site.wsgi:application",
                          "-c", "python:openmeter_site.gunicorn_conf"])
    base = f"http://{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000)}"
    print(f"API: {base}/api/v1   docs: {base}/api/docs   admin: {base}/admin/   "
          f"(stop: Ctrl-C, or SIGTERM to pid {os.getpid()})", flush=True)
    return [web, worker, beat]


def stop_all(processes: list[Process]) -> None:
    started = time.monotonic()
    deadline = started + STOP_SECONDS
    for process in processes:
        process.stop(min(time.monotonic() + STOP_BUDGET[process.name], deadline))
    print(f"bin/run: stopped in {time.monotonic() - started:.1f} s", flush=True)


def main(*, embedded: bool) -> int:
    data = data_dir()
    data.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if not os.environ.get("SECRET_KEY"):
        ensure_secret_key_file()  # the settings of every process read it from there
    processes: list[Process] = []
    try:
        if embedded:
            print(f"Starting the embedded PostgreSQL and Redis (data in {data}) ...", flush=True)
            (data / "services.env").unlink(missing_ok=True)
            services = Process("embedded services", [str(VENV_BIN / "python"), "bin/embedded_services.py", str(data)])
            processes.append(services)
            if not embedded_services_ready(data, services):
                if stop_requested.is_set():
                    return 0
                print("bin/run: the embedded services did not start", file=sys.stderr)
                return 1
        os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/openmeter")
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
        set_up()
        if not stop_requested.is_set():
            processes[:0] = serve()
        while not stop_requested.wait(0.5):
            if exited := [p for p in processes if p.popen.poll() is not None]:
                print(f"bin/run: {exited[0].name} exited with {exited[0].popen.returncode}; stopping", file=sys.stderr)
                return 1
        return 0
    except subprocess.CalledProcessError as exc:
        if stop_requested.is_set():
            return 0
        print(f"bin/run: {' '.join(exc.cmd[1:])} failed with {exc.returncode}", file=sys.stderr)
        return 1
    finally:
        stop_all(processes)


if __name__ == "__main__":
    sys.exit(main(embedded="--embedded" in sys.argv[1:]))
