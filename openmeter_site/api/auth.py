"""Bearer API keys: hashed at rest, revocable, last use recorded at most once a minute (cheap on hot paths)."""

import datetime as dt

from django.utils import timezone
from rest_framework import authentication, permissions
from rest_framework.request import Request

from openmeter_site.core.models import ApiKey, hash_secret

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def bearer_token(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        token = bearer_token(request)
        if token is None or not token.startswith("om_"):
            return None
        key = ApiKey.objects.filter(key_hash=hash_secret(token), revoked_at__isnull=True).first()
        if key is None:
            return None
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="openmeter"'


class IsApiKey(permissions.BasePermission):
    message = "a valid API key is required (Authorization: Bearer <key>)"

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, ApiKey)
