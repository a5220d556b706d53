from django.core.management.base import BaseCommand

from openmeter_site.core.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key; prints the key alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        key, raw = ApiKey.issue(name)
        self.stdout.write(f"Created API key {key.id} ({key.name}). It is shown once:")
        self.stdout.write(raw)
