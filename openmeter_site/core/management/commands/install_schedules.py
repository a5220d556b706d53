import importlib

from django.apps import apps
from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask


class Command(BaseCommand):
    help = "Install (or update) every app's periodic Celery tasks from its schedules.py."

    def handle(self, *args, **options):
        for config in apps.get_app_configs():
            try:
                module = importlib.import_module(f"{config.name}.schedules")
            except ModuleNotFoundError:
                continue
            for name, task, seconds in module.SCHEDULES:
                interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
                PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": interval})
                self.stdout.write(f"schedule {name}: {task} every {seconds}s")
