import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")

app = Celery("openmeter_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
