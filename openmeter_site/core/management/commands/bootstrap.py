import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from openmeter_site.core.models import ApiKey


class Command(BaseCommand):
    help = "Ensure an admin user exists (password printed) and create an API key for this run (printed)."

    def handle(self, *args, **options):
        username = os.environ.get("OPENMETER_ADMIN_USER", "admin")
        password = os.environ.get("OPENMETER_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": ""})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        _, raw = ApiKey.issue("bin/run")
        self.stdout.write(f"Admin user: {username}  password: {password}")
        self.stdout.write(f"API key: {raw}")
