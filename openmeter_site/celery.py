import os

from celery import Celery

from openmeter_site.ops.logs import connect_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")

app = Celery("openmeter_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery(app)  # Django's logging in workers and beat; one line per task
