import gc
import os

from celery import Celery, signals

from openmeter_site.ops.logs import connect_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")

app = Celery("openmeter_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery(app)  # Django's logging in workers and beat; one line per task


@signals.worker_ready.connect
@signals.beat_init.connect
def _freeze_loaded_objects(**_: object) -> None:
    """As wsgi.py: everything loaded by now lives as long as the worker (or beat), so keep it out of garbage collections.
    Without this the collection at exit walks all of it again, seconds on a busy machine, and a stop waits."""
    gc.freeze()
