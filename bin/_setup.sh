# Shared by bin/run and bin/test: a virtualenv with the project installed, and running services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  # The pinned versions of requirements-dev.lock (bin/lock writes it from pyproject.toml), then the project itself.
  local stamp=".venv/.installed-$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "Installing dependencies into .venv (requirements-dev.lock) ..."
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements-dev.lock
    .venv/bin/pip install -q --no-deps -e .
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

# PostgreSQL and Redis on their usual ports, started if installed but stopped. Answers 1 (no exit) when one is
# missing and no URL was given, so bin/run can fall back to its embedded services.
local_services_available() {
  start_postgres_if_installed
  start_redis_if_installed
  if [ -z "${DATABASE_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 1; fi
  if [ -z "${REDIS_URL:-}" ] && ! redis_answers; then return 1; fi
  return 0
}

redis_answers() {
  if command -v redis-cli >/dev/null; then redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; return; fi
  .venv/bin/python -c "import redis; redis.Redis(socket_connect_timeout=1).ping()" >/dev/null 2>&1
}

start_postgres_if_installed() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not running; starting it ..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 20); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 0.5; done
  fi
}

start_redis_if_installed() {
  if redis_answers; then return; fi
  if command -v redis-server >/dev/null; then
    echo "Redis is not running; starting it ..."
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 20); do redis_answers && return; sleep 0.5; done
  fi
}

ensure_postgres() {
  start_postgres_if_installed
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if [ -n "${DATABASE_URL:-}" ]; then return; fi  # a remote database the user configured
  echo "ERROR: PostgreSQL is not reachable on 127.0.0.1:5432. Start it or set DATABASE_URL." >&2
  exit 1
}

ensure_redis() {
  start_redis_if_installed
  if redis_answers; then return; fi
  if [ -n "${REDIS_URL:-}" ]; then return; fi
  echo "ERROR: Redis is not reachable on 127.0.0.1:6379. Start it or set REDIS_URL." >&2
  exit 1
}
