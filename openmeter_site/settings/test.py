"""Test settings: the same PostgreSQL and Redis as production code paths, a faster hasher."""

import os

os.environ.setdefault("OPENMETER_WEBHOOK_ALLOW_PRIVATE", "1")

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
OPENMETER_WEBHOOK_ALLOW_PRIVATE = True
# Static files straight from the apps (no collectstatic before a test run): the browser tests load the admin's CSS/JS.
WHITENOISE_USE_FINDERS = True
