"""gunicorn's settings for bin/run and the container (`gunicorn -c python:openmeter_site.gunicorn_conf`), from the
environment like every other setting. Loopback unless HOST says otherwise."""

import os
import shutil

from openmeter_site.settings.env import data_dir, env_int, env_str

# Metrics of every worker in one place (prometheus_client multiprocess mode): set before any worker imports
# prometheus_client, emptied when the server starts.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(data_dir() / "metrics"))

from openmeter_site.ops.logs import logging_config

bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000)}"
workers = env_int("WEB_WORKERS", 2)
# gthread keeps client connections alive, so a backend calling the hot paths pays no TCP set-up per request.
worker_class = "gthread"
threads = env_int("WEB_THREADS", 4)
# A stop waits this long for requests in flight (bin/run's whole stop fits in 10 s).
graceful_timeout = env_int("WEB_GRACEFUL_TIMEOUT", 4)
# Proxies whose X-Forwarded-Proto (https) is believed; gunicorn reads FORWARDED_ALLOW_IPS itself too.
forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The request lines come from Django (openmeter_site/ops): JSON with the request id and the API key's name.
accesslog = None
logconfig_dict = logging_config(level=env_str("LOG_LEVEL", "INFO"), fmt=env_str("LOG_FORMAT", "json"))
logconfig_dict["loggers"]["gunicorn.error"] = {"handlers": ["console"], "propagate": False}  # its own lines alike
# No control socket (gunicorn 27's ~/.gunicorn/gunicorn.ctl, one path for every server the user runs).
control_socket_disable = True


def on_starting(server) -> None:
    """Counters start from zero with the server: no files of an earlier run's workers."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def child_exit(server, worker) -> None:
    """A worker's metric files stop counting as live once it exits."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
