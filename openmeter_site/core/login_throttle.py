"""Admin login throttling: after OPENMETER_ADMIN_LOGIN_MAX_FAILURES failed logins for one user name from one client
address, logins for that name from there are refused, even with the right password, until
OPENMETER_ADMIN_LOGIN_LOCKOUT_SECONDS have passed since the last failure. Counted in Redis, so every web worker
sees the same count; when Redis does not answer, logins are not throttled (and it is logged). A successful login
clears the count.
"""

import hashlib
import logging
from functools import cache

import redis
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

logger = logging.getLogger(__name__)


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _key(request: HttpRequest | None, username: str | None) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    name = hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:32]
    return f"om:login-failures:{address}:{name}"


def failed_logins(request: HttpRequest | None, username: str | None) -> int:
    try:
        return int(_redis(settings.REDIS_URL).get(_key(request, username)) or 0)
    except redis.RedisError as exc:
        logger.warning("admin login throttling skipped, Redis did not answer: %s", exc)
        return 0


def is_locked_out(request: HttpRequest | None, username: str | None) -> bool:
    return failed_logins(request, username) >= settings.OPENMETER_ADMIN_LOGIN_MAX_FAILURES


def _record(request: HttpRequest | None, username: str | None, *, failed: bool) -> None:
    key = _key(request, username)
    try:
        client = _redis(settings.REDIS_URL)
        if failed:
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, settings.OPENMETER_ADMIN_LOGIN_LOCKOUT_SECONDS)
            pipe.execute()
        else:
            client.delete(key)
    except redis.RedisError as exc:
        logger.warning("admin login throttling skipped, Redis did not answer: %s", exc)


class ThrottledModelBackend(ModelBackend):
    """Django's user/password backend behind the failure count."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if is_locked_out(request, username):
            logger.warning("admin login refused: too many failures", extra={"username": username})
            raise PermissionDenied  # authenticate() stops here: no other backend tries
        user = super().authenticate(request, username=username, password=password, **kwargs)
        _record(request, username, failed=user is None)
        return user


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, saying so when a login is refused for too many failures."""

    def get_invalid_login_error(self) -> ValidationError:
        if is_locked_out(self.request, self.cleaned_data.get("username")):
            minutes = max(settings.OPENMETER_ADMIN_LOGIN_LOCKOUT_SECONDS // 60, 1)
            return ValidationError(
                f"Too many failed logins. Try again in {minutes} minutes, or set a new password with "
                "bin/manage changepassword.",
                code="locked_out",
            )
        return super().get_invalid_login_error()
