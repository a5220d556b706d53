"""bin/run's first-start set-up: the admin login and the startup API key are made once and printed once.

Later starts make nothing and say where to look instead: the raw key is stored only hashed, so it cannot be
shown again; the admin lists and revokes keys, `bin/manage create_api_key NAME` makes another and
`bin/manage changepassword NAME` sets a new password.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from openmeter_site.core.models import ApiKey

STARTUP_KEY_NAME = "bin/run startup key"


class Command(BaseCommand):
    help = "Make the admin user and the startup API key on first start and print them once."

    def handle(self, *args, **options):
        self._admin_user(settings.OPENMETER_ADMIN_USER, settings.OPENMETER_ADMIN_PASSWORD)
        self._startup_key()

    def _admin_user(self, username: str, given_password: str) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user: {username} (password set on first start; "
                              f"new one: bin/manage changepassword {username})")
            return
        password = given_password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        shown = "from OPENMETER_ADMIN_PASSWORD" if given_password else password
        self.stdout.write(f"Admin user: {username}  password: {shown}  (shown once)")

    def _startup_key(self) -> None:
        existing = ApiKey.objects.filter(name=STARTUP_KEY_NAME, revoked_at__isnull=True).first()
        if existing is not None:
            self.stdout.write(
                f"Startup API key {existing.prefix}… was shown on first start and is stored only hashed. "
                "Revoke it in the admin (Access › API keys); a new one: bin/manage create_api_key NAME"
            )
            return
        _, raw = ApiKey.issue(STARTUP_KEY_NAME)
        self.stdout.write(f"API key: {raw}")
        self.stdout.write(f"  (named {STARTUP_KEY_NAME!r}, shown once; revoke it in the admin under Access › API keys)")
