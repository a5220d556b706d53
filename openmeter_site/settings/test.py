"""Test settings: the same PostgreSQL and Redis as production code paths, a faster hasher."""

import os

os.environ.setdefault("OPENMETER_WEBHOOK_ALLOW_PRIVATE", "1")

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
OPENMETER_WEBHOOK_ALLOW_PRIVATE = True
