"""Portal tokens: issue, invalidate, authenticate; and the portal meter query (one subject, allowed meters)."""

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from metering.meter_queries import MeterQueryOutput, MeterQueryParams, meter_query
from metering.models import Meter
from openmeter_site.core.errors import Forbidden, InvalidInput, NotFound
from openmeter_site.core.models import hash_secret
from portal.errors import PortalUnauthorized
from portal.models import PortalToken

TOKEN_PREFIX = "om_portal_"


def portal_token_create(
    *,
    subject: str,
    allowed_meter_slugs: Sequence[str] | None = None,
    expires_at: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> tuple[PortalToken, str]:
    """Returns the token row and the raw token, which is never stored and cannot be shown again."""
    now = at or timezone.now()
    if expires_at is None:
        expires_at = now + dt.timedelta(seconds=settings.OPENMETER_PORTAL_TOKEN_TTL_SECONDS)
    elif expires_at <= now:
        raise InvalidInput("expiresAt: must be in the future")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PortalToken.objects.create(
        subject=subject,
        allowed_meter_slugs=list(allowed_meter_slugs) if allowed_meter_slugs else None,
        expires_at=expires_at,
        token_hash=hash_secret(raw),
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        created_at=now,
    )
    return token, raw


def portal_tokens_invalidate(
    *, token_id: str | None = None, subject: str | None = None, at: dt.datetime | None = None
) -> int:
    """Invalidate one token by id, or every token of a subject (both given: that token, if it is the subject's)."""
    if not token_id and not subject:
        raise InvalidInput("id or subject is required")
    qs = PortalToken.objects.filter(invalidated_at__isnull=True)
    if token_id:
        if not PortalToken.objects.filter(pk=token_id).exists():
            raise NotFound(f"portal token {token_id} not found")
        qs = qs.filter(pk=token_id)
    if subject:
        qs = qs.filter(subject=subject)
    return qs.update(invalidated_at=at or timezone.now(), updated_at=timezone.now())


def portal_token_authenticate(*, raw: str | None, at: dt.datetime | None = None) -> PortalToken:
    if not raw:
        raise PortalUnauthorized("a portal token is required (Authorization: Bearer om_portal_…)")
    if not raw.startswith(TOKEN_PREFIX):
        raise PortalUnauthorized("this endpoint accepts portal tokens only")
    token = PortalToken.objects.filter(token_hash=hash_secret(raw)).first()
    if token is None:
        raise PortalUnauthorized("unknown portal token")
    if token.invalidated_at is not None:
        raise PortalUnauthorized("the portal token has been invalidated")
    if token.is_expired(at):
        raise PortalUnauthorized("the portal token has expired")
    return token


def portal_meter(*, token: PortalToken, slug: str) -> Meter:
    """The meter a token may read: 403 if not among its allowed meters, 404 if there is no such meter."""
    if not token.allows_meter(slug):
        raise Forbidden(f"the portal token does not allow meter {slug!r}")
    meter = Meter.objects.filter(slug=slug, deleted_at__isnull=True).first()
    if meter is None:
        raise NotFound(f"meter {slug!r} not found")
    return meter


def portal_query(*, token: PortalToken, meter: Meter, params: MeterQueryParams) -> MeterQueryOutput:
    """The meter query, always limited to the token's subject (and so grouped by subject, as upstream)."""
    return meter_query(meter=meter, params=replace(params, subjects=[token.subject], customer_ids=()))


def portal_token_list_qs() -> QuerySet[PortalToken]:
    """Tokens not invalidated, newest first (expired ones included, flagged `expired`)."""
    return PortalToken.objects.filter(invalidated_at__isnull=True).order_by("-created_at", "-id")
